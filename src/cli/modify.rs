//! `ferry modify [FILES…] -d NAME [-n NEWNAME] [--description TEXT] [--arg/--argstr …] [-I …]`: change a
//! deployment's network files, name, description, arguments or nixpkgs pin. Part of the cli layer.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::deployments::{self, DeploymentArg, NetworkArgs};
use crate::state::{Changes, OpenMode};

/// Arguments of `ferry modify`.
#[derive(Debug, Args)]
pub struct ModifyArgs {
    #[command(flatten)]
    pub state: deployments::StateShort,
    /// New network files (replace the recorded ones); none keeps them.
    #[arg(value_name = "FILES")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub deployment: DeploymentArg,
    /// Rename the deployment.
    #[arg(short = 'n', long = "name", value_name = "NEWNAME")]
    pub name: Option<String>,
    /// Set the description.
    #[arg(long)]
    pub description: Option<String>,
    /// Remove the argument NAME.
    #[arg(long = "unset", value_name = "NAME")]
    pub unset: Vec<String>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Run `ferry modify`.
pub fn run(state: Option<&Path>, args: ModifyArgs) -> ExitCode {
    let file = args.state.file.clone();
    let state = file.as_deref().or(state);
    deployments::finish(modify(state, args))
}

fn modify(state: Option<&Path>, args: ModifyArgs) -> Result<()> {
    let mut st = deployments::open(state, OpenMode::Existing)?;
    let d = st.resolve(args.deployment.deployment.as_deref())?;
    let _lock = deployments::lock(&st, &d, "modify")?;
    // Re-read under the lock: another process may have changed it while we waited.
    let d = st.deployment(&d.uuid)?;

    let mut changes = Changes {
        name: args.name.clone(),
        description: args.description.clone(),
        ..Changes::default()
    };
    if !args.files.is_empty() {
        changes.network_files = Some(deployments::network_files(&args.files)?);
    }
    if args.network.has_args() || !args.unset.is_empty() {
        let mut merged = d.args.clone();
        for new in args.network.args() {
            merged.retain(|a| a.name != new.name);
            merged.push(new);
        }
        merged.retain(|a| !args.unset.contains(&a.name));
        merged.sort_by(|a, b| a.name.cmp(&b.name));
        changes.args = Some(merged);
    }
    if !args.network.include.is_empty() {
        changes.nix_path = Some(args.network.include.clone());
    }
    if changes.description.is_none() && changes.network_files.is_some() {
        let files = changes.network_files.as_deref().unwrap_or_default();
        let net_args = changes.args.as_deref().unwrap_or(&d.args);
        let nix_path = changes.nix_path.as_deref().unwrap_or(&d.nix_path);
        match deployments::discover(files, net_args, nix_path) {
            Ok(info) => changes.description = info.description.or(d.description.clone()),
            Err(e) => eprintln!("warning: could not read the network: {e:#}"),
        }
    }
    let new = st.modify(&d.uuid, &changes)?;
    if new.name != d.name {
        eprintln!("renamed deployment '{}' to '{}'", d.name, new.name);
    }
    eprintln!("modified deployment '{}'", new.uuid);
    Ok(())
}
