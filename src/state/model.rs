//! The records the state layer stores and returns. Part of the state layer; plain data, no I/O.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::keys::{Secret, SigningKeyPair, SshKeyPair};

/// How an `--arg`/`--argstr` value reaches the network function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgKind {
    /// `--arg NAME EXPR`: the value is Nix source.
    Expr,
    /// `--argstr NAME VALUE`: the value is a string.
    Str,
}

impl ArgKind {
    pub(crate) fn as_sql(self) -> &'static str {
        match self {
            ArgKind::Expr => "expr",
            ArgKind::Str => "str",
        }
    }

    pub(crate) fn from_sql(s: &str) -> Option<Self> {
        match s {
            "expr" => Some(ArgKind::Expr),
            "str" => Some(ArgKind::Str),
            _ => None,
        }
    }
}

/// One argument passed to the network function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arg {
    pub name: String,
    pub kind: ArgKind,
    pub value: String,
}

/// A deployment, without its secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub uuid: String,
    pub name: String,
    /// `None` until set by `--description`; the network's own `network.description` is shown then.
    pub description: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Absolute paths, in the order given to `create`/`modify`.
    pub network_files: Vec<PathBuf>,
    pub args: Vec<Arg>,
    /// `-I` entries (`nixpkgs=/path`, …): the pin that evaluation uses instead of the caller's NIX_PATH.
    pub nix_path: Vec<String>,
    /// The public half of the deployment's SSH key (`ssh-ed25519 … comment`).
    pub ssh_public_key: String,
    /// The public half of the Nix signing key (`name:base64`).
    pub signing_public_key: String,
}

impl Deployment {
    /// The nixpkgs this deployment evaluates with, if pinned with `-I nixpkgs=…`.
    pub fn nixpkgs_pin(&self) -> Option<&str> {
        self.nix_path
            .iter()
            .find_map(|e| e.strip_prefix("nixpkgs="))
    }
}

/// The private halves of a deployment's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentSecrets {
    pub ssh: SshKeyPair,
    pub signing: SigningKeyPair,
}

/// One row of `ferry list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeploymentSummary {
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    /// Machines recorded in the state (deployed or imported), as NixOps counts them.
    pub machines: usize,
    /// The distinct backends of those machines (`none`).
    pub types: Vec<String>,
}

/// A machine as recorded in the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub name: String,
    /// `none` for machines ferry reaches over SSH; imported NixOps machines keep their backend name.
    pub backend: String,
    pub target_host: Option<String>,
    /// The last system deployed to it (a `/nix/store/…` path).
    pub toplevel: Option<String>,
    /// The deployment generation that last deployed it.
    pub generation: Option<i64>,
    /// Unix seconds.
    pub deployed_at: Option<i64>,
    /// `user@host` of whoever deployed it.
    pub deployed_by: Option<String>,
    /// A per-machine key (NixOps generated one per machine); `None` for ferry's own machines.
    pub ssh_public_key: Option<String>,
}

/// A machine's own SSH keypair (imported from NixOps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineKey {
    pub public: String,
    pub private: Secret,
}

/// A known host key of a deployment (`host` as in `known_hosts`, `key` as `type base64`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownHost {
    pub host: String,
    pub key: String,
}

/// What `ferry create` records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewDeployment {
    pub name: String,
    pub description: Option<String>,
    pub network_files: Vec<PathBuf>,
    pub args: Vec<Arg>,
    pub nix_path: Vec<String>,
}

/// What `ferry modify` changes; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub name: Option<String>,
    pub description: Option<String>,
    pub network_files: Option<Vec<PathBuf>>,
    pub args: Option<Vec<Arg>>,
    pub nix_path: Option<Vec<String>>,
}

/// What a deploy was asked to do (the deploy layer fills it in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployRequest {
    /// `user@host`.
    pub requested_by: String,
    /// The machines asked for (after `--include`/`--exclude`).
    pub machines: Vec<String>,
    /// The command line options that shaped the deploy, as JSON (never secrets).
    pub options: serde_json::Value,
}

/// How one machine's deploy ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failed,
    Skipped,
}

impl Outcome {
    pub(crate) fn as_sql(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }

