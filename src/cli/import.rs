//! `ferry import [--include-keys] [FILE]`: add the deployments of an export document (stdin by default), all
//! or none. Private keys in the document are used only with `--include-keys`; otherwise fresh ones are made.
//! Part of the cli layer.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::deployments;
use crate::state::OpenMode;
use crate::state::export::{self, ExportDocument};

/// Arguments of `ferry import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub state: deployments::StateShort,
    /// Use the private keys in the document (otherwise the deployments get fresh keys).
    #[arg(long)]
    pub include_keys: bool,
    /// The export document; default: stdin.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Run `ferry import`.
pub fn run(state: Option<&Path>, args: ImportArgs) -> ExitCode {
    let state = args.state.or(state);
    deployments::finish(run_import(state, &args))
}

fn run_import(state: Option<&Path>, args: &ImportArgs) -> Result<()> {
    let text = match &args.file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the export document from stdin")?;
            s
        }
    };
    let doc: ExportDocument =
        serde_json::from_str(&text).context("the export document is not valid JSON")?;
    let mut fulls = Vec::with_capacity(doc.len());
    let mut notes = Vec::new();
    for (uuid, entry) in &doc {
        let (full, n) = export::import(uuid, entry, args.include_keys)?;
        fulls.push(full);
        notes.push(n);
    }
    let mut st = deployments::open(state, OpenMode::Create)?;
    st.insert_all(&fulls)?;
    for (full, n) in fulls.iter().zip(notes) {
        eprintln!(
            "added deployment '{}' ({})",
            full.deployment.uuid, full.deployment.name
        );
        if n.ignored_keys {
            eprintln!(
                "  the document's private keys were ignored (pass --include-keys to use them)"
            );
        }
        match n.renamed_from.as_deref() {
            Some("") => eprintln!(
                "  it had no name; rename it with `ferry modify -d {} -n NAME`",
                full.deployment.name
            ),
            Some(old) => eprintln!("  it was named '{old}', which ferry does not accept as a name"),
            None => {}
        }
        for r in &n.skipped_resources {
            eprintln!("  skipped resource {r}: not a machine");
        }
        if n.generated_keys {
            eprintln!(
                "  generated new keys: authorise the new SSH key on its machines (`ferry ssh-key --public`)"
            );
        }
    }
    Ok(())
}
