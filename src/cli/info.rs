//! `ferry info -d NAME [--plain] [--json]`: a deployment and the status of each machine, as `nixops info` shows
//! them. Part of the cli layer.
//!
//! Status: `New` (defined, never deployed), `Missing` (recorded as deployed, no longer defined), and for
//! machines recorded as deployed and still defined, `Up / Up-to-date` when the deployment's latest deploy
//! (its current generation) included the machine successfully, `Up / Outdated` otherwise (a later deploy left
//! it out or failed on it, or it was imported and ferry has not deployed it yet). "Up" is what the state
//! records; `info` does not contact the machines.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::deployments::{self, Align, DeploymentArg, MachineSpec};
use crate::eval::{EvalOptions, SearchPathEntry};
use crate::network::discover::find_nixpkgs;
use crate::state::{Deployment, Machine, MachineStatus, OpenMode};

/// Arguments of `ferry info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub state: deployments::StateShort,
    #[command(flatten)]
    pub deployment: DeploymentArg,
    /// Print the machine rows only, tab-separated, without a table (for scripts).
    #[arg(long, conflicts_with = "json")]
    pub plain: bool,
    /// Print JSON (no secrets).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MachineRow {
    name: String,
    status: &'static str,
    #[serde(rename = "type")]
    backend: String,
    target_host: Option<String>,
    tags: Vec<String>,
    toplevel: Option<String>,
    generation: Option<i64>,
    deployed_at: Option<i64>,
    deployed_by: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InfoJson<'a> {
    name: &'a str,
    uuid: &'a str,
    description: &'a str,
    nix_exprs: &'a [std::path::PathBuf],
    nix_path: &'a [String],
    nixpkgs: String,
    args: &'a [crate::state::Arg],
    ssh_public_key: &'a str,
    signing_public_key: &'a str,
    generation: Option<i64>,
    /// Why the network could not be read, when it could not; statuses then come from the state alone.
    network_error: Option<String>,
    machines: Vec<MachineRow>,
}

/// Run `ferry info`.
pub fn run(state: Option<&Path>, args: InfoArgs) -> ExitCode {
    let state = args.state.or(state);
    deployments::finish(info(state, &args))
}

/// Where nixpkgs comes from for this deployment: its `-I nixpkgs=…` pin, else the network's own
/// `network.nixpkgs`, else `<nixpkgs>` on the search path.
fn nixpkgs(d: &Deployment, network_pin: Option<&str>) -> String {
    if let Some(pin) = d.nixpkgs_pin() {
        return format!("{pin} (pinned)");
    }
    if let Some(pin) = network_pin {
        return format!("{pin} (network.nixpkgs)");
    }
    let mut search_path: Vec<SearchPathEntry> = d
        .nix_path
        .iter()
        .map(|s| SearchPathEntry::parse(s))
        .collect();
    search_path.extend(EvalOptions::from_env().search_path);
    match find_nixpkgs(&search_path) {
        Some(p) => format!("{} (from the search path, not pinned)", p.display()),
        None => "not pinned, and <nixpkgs> is not on the search path".to_owned(),
    }
}

fn rows(
    specs: Option<&[MachineSpec]>,
    recorded: &[Machine],
    generation: Option<i64>,
) -> Vec<MachineRow> {
    let mut names: Vec<&str> = recorded.iter().map(|m| m.name.as_str()).collect();
    names.extend(specs.unwrap_or_default().iter().map(|s| s.name.as_str()));
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let rec = recorded.iter().find(|m| m.name == name);
            let spec = specs.and_then(|s| s.iter().find(|s| s.name == name));
            // Without the network, a recorded machine is taken as still defined (nothing claims otherwise).
            let defined = specs.is_none() || spec.is_some();
            let status = MachineStatus::decide(rec, defined, generation, None);
            MachineRow {
                name: name.to_owned(),
                status: status.label(),
                backend: rec.map_or_else(|| "none".to_owned(), |m| m.backend.clone()),
                target_host: spec
                    .map(|s| s.target_host.clone())
                    .or_else(|| rec.and_then(|m| m.target_host.clone())),
                tags: spec.map(|s| s.tags.clone()).unwrap_or_default(),
                toplevel: rec.and_then(|m| m.toplevel.clone()),
                generation: rec.and_then(|m| m.generation),
                deployed_at: rec.and_then(|m| m.deployed_at),
                deployed_by: rec.and_then(|m| m.deployed_by.clone()),
            }
        })
        .collect()
}

fn info(state: Option<&Path>, args: &InfoArgs) -> Result<()> {
    let st = deployments::open(state, OpenMode::Existing)?;
    let d = st.resolve(args.deployment.deployment.as_deref())?;
    let recorded = st.machines(&d.uuid)?;
    let generation = st.current_generation(&d.uuid)?;

    let network = deployments::check_files_exist(&d)
        .and_then(|()| deployments::discover(&d.network_files, &d.args, &d.nix_path));
    let (specs, network_pin, network_error) = match network {
        Ok(info) => (Some(info.machines), info.nixpkgs, None),
        Err(e) => (None, None, Some(format!("{e:#}"))),
    };
    let machines = rows(specs.as_deref(), &recorded, generation);

    if args.json {
        let doc = InfoJson {
            name: &d.name,
            uuid: &d.uuid,
            description: deployments::description(&d),
            nix_exprs: &d.network_files,
            nix_path: &d.nix_path,
            nixpkgs: nixpkgs(&d, network_pin.as_deref()),
            args: &d.args,
            ssh_public_key: &d.ssh_public_key,
            signing_public_key: &d.signing_public_key,
            generation,
            network_error: network_error.clone(),
            machines,
        };
        deployments::out(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
    } else if args.plain {
        let mut text = String::new();
        for m in &machines {
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                m.name,
                m.status,
                m.backend,
                m.target_host.as_deref().unwrap_or(""),
                m.tags.join(",")
            ));
        }
        deployments::out(&text)?;
    } else {
        let mut text = format!(
            "Network name: {}\nNetwork UUID: {}\nNetwork description: {}\nNix expressions: {}\nNixpkgs: {}\n",
            d.name,
            d.uuid,
            deployments::description(&d),
            d.network_files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            nixpkgs(&d, network_pin.as_deref()),
        );
        if !d.args.is_empty() {
            let shown: Vec<String> = d
                .args
                .iter()
                .map(|a| match a.kind {
                    crate::state::ArgKind::Expr => format!("--arg {} {}", a.name, a.value),
                    crate::state::ArgKind::Str => format!("--argstr {} {:?}", a.name, a.value),
                })
                .collect();
            text.push_str(&format!("Arguments: {}\n", shown.join(" ")));
        }
        text.push_str(&format!(
            "Generation: {}\n\n",
            generation.map_or_else(|| "none (never deployed)".to_owned(), |g| g.to_string())
        ));
        let rows: Vec<Vec<String>> = machines
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.status.to_owned(),
                    m.backend.clone(),
                    m.target_host.clone().unwrap_or_default(),
                    m.tags.join(", "),
                ]
            })
            .collect();
        text.push_str(&deployments::table(
            &[
                ("Name", Align::Left),
                ("Status", Align::Center),
                ("Type", Align::Left),
                ("targetHost", Align::Left),
                ("Tags", Align::Left),
            ],
            &rows,
        ));
        deployments::out(&text)?;
    }
    if let Some(e) = network_error {
        anyhow::bail!(
            "cannot read the network of deployment '{}', statuses come from the state alone: {e}",
            d.name
        );
    }
    Ok(())
}
