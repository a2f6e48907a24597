//! What the deployment commands (`create`, `modify`, `list`, `info`, `delete`, `destroy`, `export`, `import`,
//! `ssh-key`, `import-nixops`) share: the `-d` option, opening the state file, the deployment lock, argument
//! parsing, NixOps-style tables, and the machine discovery seam. Part of the cli layer.
//!
//! Machine discovery goes through one function, [`discover`], which calls the network layer
//! (`crate::network::discover`, ferry's own evaluator) with the deployment's recorded arguments and search path.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::Serialize;

use super::render::{Sources, render_human};
use crate::eval::{AutoArg, EvalOptions, SearchPathEntry};
use crate::network::{self, DiscoverOptions};
use crate::state::{self, Arg, ArgKind, Deployment, DeploymentLock, OpenMode, State};

/// `-s FILE` on each deployment command, as `nixops list -s FILE` is written. The long form `--state` is global
/// (in `Cli`), so that it also reaches commands that use `-s` for something else (`path-info -s` is the size,
/// as in `nix path-info`); a global `-s` would clash with them.
#[derive(Debug, Clone, Args)]
pub struct StateShort {
    /// The state file (same as --state; default: $FERRY_STATE, else ~/.ferry/state.db).
    #[arg(short = 's', id = "state_short", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl StateShort {
    /// `-s FILE` if given, else the global `--state`.
    pub fn or<'a>(&'a self, global: Option<&'a Path>) -> Option<&'a Path> {
        self.file.as_deref().or(global)
    }
}

/// `-d/--deployment`, with NixOps's defaults: `FERRY_DEPLOYMENT`, else the only deployment.
#[derive(Debug, Clone, Args)]
pub struct DeploymentArg {
    /// Deployment name or UUID (default: $FERRY_DEPLOYMENT, else the only deployment in the state file).
    #[arg(
        short = 'd',
        long = "deployment",
        env = "FERRY_DEPLOYMENT",
        value_name = "NAME"
    )]
    pub deployment: Option<String>,
}

/// How the network function is called: `--arg`, `--argstr`, `-I`.
#[derive(Debug, Clone, Default, Args)]
pub struct NetworkArgs {
    /// Pass NAME to the network function as the Nix expression EXPR.
    #[arg(long = "arg", num_args = 2, value_names = ["NAME", "EXPR"], action = clap::ArgAction::Append)]
    pub arg: Vec<String>,
    /// Pass NAME to the network function as the string VALUE.
    #[arg(long = "argstr", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub argstr: Vec<String>,
    /// Add a search path entry (`nixpkgs=/path/to/nixpkgs` pins nixpkgs for this deployment).
    #[arg(short = 'I', value_name = "PATH")]
    pub include: Vec<String>,
}

