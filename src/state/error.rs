//! Errors of the state layer. Every variant names the state file or deployment it concerns, so that the CLI can
//! print one line that says what went wrong and where, without extra context.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong in the state layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state file does not exist and the command does not create one.
    #[error(
        "no state file at {path}: create a deployment first (`ferry create`), or point -s/--state or FERRY_STATE at one"
    )]
    Missing { path: PathBuf },

    /// The file exists but SQLite cannot read it as a database.
    #[error(
        "{path} is not a readable ferry state file (corrupt or not SQLite); it was left untouched"
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// A SQLite database that ferry did not write (for example a NixOps state file given to `-s`).
    #[error("{path} is an SQLite database but not a ferry state file{hint}")]
    NotFerry { path: PathBuf, hint: String },

    /// The schema was written by a newer ferry.
    #[error(
        "{path} has state schema version {found}, but this ferry only knows versions up to {supported}: \
         upgrade ferry (the file was left untouched)"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// A file system operation failed.
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A SQLite operation failed.
    #[error("state file {path}: {op} failed")]
    Sqlite {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// No deployment matches the selector.
    #[error("no deployment named '{name}' in {path}{}", did_you_mean(suggestions))]
    UnknownDeployment {
        name: String,
        path: PathBuf,
        suggestions: Vec<String>,
    },

    /// `-d` was left out, and there is not exactly one deployment to default to.
    #[error("{path} holds no deployments yet: create one with `ferry create`")]
    NoDeployments { path: PathBuf },

    /// `-d` was left out and several deployments exist.
    #[error(
        "{path} holds {} deployments ({}): choose one with -d NAME or FERRY_DEPLOYMENT",
        names.len(),
        names.join(", ")
    )]
    Ambiguous { path: PathBuf, names: Vec<String> },

    /// A deployment with this name already exists.
    #[error("a deployment named '{name}' already exists (uuid {uuid})")]
    DuplicateName { name: String, uuid: String },

    /// A deployment with this UUID already exists (import).
    #[error("a deployment with uuid {uuid} already exists (named '{name}')")]
    DuplicateUuid { uuid: String, name: String },

    /// A deployment or machine name that ferry refuses.
    #[error("invalid {what} '{name}': {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },

    /// Another process holds the deployment's lock.
    #[error(
        "deployment '{name}' is locked by another ferry process ({holder}); gave up after {}s \
         (FERRY_LOCK_TIMEOUT sets the wait)",
        waited.as_secs()
    )]
    Locked {
        name: String,
        holder: String,
        waited: Duration,
    },

    /// `delete` while machines are still recorded as deployed.
    #[error(
        "deployment '{name}' still has deployed machines ({}): run `ferry destroy -d {name}` first, \
         or pass --force to forget them",
        machines.join(", ")
    )]
    StillDeployed { name: String, machines: Vec<String> },

    /// A machine named on the command line is not recorded.
    #[error(
        "deployment '{deployment}' has no recorded machine '{machine}'{}",
        did_you_mean(suggestions)
    )]
    UnknownMachine {
        deployment: String,
        machine: String,
        suggestions: Vec<String>,
    },

    /// A stored value does not parse (hand-edited or damaged row).
    #[error("state file {path}: stored {what} of deployment {uuid} is malformed: {reason}")]
    Malformed {
        path: PathBuf,
        uuid: String,
        what: &'static str,
        reason: String,
    },

    /// Key generation failed (the OS random source).
    #[error("cannot generate {what}: {reason}")]
    KeyGen { what: &'static str, reason: String },

    /// A NixOps state file that cannot be imported.
    #[error("NixOps state file {path}: {reason}")]
    Nixops { path: PathBuf, reason: String },

    /// An export document that cannot be imported.
    #[error("export document: {reason}")]
    BadExport { reason: String },
}

/// Result of the state layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean '{one}'?"),
        many => format!(
            "; did you mean one of {}?",
            many.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
