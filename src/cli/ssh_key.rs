//! `ferry ssh-key -d NAME [--public]`: print the deployment's SSH key (private by default, as an OpenSSH file;
//! `--public` prints the `authorized_keys` line). Seed 002 had to dig this out of NixOps's SQLite by hand.
//! Part of the cli layer.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::deployments::{self, DeploymentArg};
use crate::state::OpenMode;

/// Arguments of `ferry ssh-key`.
#[derive(Debug, Args)]
pub struct SshKeyArgs {
    #[command(flatten)]
    pub deployment: DeploymentArg,
    /// Print the public key (`ssh-ed25519 …`) instead of the private key.
    #[arg(long)]
    pub public: bool,
}

/// Run `ferry ssh-key`.
pub fn run(state: Option<&Path>, args: SshKeyArgs) -> ExitCode {
    deployments::finish(ssh_key(state, &args))
}

fn ssh_key(state: Option<&Path>, args: &SshKeyArgs) -> Result<()> {
    let st = deployments::open(state, OpenMode::Existing)?;
    let d = st.resolve(args.deployment.deployment.as_deref())?;
    if args.public {
        return deployments::out(&format!("{}\n", d.ssh_public_key));
    }
    let secrets = st.secrets(&d.uuid)?;
    deployments::out(secrets.ssh.private.expose())
}