impl NetworkArgs {
    /// The `--arg`/`--argstr` pairs as arguments; a later value for the same name wins.
    pub fn args(&self) -> Vec<Arg> {
        let mut out: Vec<Arg> = Vec::new();
        let pairs = |v: &[String], kind| {
            v.chunks(2)
                .filter_map(|c| match c {
                    [n, v] => Some(Arg {
                        name: n.clone(),
                        kind,
                        value: v.clone(),
                    }),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        for a in pairs(&self.arg, ArgKind::Expr)
            .into_iter()
            .chain(pairs(&self.argstr, ArgKind::Str))
        {
            out.retain(|o| o.name != a.name);
            out.push(a);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Whether any argument was given.
    pub fn has_args(&self) -> bool {
        !self.arg.is_empty() || !self.argstr.is_empty()
    }
}

/// The state file: `-s/--state`, else `FERRY_STATE` (both through clap), else `~/.ferry/state.db`.
pub fn state_path(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => absolute(p),
        None => state::default_path()
            .ok_or_else(|| anyhow!("HOME is not set: pass -s/--state FILE or set FERRY_STATE")),
    }
}

/// Open the state file.
pub fn open(given: Option<&Path>, mode: OpenMode) -> Result<State> {
    Ok(State::open(&state_path(given)?, mode)?)
}

/// How long to wait for another ferry process to release a deployment (`FERRY_LOCK_TIMEOUT` seconds, default 30).
pub fn lock_timeout() -> Duration {
    let secs = std::env::var("FERRY_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// `user@host`, for the deploy log and lock notes.
pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid{}", rustix::process::getuid().as_raw()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// Take a deployment's lock, telling the user when we have to wait.
pub fn lock(state: &State, d: &Deployment, command: &str) -> Result<DeploymentLock> {
    let holder = format!("pid {} (ferry {command}, {})", std::process::id(), who());
    match state.lock(d, &holder, Duration::ZERO) {
        Ok(l) => Ok(l),
        Err(state::Error::Locked { .. }) => {
            eprintln!("waiting for the lock of deployment '{}'...", d.name);
            Ok(state.lock(d, &holder, lock_timeout())?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Print an error the way every ferry command does, and turn the outcome into an exit code.
pub fn finish(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Print to stdout; a closed pipe (`ferry list | head`) is not an error.
pub fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("cannot read the current directory")?
            .join(p))
    }
}

/// Network files as absolute paths; each must exist (a typo must not become a deployment).
pub fn network_files(files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    files
        .iter()
        .map(|f| {
            let s = f.to_string_lossy();
            // `<nixpkgs/...>`-style lookup paths are kept as they are, as NixOps does.
            if s.starts_with('<') && s.ends_with('>') {
                return Ok(f.clone());
            }
            std::fs::canonicalize(f)
                .with_context(|| format!("cannot find network file {}", f.display()))
        })
        .collect()
}

/// Complain about network files that have vanished since `create`/`modify`.
pub fn check_files_exist(d: &Deployment) -> Result<()> {
    let gone: Vec<String> = d
        .network_files
        .iter()
        .filter(|f| !f.to_string_lossy().starts_with('<') && !f.exists())
        .map(|f| f.display().to_string())
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    bail!(
        "network file{} of deployment '{}' no longer exist{} (moved or deleted?): {}; \
         point the deployment at the new location with `ferry modify -d {} FILES…`",
        if gone.len() == 1 { "" } else { "s" },
        d.name,
        if gone.len() == 1 { "s" } else { "" },
        gone.join(", "),
        d.name
    )
}

/// A machine as the network files define it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    pub name: String,
    /// `deployment.targetHost` (the machine name unless set, as in NixOps).
    pub target_host: String,
    /// `deployment.tags`.
    pub tags: Vec<String>,
}

/// What [`discover`] finds in the network files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInfo {
    /// `network.description`, when the network sets one.
    pub description: Option<String>,
    /// `network.nixpkgs`, when the network pins nixpkgs itself.
    pub nixpkgs: Option<String>,
    pub machines: Vec<MachineSpec>,
}

/// The seam to the network layer: the machines of a deployment's network, evaluated with its recorded
/// arguments and search path (`-I` entries before NIX_PATH's, as `ferry eval` does).
pub fn discover(files: &[PathBuf], args: &[Arg], nix_path: &[String]) -> Result<NetworkInfo> {
    let mut search_path: Vec<SearchPathEntry> =
        nix_path.iter().map(|s| SearchPathEntry::parse(s)).collect();
    search_path.extend(EvalOptions::from_env().search_path);
    let mut eval = EvalOptions {
        search_path,
        ..EvalOptions::default()
    };
    for a in args {
        let value = match a.kind {
            ArgKind::Expr => AutoArg::Expr(a.value.clone()),
            ArgKind::Str => AutoArg::Str(a.value.clone()),
        };
        eval.auto_args.push((a.name.clone(), value));
    }
    let opts = DiscoverOptions {
        eval,
        machines: Vec::new(),
        resolve_key_text: false,
        ..DiscoverOptions::default()
    };
    let owned = files.to_vec();
    let discovery = crate::eval::run_with_big_stack(move || {
        network::discover(&owned, &opts).map_err(anyhow::Error::from)
    })
    .context("cannot run the evaluator")??;
    let Some(net) = discovery
        .network
        .as_ref()
        .filter(|_| !discovery.has_errors())
    else {
        let text = render_human(&discovery.diagnostics, &mut Sources::default(), false);
        bail!(
            "the network files have errors (`ferry lint` shows them all):\n{}",
            text.trim_end()
        );
    };
    // The network layer fills in NixOps's default; a network without a description has none to show.
    let description = Some(net.description.clone()).filter(|d| d != "Unnamed NixOps network");
    let machines = net
        .machines
        .values()
        .map(|m| MachineSpec {
            name: m.name.clone(),
            target_host: m.deployment.target_host.clone(),
            tags: m.deployment.tags.clone(),
        })
        .collect();
    Ok(NetworkInfo {
        description,
        nixpkgs: net.nixpkgs.clone(),
        machines,
    })
}

/// Column alignment in [`table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
    Center,
}

/// A table drawn as NixOps (prettytable) draws it.
pub fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
                .max(h.chars().count())
        })
        .collect();
    let rule = {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let line = |cells: Vec<&str>, aligns: &mut dyn Iterator<Item = Align>| {
        let mut s = String::from("|");
        for (cell, w) in cells.iter().zip(&widths) {
            let pad = w - cell.chars().count();
            let (l, r) = match aligns.next().unwrap_or(Align::Left) {
                Align::Left => (0, pad),
                Align::Right => (pad, 0),
                // prettytable puts the odd space on the left (seed 003: `|      Status     |`).
                Align::Center => (pad - pad / 2, pad / 2),
            };
            let _ = write!(s, " {}{cell}{} |", " ".repeat(l), " ".repeat(r));
        }
        s.push('\n');
        s
    };
    let mut out = rule.clone();
    // NixOps aligns each header like its column (seed 001: `| Name   |`, seed 003: `|      Status     |`).
    out.push_str(&line(
        headers.iter().map(|(h, _)| *h).collect(),
        &mut headers.iter().map(|(_, a)| *a),
    ));
    out.push_str(&rule);
    for row in rows {
        let cells: Vec<&str> = (0..headers.len())
            .map(|i| row.get(i).map_or("", String::as_str))
            .collect();
        out.push_str(&line(cells, &mut headers.iter().map(|(_, a)| *a)));
    }
    out.push_str(&rule);
    out
}

/// The description to show for a deployment.
pub fn description(d: &Deployment) -> &str {
    d.description.as_deref().unwrap_or("Unnamed ferry network")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_prettytable_layout() {
        let t = table(
            &[
                ("Name", Align::Left),
                ("# Machines", Align::Right),
                ("Status", Align::Center),
            ],
            &[vec!["target".into(), "0".into(), "New".into()]],
        );
        assert_eq!(
            t,
            "+--------+------------+--------+\n\
             | Name   | # Machines | Status |\n\
             +--------+------------+--------+\n\
             | target |          0 |   New  |\n\
             +--------+------------+--------+\n"
        );
    }

    #[test]
    fn later_args_win() {
        let n = NetworkArgs {
            arg: vec!["a".into(), "1".into(), "b".into(), "2".into()],
            argstr: vec!["a".into(), "x".into()],
            include: vec![],
        };
        let args = n.args();
        assert_eq!(args.len(), 2);
        assert_eq!(
            (args[0].name.as_str(), args[0].kind, args[0].value.as_str()),
            ("a", ArgKind::Str, "x")
        );
    }
}
