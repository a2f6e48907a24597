//! The export document (`ferry export` / `ferry import`): JSON keyed by deployment UUID, each with a
//! `resources` map of machines, as `nixops export` writes it. Private keys are only written when asked for
//! (`--include-keys`), and only read back when asked for. Part of the state layer; pure.
//!
//! `ferry import` also reads what `nixops export` prints: there every attribute is the raw string NixOps keeps
//! in its state file, so `nixExprs`, `nixPath` and `args` are JSON documents inside strings, `args` maps names
//! to Nix expressions, a machine's key is `none.sshPrivateKey`/`none.sshPublicKey`, a cloud machine's address
//! is `publicIpv4`, and resources that are not machines (key pairs, …) come along and are skipped.

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
    /// Empty for an unnamed NixOps deployment; the importer names it `nixops-<uuid prefix>`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default, deserialize_with = "list_or_json_string")]
    pub nix_exprs: Vec<PathBuf>,
    #[serde(default, deserialize_with = "list_or_json_string")]
    pub nix_path: Vec<String>,
    #[serde(default, deserialize_with = "args_any")]
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
    #[serde(default, alias = "none.sshPublicKey")]
    pub ssh_public_key: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "none.sshPrivateKey"
    )]
    pub ssh_private_key: Option<String>,
    /// A NixOps cloud machine's address (read only; ferry writes `targetHost`).
    #[serde(default, rename = "publicIpv4", skip_serializing)]
    pub public_ipv4: Option<String>,
}

fn none() -> String {
    "none".to_owned()
}

/// A list, or (from `nixops export`) a string holding the list as JSON.
fn list_or_json_string<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error as _;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => serde_json::from_str(&s).map_err(D::Error::custom),
        other => serde_json::from_value(other).map_err(D::Error::custom),
    }
}

/// ferry's argument list, or NixOps's `{name: nix expression}`, possibly inside a JSON string.
fn args_any<'de, D>(d: D) -> std::result::Result<Vec<Arg>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let mut v = serde_json::Value::deserialize(d)?;
    if let serde_json::Value::String(s) = &v {
        v = serde_json::from_str(s).map_err(D::Error::custom)?;
    }
    match v {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(name, expr)| match expr {
                serde_json::Value::String(e) => Ok(super::nixops::parse_arg(&name, &e)),
                _ => Err(D::Error::custom(format!(
                    "argument '{name}' is not a Nix expression string"
                ))),
            })
            .collect(),
        other => serde_json::from_value(other).map_err(D::Error::custom),
    }
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
                    public_ipv4: None,
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
    /// Resources that are not machines (from `nixops export`), as `name (type)`.
    pub skipped_resources: Vec<String>,
    /// The deployment was renamed (see [`importable_name`]).
    pub renamed_from: Option<String>,
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
    let (name, renamed_from) = importable_name(Some(&e.name), uuid);
    notes.renamed_from = renamed_from;
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
            keys::generate_ssh_keypair(&format!("ferry deployment {name}"))?
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
            keys::generate_signing_keypair(&format!("ferry-{name}-1"))?
        }
    };
    let mut machines = Vec::new();
    for (name, m) in &e.resources {
        let target_host = m.target_host.clone().or_else(|| m.public_ipv4.clone());
        // The rule of the NixOps reader: a "none" machine, or anything with an address or a system.
        if m.backend != "none" && target_host.is_none() && m.toplevel.is_none() {
            notes
                .skipped_resources
                .push(format!("{name} ({})", m.backend));
            continue;
        }
        machines.push({
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
                target_host,
                toplevel: m.toplevel.clone(),
                generation: m.generation,
                deployed_at: m.deployed_at,
                deployed_by: m.deployed_by.clone(),
                // A public key without its private half is useless to ferry; keep it only with the pair.
                ssh_public_key: key.as_ref().map(|k| k.public.clone()),
            };
            (machine, key)
        });
    }
    let full = FullDeployment {
        deployment: Deployment {
            uuid: uuid.to_owned(),
            name,
            description: e.description.clone(),
            // A `nixops export` document has no creation time.
            created_at: if e.created_at > 0 {
                e.created_at
            } else {
                super::now()
            },
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
