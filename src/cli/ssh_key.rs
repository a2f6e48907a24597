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
    pub state: deployments::StateShort,
    #[command(flatten)]
    pub deployment: DeploymentArg,
    /// Print the public key (`ssh-ed25519 …`) instead of the private key.
    #[arg(long)]
    pub public: bool,
    /// The key of this machine instead: NixOps generated one per machine (`none.sshPrivateKey`), which
    /// `import-nixops` keeps.
    #[arg(long, value_name = "MACHINE")]
    pub machine: Option<String>,
}

/// Run `ferry ssh-key`.
pub fn run(state: Option<&Path>, args: SshKeyArgs) -> ExitCode {
    let state = args.state.or(state);
    deployments::finish(ssh_key(state, &args))
}

fn ssh_key(state: Option<&Path>, args: &SshKeyArgs) -> Result<()> {
    let st = deployments::open(state, OpenMode::Existing)?;
    let d = st.resolve(args.deployment.deployment.as_deref())?;
    if let Some(m) = &args.machine {
        let Some(key) = st.machine_key(&d.uuid, m)? else {
            let recorded: Vec<String> = st.machines(&d.uuid)?.into_iter().map(|m| m.name).collect();
            if !recorded.contains(m) {
                let refs: Vec<&str> = recorded.iter().map(String::as_str).collect();
                return Err(crate::state::Error::UnknownMachine {
                    deployment: d.name.clone(),
                    machine: m.clone(),
                    suggestions: crate::state::closest(m, &refs),
                }
                .into());
            }
            anyhow::bail!(
                "machine '{m}' has no key of its own; ferry reaches it with the deployment's key"
            );
        };
        return deployments::out(&if args.public {
            format!("{}\n", key.public)
        } else {
            key.private.expose().to_owned()
        });
    }
    if args.public {
        return deployments::out(&format!("{}\n", d.ssh_public_key));
    }
    let secrets = st.secrets(&d.uuid)?;
    deployments::out(secrets.ssh.private.expose())
}