    pub(crate) fn from_sql(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failed" => Some(Outcome::Failed),
            "skipped" => Some(Outcome::Skipped),
            _ => None,
        }
    }
}

/// The result of a deploy on one machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineResult {
    pub machine: String,
    pub target_host: Option<String>,
    pub toplevel: Option<String>,
    pub outcome: Outcome,
    /// Why it failed or was skipped; empty on success.
    pub message: String,
}

/// A started deploy, as returned by [`super::State::begin_deploy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeployHandle {
    pub(crate) id: i64,
    pub generation: i64,
}

/// One entry of the deploy log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployRecord {
    pub generation: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub requested_by: String,
    pub request: DeployRequest,
    pub results: Vec<MachineResult>,
}

/// A machine's status in `ferry info`, as NixOps shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MachineStatus {
    /// Recorded as deployed, and what was deployed is current.
    UpToDate,
    /// Recorded as deployed, but not with the current configuration.
    Outdated,
    /// Recorded in the state but no longer defined in the network files.
    Missing,
    /// Defined in the network files but never deployed.
    New,
}

impl MachineStatus {
    /// The text NixOps prints in its Status column.
    pub fn label(self) -> &'static str {
        match self {
            MachineStatus::UpToDate => "Up / Up-to-date",
            MachineStatus::Outdated => "Up / Outdated",
            MachineStatus::Missing => "Missing",
            MachineStatus::New => "New",
        }
    }

    /// Decide a machine's status.
    ///
    /// `expected_toplevel` is the toplevel the current network files produce, when the caller could build it
    /// (the deploy layer); then a machine is up to date when its recorded toplevel equals it. Without it, a
    /// machine is up to date when the latest deploy of the deployment (`current_generation`) included it
    /// successfully: the same rule NixOps applies with its `configsPath`.
    pub fn decide(
        recorded: Option<&Machine>,
        defined: bool,
        current_generation: Option<i64>,
        expected_toplevel: Option<&str>,
    ) -> MachineStatus {
        let Some(m) = recorded.filter(|m| m.toplevel.is_some()) else {
            return MachineStatus::New;
        };
        if !defined {
            return MachineStatus::Missing;
        }
        let current = match expected_toplevel {
            Some(t) => m.toplevel.as_deref() == Some(t),
            None => m.generation.is_some() && m.generation == current_generation,
        };
        if current {
            MachineStatus::UpToDate
        } else {
            MachineStatus::Outdated
        }
    }
}

/// Check a deployment name: it is typed on command lines and shown in tables, and must never look like a UUID
/// (`-d` accepts both).
pub fn validate_deployment_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            what: "deployment name",
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 128 {
        return bad("it must have 1 to 128 characters");
    }
    if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return bad("it must start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return bad("only letters, digits, '-', '_' and '.' are allowed");
    }
    if uuid::Uuid::parse_str(name).is_ok() {
        return bad("it looks like a UUID, which -d would confuse with a deployment's UUID");
    }
    Ok(())
}

/// The name under which a deployment from NixOps (or a `nixops export` document) is imported. NixOps accepted
/// any name, or none: a valid name is kept, an invalid one is cleaned up (other characters become `-`), and
/// failing that the deployment is called `nixops-<first 8 of its UUID>`. The second value is the original name
/// when it was changed (`""` when there was none).
pub fn importable_name(name: Option<&str>, uuid: &str) -> (String, Option<String>) {
    let fallback = format!("nixops-{}", uuid.get(..8).unwrap_or("unnamed"));
    match name {
        Some(n) if validate_deployment_name(n).is_ok() => (n.to_owned(), None),
        Some(n) if !n.is_empty() => {
            let cleaned: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
                .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned();
            let new = if validate_deployment_name(&cleaned).is_ok() {
                cleaned
            } else {
                fallback
            };
            (new, Some(n.to_owned()))
        }
        _ => (fallback, Some(String::new())),
    }
}

/// Check a machine name (the NixOps rule: `[A-Za-z0-9_-][A-Za-z0-9_.-]*`).
pub fn validate_machine_name(name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "machine name",
            name: name.to_owned(),
            reason: "only letters, digits, '_', '-' and '.' (not first) are allowed",
        })
    }
}
