//! `ferry destroy -d NAME [--include M…] [--confirm]`: destroy machines. With the "none" backend there is nothing
//! to tear down, so ferry forgets them (their recorded deploys), after an interactive y/N unless `--confirm`.
//! Part of the cli layer.

use std::io::BufRead as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::deployments::{self, DeploymentArg};
use crate::state::OpenMode;

/// Arguments of `ferry destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub state: deployments::StateShort,
    #[command(flatten)]
    pub deployment: DeploymentArg,
    /// Only these machines.
    #[arg(long, num_args = 1.., value_name = "MACHINE")]
    pub include: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub confirm: bool,
}

/// Run `ferry destroy`.
pub fn run(state: Option<&Path>, args: DestroyArgs) -> ExitCode {
    let state = args.state.or(state);
    deployments::finish(destroy(state, &args))
}

fn destroy(state: Option<&Path>, args: &DestroyArgs) -> Result<()> {
    let mut st = deployments::open(state, OpenMode::Existing)?;
    let d = st.resolve(args.deployment.deployment.as_deref())?;
    let _lock = deployments::lock(&st, &d, "destroy")?;
    let recorded: Vec<String> = st.machines(&d.uuid)?.into_iter().map(|m| m.name).collect();
    let only = (!args.include.is_empty()).then_some(args.include.as_slice());
    let targets: Vec<String> = match only {
        Some(names) => {
            // Check the names before asking, so that a typo fails without a question.
            let refs: Vec<&str> = recorded.iter().map(String::as_str).collect();
            if let Some(bad) = names.iter().find(|n| !recorded.contains(n)) {
                return Err(crate::state::Error::UnknownMachine {
                    deployment: d.name.clone(),
                    machine: bad.clone(),
                    suggestions: crate::state::closest(bad, &refs),
                }
                .into());
            }
            names.to_vec()
        }
        None => recorded.clone(),
    };
    if targets.is_empty() {
        eprintln!(
            "deployment '{}' has no recorded machines; nothing to destroy",
            d.name
        );
        return Ok(());
    }
    if !args.confirm {
        eprint!(
            "are you sure you want to destroy {} of deployment '{}'? ferry will forget {} (backend \"none\": \
             the machines keep running) (y/N) ",
            targets.join(", "),
            d.name,
            if targets.len() == 1 { "it" } else { "them" }
        );
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("cannot read the answer from stdin")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("not destroying anything");
            return Ok(());
        }
    }
    for name in st.forget_machines(&d, only)? {
        eprintln!("{name}> forgot machine (backend \"none\": nothing to tear down)");
    }
    Ok(())
}
