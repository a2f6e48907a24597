//! `ferry path-info`: show store path metadata from the Nix daemon, like `nix path-info` (Nix 2.8).
//!
//! Layer: `cli`. Talks to the daemon only through `daemon::DaemonClient`.
//!
//! Output matches `nix path-info` on Nix 2.8: one path per line, sorted like a Nix `StorePathSet`,
//! with tab-separated, right-aligned sizes for `-s`/`-S`; `--json` gives the same keys in the same
//! order (`path, narHash, narSize, references, ca, closureSize, deriver, registrationTime,
//! ultimate, signatures`, the optional ones only when set). One difference on purpose: `narHash`
//! is `sha256:<nix32>` (the form `nix-store -q --hash` and narinfo use), where Nix 2.8 prints SRI.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use crate::daemon::closure::{closure_map, closure_size};
use crate::daemon::{DaemonClient, Error as DaemonErr, Op, socket_path};
use crate::store::{STORE_DIR, StorePath, ValidPathInfo};

#[derive(Debug, clap::Args)]
pub struct PathInfoArgs {
    /// Show the closure of the paths, not just the paths.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Print the NAR size of each path.
    #[arg(short = 's', long)]
    pub size: bool,
    /// Print the closure size of each path (sum of the NAR sizes of its closure).
    #[arg(short = 'S', long = "closure-size")]
    pub closure_size: bool,
    /// Print JSON like `nix path-info --json`.
    #[arg(long)]
    pub json: bool,
    /// Store paths, or symlinks to them (like ./result).
    #[arg(required = true, value_name = "PATHS")]
    pub paths: Vec<String>,
}

/// Run the command; errors become one line on stderr and exit code 1.
pub fn run(args: PathInfoArgs) -> ExitCode {
    match run_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Output piped into `head` is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A store path from the command line: `/nix/store/<hash>-<name>[/sub/path]`, or a filesystem
/// path (a symlink such as `./result`) that resolves into the store.
pub fn parse_store_path_arg(arg: &str) -> Result<StorePath> {
    if arg.starts_with(STORE_DIR) {
        return StorePath::from_absolute_path_prefix(arg)
            .map(|(p, _)| p)
            .with_context(|| format!("'{arg}' is not a valid store path"));
    }
    let resolved = std::fs::canonicalize(Path::new(arg))
        .with_context(|| format!("'{arg}' is not a store path and cannot be resolved"))?;
    let s = resolved.to_string_lossy().into_owned();
    StorePath::from_absolute_path_prefix(&s)
        .map(|(p, _)| p)
        .with_context(|| format!("'{arg}' resolves to '{s}', which is not a valid store path"))
}

fn run_inner(args: &PathInfoArgs) -> Result<()> {
    let roots: Vec<StorePath> = args
        .paths
        .iter()
        .map(|a| parse_store_path_arg(a))
        .collect::<Result<_>>()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (infos, shown) = rt.block_on(query(args, &roots))?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if args.json {
        let list: Vec<JsonInfo<'_>> = shown
            .iter()
            .filter_map(|p| infos.get(p))
            .map(|info| {
                JsonInfo::new(
                    info,
                    args.closure_size.then(|| closure_size(&infos, &info.path)),
                )
            })
            .collect();
        serde_json::to_writer(&mut out, &list).context("cannot write JSON")?;
        writeln!(out)?;
    } else {
        for p in &shown {
            let Some(info) = infos.get(p) else { continue };
            write!(out, "{}", info.path)?;
            if args.size {
                write!(out, "\t{:>11}", info.nar_size)?;
            }
            if args.closure_size {
                write!(out, "\t{:>11}", closure_size(&infos, &info.path))?;
            }
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Query the daemon: the infos needed (the whole closure with `-r` or `-S`) and which paths to
/// show, in `StorePathSet` order.
async fn query(
    args: &PathInfoArgs,
    roots: &[StorePath],
) -> Result<(BTreeMap<StorePath, ValidPathInfo>, BTreeSet<StorePath>)> {
    let mut client = DaemonClient::connect_local().await.map_err(|e| match e {
        DaemonErr::Connect { .. } => anyhow!(e),
        e => anyhow!(e).context(format!(
            "cannot talk to the Nix daemon at {}",
            socket_path().display()
        )),
    })?;
    let unique: Vec<StorePath> = roots
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let infos = if args.recursive || args.closure_size {
        closure_map(&mut client, &unique).await.map_err(not_valid)?
    } else {
        let replies = client.query_path_infos(&unique).await?;
        let mut m = BTreeMap::new();
        for (p, info) in unique.iter().zip(replies) {
            match info {
                Some(i) => {
                    m.insert(p.clone(), i);
                }
                None => return Err(anyhow!("path '{p}' is not valid")),
            }
        }
        m
    };
    let shown = if args.recursive {
        infos.keys().cloned().collect()
    } else {
        unique.into_iter().collect()
    };
    Ok((infos, shown))
}

fn not_valid(e: DaemonErr) -> anyhow::Error {
    match e {
        DaemonErr::InvalidPath {
            op: Op::QueryPathInfo,
            path,
        } => anyhow!("path '{path}' is not valid"),
        e => anyhow!(e),
    }
}

/// One element of `--json`, keys in Nix 2.8's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonInfo<'a> {
    path: &'a StorePath,
    nar_hash: String,
    nar_size: u64,
    references: &'a BTreeSet<StorePath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closure_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deriver: Option<&'a StorePath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ultimate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signatures: Option<&'a BTreeSet<String>>,
}

impl<'a> JsonInfo<'a> {
    fn new(info: &'a ValidPathInfo, closure_size: Option<u64>) -> Self {
        JsonInfo {
            path: &info.path,
            nar_hash: info.nar_hash.to_typed_nix32(),
            nar_size: info.nar_size,
            references: &info.references,
            ca: info.ca.as_deref(),
            closure_size,
            deriver: info.deriver.as_ref(),
            registration_time: (info.registration_time != 0).then_some(info.registration_time),
            ultimate: info.ultimate.then_some(true),
            signatures: (!info.sigs.is_empty()).then_some(&info.sigs),
        }
    }
}
