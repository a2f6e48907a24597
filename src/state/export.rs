//! The export document (`ferry export` / `ferry import`): JSON keyed by deployment UUID, each with a
//! `resources` map of machines, as `nixops export` writes it. Private keys are only written when asked for
//! (`--include-keys`), and only read back when asked for. Part of the state layer; pure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::keys::{self, Secret, SigningKeyPair, SshKeyPair};
use super::model::*;

/// Everything ferry knows about a deployment, secrets included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullDeployment {
    pub deployment: Deployment,
    pub secrets: DeploymentSecrets,
    pub machines: Vec<(Machine, Option<MachineKey>)>,
    pub known_hosts: Vec<KnownHost>,
    pub deploys: Vec<DeployRecord>,
}

/// One deployment in the export document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedDeployment {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub nix_exprs: Vec<PathBuf>,
    #[serde(default)]
    pub nix_path: Vec<String>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub ssh_public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_private_key: Option<String>,
    #[serde(default)]
    pub nix_signing_public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nix_signing_secret_key: Option<String>,
    #[serde(default)]
    pub known_hosts: Vec<KnownHost>,
    #[serde(default)]
    pub resources: BTreeMap<String, ExportedMachine>,
    #[serde(default)]
    pub deploy_log: Vec<DeployRecord>,
}

/// One machine in the export document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedMachine {
    #[serde(rename = "type", default = "none")]
    pub backend: String,
    #[serde(default)]
    pub target_host: Option<String>,
    #[serde(default)]
    pub toplevel: Option<String>,
    #[serde(default)]
    pub generation: Option<i64>,
    #[serde(default)]
    pub deployed_at: Option<i64>,
    #[serde(default)]
    pub deployed_by: Option<String>,
    #[serde(default)]
    pub ssh_public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_private_key: Option<String>,
}

fn none() -> String {
    "none".to_owned()
}

/// The export document: deployments by UUID.
pub type ExportDocument = BTreeMap<String, ExportedDeployment>;

/// Turn a deployment into its export entry; private keys only with `include_keys`.
pub fn export(full: &FullDeployment, include_keys: bool) -> (String, ExportedDeployment) {
    let d = &full.deployment;
    let resources = full
        .machines
        .iter()
        .map(|(m, key)| {
            (
                m.name.clone(),
                ExportedMachine {
                    backend: m.backend.clone(),
                    target_host: m.target_host.clone(),
                    toplevel: m.toplevel.clone(),
                    generation: m.generation,
                    deployed_at: m.deployed_at,
                    deployed_by: m.deployed_by.clone(),
                    ssh_public_key: m.ssh_public_key.clone(),
                    ssh_private_key: key
                        .as_ref()
                        .filter(|_| include_keys)
                        .map(|k| k.private.expose().to_owned()),
                },
            )
        })
        .collect();
    let entry = ExportedDeployment {
        name: d.name.clone(),
        description: d.description.clone(),
        created_at: d.created_at,
        nix_exprs: d.network_files.clone(),
        nix_path: d.nix_path.clone(),
        args: d.args.clone(),
        ssh_public_key: Some(full.secrets.ssh.public.clone()),
        ssh_private_key: include_keys.then(|| full.secrets.ssh.private.expose().to_owned()),
        nix_signing_public_key: Some(full.secrets.signing.public.clone()),
        nix_signing_secret_key: include_keys
            .then(|| full.secrets.signing.secret.expose().to_owned()),
        known_hosts: full.known_hosts.clone(),
        resources,
        deploy_log: full.deploys.clone(),
    };
    (d.uuid.clone(), entry)
}

/// What [`import`] did besides the obvious, for the CLI to tell the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportNotes {
    /// Fresh keys were generated because the document had none (or `include_keys` was off).
    pub generated_keys: bool,
    /// The document carried private keys that were ignored (`include_keys` off).
    pub ignored_keys: bool,
}

/// Turn an export entry back into a deployment. With `include_keys`, the document's private keys are used;
/// otherwise they are ignored and the deployment gets fresh ones.
pub fn import(
    uuid: &str,
    e: &ExportedDeployment,
    include_keys: bool,
) -> Result<(FullDeployment, ImportNotes)> {
    if uuid::Uuid::parse_str(uuid).is_err() {
        return Err(Error::BadExport {
            reason: format!("'{uuid}' is not a deployment UUID"),
        });
    }
    let mut notes = ImportNotes::default();
    let has_private = e.ssh_private_key.is_some()
        || e.nix_signing_secret_key.is_some()
        || e.resources.values().any(|m| m.ssh_private_key.is_some());
    notes.ignored_keys = has_private && !include_keys;

    let ssh = match (include_keys, &e.ssh_private_key, &e.ssh_public_key) {
        (true, Some(private), Some(public)) => SshKeyPair {
            public: public.clone(),
            private: Secret::new(private),
        },
        _ => {
            notes.generated_keys = true;
            keys::generate_ssh_keypair(&format!("ferry deployment {}", e.name))?
        }
    };
    let signing = match (
        include_keys,
        &e.nix_signing_secret_key,
        &e.nix_signing_public_key,
    ) {
        (true, Some(secret), Some(public)) => SigningKeyPair {
            public: public.clone(),
            secret: Secret::new(secret),
        },
        _ => {
            notes.generated_keys = true;
            keys::generate_signing_keypair(&format!("ferry-{}-1", e.name))?
        }
    };
    let machines = e
        .resources
        .iter()
        .map(|(name, m)| {
            let key = match (include_keys, &m.ssh_private_key, &m.ssh_public_key) {
                (true, Some(private), Some(public)) => Some(MachineKey {
                    public: public.clone(),
                    private: Secret::new(private),
                }),
                _ => None,
            };
            let machine = Machine {
                name: name.clone(),
                backend: m.backend.clone(),
                target_host: m.target_host.clone(),
                toplevel: m.toplevel.clone(),
                generation: m.generation,
                deployed_at: m.deployed_at,
                deployed_by: m.deployed_by.clone(),
                // A public key without its private half is useless to ferry; keep it only with the pair.
                ssh_public_key: key.as_ref().map(|k| k.public.clone()),
            };
            (machine, key)
        })
        .collect();
    let full = FullDeployment {
        deployment: Deployment {
            uuid: uuid.to_owned(),
            name: e.name.clone(),
            description: e.description.clone(),
            created_at: e.created_at,
            network_files: e.nix_exprs.clone(),
            args: e.args.clone(),
            nix_path: e.nix_path.clone(),
            ssh_public_key: ssh.public.clone(),
            signing_public_key: signing.public.clone(),
        },
        secrets: DeploymentSecrets { ssh, signing },
        machines,
        known_hosts: e.known_hosts.clone(),
        deploys: e.deploy_log.clone(),
    };
    Ok((full, notes))
}
