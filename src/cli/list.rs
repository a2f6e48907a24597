//! `ferry list [--json]`: the deployments of the state file, as `nixops list` shows them. Part of the cli layer.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::deployments::{self, Align};
use crate::state::OpenMode;

/// Arguments of `ferry list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub state: deployments::StateShort,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run `ferry list`.
pub fn run(state: Option<&Path>, args: ListArgs) -> ExitCode {
    let state = args.state.or(state);
    deployments::finish(list(state, &args))
}

fn list(state: Option<&Path>, args: &ListArgs) -> Result<()> {
    let st = deployments::open(state, OpenMode::Existing)?;
    let all = st.list()?;
    if args.json {
        return deployments::out(&format!("{}\n", serde_json::to_string_pretty(&all)?));
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|d| {
            vec![
                d.uuid.clone(),
                d.name.clone(),
                d.description
                    .clone()
                    .unwrap_or_else(|| "Unnamed ferry network".to_owned()),
                d.machines.to_string(),
                d.types.join(", "),
            ]
        })
        .collect();
    let table = deployments::table(
        &[
            ("UUID", Align::Left),
            ("Name", Align::Left),
            ("Description", Align::Left),
            ("# Machines", Align::Right),
            ("Type", Align::Left),
        ],
        &rows,
    );
    deployments::out(&table)
}
