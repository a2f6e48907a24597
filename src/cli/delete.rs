//! `ferry delete -d NAME [--force]`: remove a deployment from the state file. Refuses while machines are recorded
//! as deployed (destroy them first), unless `--force`. Part of the cli layer.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::deployments::{self, DeploymentArg};
use crate::state::OpenMode;

/// Arguments of `ferry delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub state: deployments::StateShort,
    #[command(flatten)]
    pub deployment: DeploymentArg,
    /// Delete even though machines are recorded as deployed (ferry forgets them; they keep running).
    #[arg(long)]
    pub force: bool,
}

/// Run `ferry delete`.
pub fn run(state: Option<&Path>, args: DeleteArgs) -> ExitCode {
    let state = args.state.or(state);
    deployments::finish(delete(state, &args))
}

fn delete(state: Option<&Path>, args: &DeleteArgs) -> Result<()> {
    let mut st = deployments::open(state, OpenMode::Existing)?;
    let d = st.resolve(args.deployment.deployment.as_deref())?;
    let _lock = deployments::lock(&st, &d, "delete")?;
    st.delete(&d, args.force)?;
    eprintln!("deleted deployment '{}' ({})", d.name, d.uuid);
    Ok(())
}
