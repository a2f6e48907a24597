//! `ferry create FILES… -d NAME [--description TEXT]`: record a new deployment (with fresh SSH and signing
//! keys) in the state file. Part of the cli layer.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use super::deployments::{self, DeploymentArg, NetworkArgs};
use crate::state::{NewDeployment, OpenMode};

/// Arguments of `ferry create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub state: deployments::StateShort,
    /// The network files (NixOps network expressions), merged in this order.
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub deployment: DeploymentArg,
    /// A description (default: the network's `network.description`).
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Run `ferry create`.
pub fn run(state: Option<&Path>, args: CreateArgs) -> ExitCode {
    let file = args.state.file.clone();
    let state = file.as_deref().or(state);
    deployments::finish(create(state, args))
}

fn create(state: Option<&Path>, args: CreateArgs) -> Result<()> {
    let Some(name) = args.deployment.deployment.clone() else {
        bail!("a deployment needs a name: pass -d NAME");
    };
    let files = deployments::network_files(&args.files)?;
    let net_args = args.network.args();
    let mut description = args.description.clone();
    if description.is_none() {
        // The network's own description, as NixOps records it once it has evaluated the network. A network
        // that does not evaluate yet is still a valid deployment to create (NixOps does not evaluate here).
        match deployments::discover(&files, &net_args, &args.network.include) {
            Ok(info) => description = info.description,
            Err(e) => eprintln!("warning: could not read the network yet: {e:#}"),
        }
    }
    let mut state = deployments::open(state, OpenMode::Create)?;
    let d = state.create(NewDeployment {
        name,
        description,
        network_files: files,
        args: net_args,
        nix_path: args.network.include.clone(),
    })?;
    eprintln!("created deployment '{}'", d.uuid);
    deployments::out(&format!("{}\n", d.uuid))
}
