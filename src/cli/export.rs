//! `ferry export [-d NAME] [--include-keys]`: deployments as JSON on stdout, keyed by UUID, as `nixops export`
//! writes them. Private keys only with `--include-keys`. Part of the cli layer.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::deployments;
use crate::state::OpenMode;
use crate::state::export::{self, ExportDocument};

/// Arguments of `ferry export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub state: deployments::StateShort,
    /// Export only this deployment (name or UUID); default: all (also $FERRY_DEPLOYMENT).
    #[arg(
        short = 'd',
        long = "deployment",
        env = "FERRY_DEPLOYMENT",
        value_name = "NAME"
    )]
    pub deployment: Option<String>,
    /// Include the private SSH and signing keys (the output is then a secret).
    #[arg(long)]
    pub include_keys: bool,
}

/// Run `ferry export`.
pub fn run(state: Option<&Path>, args: ExportArgs) -> ExitCode {
    let state = args.state.or(state);
    deployments::finish(run_export(state, &args))
}

fn run_export(state: Option<&Path>, args: &ExportArgs) -> Result<()> {
    let st = deployments::open(state, OpenMode::Existing)?;
    let uuids: Vec<String> = match &args.deployment {
        Some(sel) => vec![st.resolve(Some(sel))?.uuid],
        None => st.list()?.into_iter().map(|d| d.uuid).collect(),
    };
    let mut doc = ExportDocument::new();
    for uuid in uuids {
        let (uuid, entry) = export::export(&st.full(&uuid)?, args.include_keys);
        doc.insert(uuid, entry);
    }
    deployments::out(&format!("{}\n", serde_json::to_string_pretty(&doc)?))
}
