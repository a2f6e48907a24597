//! `ferry import-nixops [--nixops-state FILE]`: create ferry deployments from a NixOps 1.x/2.x state file
//! (default `$NIXOPS_STATE`, else `~/.nixops/deployments.nixops`): network files, arguments, nixpkgs path,
//! machines with their targetHost, NixOps's per-machine SSH keys and host keys, and the last deployed system.
//! The NixOps file is only read. Part of the cli layer.
//!
//! The option is `--nixops-state`, not `--state`: `-s/--state` is ferry's own state file everywhere.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Args;

use super::deployments;
use crate::state::{OpenMode, nixops};

/// Arguments of `ferry import-nixops`.
#[derive(Debug, Args)]
pub struct ImportNixopsArgs {
    #[command(flatten)]
    pub state: deployments::StateShort,
    /// The NixOps state file (default: $NIXOPS_STATE, else ~/.nixops/deployments.nixops).
    #[arg(long = "nixops-state", env = "NIXOPS_STATE", value_name = "FILE")]
    pub nixops_state: Option<PathBuf>,
    /// Import only these deployments (names or UUIDs); default: all.
    #[arg(short = 'd', long = "deployment", value_name = "NAME")]
    pub only: Vec<String>,
}

/// Run `ferry import-nixops`.
pub fn run(state: Option<&Path>, args: ImportNixopsArgs) -> ExitCode {
    let state = args.state.or(state);
    deployments::finish(import(state, &args))
}

fn import(state: Option<&Path>, args: &ImportNixopsArgs) -> Result<()> {
    let source = match &args.nixops_state {
        Some(p) => p.clone(),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".nixops").join("deployments.nixops"))
            .ok_or_else(|| anyhow!("HOME is not set: pass --nixops-state FILE"))?,
    };
    let mut found = nixops::read(&source)?;
    if !args.only.is_empty() {
        found.retain(|i| {
            args.only
                .iter()
                .any(|o| *o == i.full.deployment.name || *o == i.full.deployment.uuid)
        });
        if found.is_empty() {
            anyhow::bail!(
                "{} has no deployment named {}",
                source.display(),
                args.only.join(", ")
            );
        }
    }
    let fulls: Vec<_> = found.iter().map(|i| i.full.clone()).collect();
    let mut st = deployments::open(state, OpenMode::Create)?;
    st.insert_all(&fulls)?;
    for i in &found {
        let d = &i.full.deployment;
        eprintln!(
            "imported deployment '{}' ({}) with {} machine{}",
            d.name,
            d.uuid,
            i.full.machines.len(),
            if i.full.machines.len() == 1 { "" } else { "s" }
        );
        match i.renamed_from.as_deref() {
            Some("") => eprintln!(
                "  it had no name in NixOps; rename it with `ferry modify -d {} -n NAME`",
                d.name
            ),
            Some(old) => {
                eprintln!("  it was named '{old}' in NixOps, which ferry does not accept as a name")
            }
            None => {}
        }
        for r in &i.skipped_resources {
            eprintln!("  skipped resource {r}: not a machine");
        }
        for (m, key) in &i.full.machines {
            if key.is_some() {
                eprintln!("  {}> kept the SSH key NixOps generated for it", m.name);
            }
        }
    }
    Ok(())
}
