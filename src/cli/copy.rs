//! `ferry copy`: copy closures to many hosts at once (or from one host into the local store).
//!
//! Layer: `cli`. Drives [`crate::copy::copy`] and renders its events: one progress bar per target
//! plus a total on a terminal, plain `host> ` lines otherwise, then a summary per target (or JSON
//! with `--json`). Exit code 1 when any target failed, 130 when interrupted.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{mpsc, watch};

use super::ssh::ConnectArgs;
use crate::copy::{CopyOptions, CopyReport, Endpoint, Event, NarCache, TargetReport};
use crate::ssh::Target;
use crate::store::{SecretKey, StorePath};

/// Copy the closures of store paths to hosts over SSH.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Destination, as [user@]host[:port] (repeat for several hosts).
    #[arg(
        long,
        value_name = "[USER@]HOST[:PORT]",
        value_delimiter = ',',
        required_unless_present = "from"
    )]
    pub to: Vec<String>,
    /// Copy from this host into the local store instead.
    #[arg(long, value_name = "[USER@]HOST[:PORT]", conflicts_with = "to")]
    pub from: Option<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Sign the copied paths with this Nix secret key file (needed when the remote user isn't trusted).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// Store sessions per host.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub sessions: u32,
    /// The NAR cache directory (default: $FERRY_CACHE_DIR, else ~/.cache/ferry/nar).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Reconnects per host after a dropped connection.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Store paths (or symlinks to them, like ./result) whose closures are copied.
    #[arg(required = true, value_name = "PATHS")]
    pub paths: Vec<String>,
}

/// Runs `ferry copy`.
pub fn run(args: CopyArgs) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry copy: cannot start the async runtime: {e}");
            return ExitCode::from(255);
        }
    };
    let code = rt.block_on(copy(args));
    rt.shutdown_background();
    code
}

/// A store path from the command line: the path itself, or a symlink (e.g. `./result`) into the
/// store, or a file inside a store path.
fn parse_path(s: &str) -> Result<StorePath, String> {
    if let Ok(p) = StorePath::from_absolute_path(s) {
        return Ok(p);
    }
    let real = std::fs::canonicalize(s).map_err(|e| format!("{s}: {e}"))?;
    let real = real.to_string_lossy();
    let prefix = format!("{}/", crate::store::STORE_DIR);
    let rest = real
        .strip_prefix(&prefix)
        .ok_or_else(|| format!("{s} is not in {}", crate::store::STORE_DIR))?;
    let top = rest.split('/').next().unwrap_or_default();
    StorePath::from_absolute_path(&format!("{prefix}{top}")).map_err(|e| format!("{s}: {e}"))
}

async fn copy(args: CopyArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("ferry copy: {msg}");
        ExitCode::from(2)
    };
    let mut roots = Vec::new();
    for p in &args.paths {
        match parse_path(p) {
            Ok(p) => roots.push(p),
            Err(e) => return fail(e),
        }
    }
    let opts = args.connect.options();
    let ssh = |s: &str| -> Result<Endpoint, String> {
        let target = Target::parse(s).map_err(|e| e.to_string())?;
        Ok(Endpoint::Ssh {
            target,
            opts: Box::new(opts.clone()),
        })
    };
    let (source, targets) = match &args.from {
        Some(from) => match ssh(from) {
            Ok(e) => (e, vec![Endpoint::Local { socket: None }]),
            Err(e) => return fail(e),
        },
        None => {
            let mut t = Vec::new();
            for s in &args.to {
                match ssh(s) {
                    Ok(e) => t.push(e),
                    Err(e) => return fail(e),
                }
            }
            (Endpoint::Local { socket: None }, t)
        }
    };
    let cache_dir = args.cache_dir.clone().unwrap_or_else(NarCache::default_dir);
    let cache = match NarCache::open(&cache_dir, 3) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let names: Vec<String> = targets.iter().map(Endpoint::name).collect();
    let mut o = CopyOptions::new(source, targets, roots, cache);
    o.sessions_per_target = args.sessions as usize;
    o.max_retries = args.retries;
    if let Some(k) = &args.sign_key {
        match SecretKey::from_file(k) {
            Ok(k) => o.sign_key = Some(k),
            Err(e) => return fail(format!("{}: {e}", k.display())),
        }
    }
    let (cancel_tx, cancel_rx) = watch::channel(false);
    o.cancel = cancel_rx;
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = cancel_tx.send(true);
        }
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let tty = std::io::stderr().is_terminal();
    let render = tokio::spawn(render(rx, names, tty));
    let result = crate::copy::copy(o, Some(tx)).await;
    let _ = render.await;
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(crate::copy::engine::error_chain(&e)),
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e.to_string()),
        }
    } else {
        print_summary(&report);
    }
    let cancelled = report.targets.iter().any(|t| {
        t.error
            .as_deref()
            .is_some_and(|e| e.ends_with("was cancelled"))
    });
    if cancelled {
        ExitCode::from(130)
    } else if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

async fn render(mut rx: mpsc::UnboundedReceiver<Event>, names: Vec<String>, tty: bool) {
    let multi = MultiProgress::with_draw_target(if tty {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template(
        "{prefix:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let total = multi.add(ProgressBar::new(0));
    total.set_style(style.clone());
    total.set_prefix("total");
    let bars: Vec<(String, ProgressBar)> = names
        .iter()
        .map(|n| {
            let b = multi.insert_before(&total, ProgressBar::new(0));
            b.set_style(style.clone());
            b.set_prefix(n.clone());
            b.enable_steady_tick(Duration::from_millis(200));
            (n.clone(), b)
        })
        .collect();
    let bar = |t: &str| bars.iter().find(|(n, _)| n == t).map(|(_, b)| b);
    let say = |line: String| {
        if tty {
            multi.suspend(|| eprintln!("{line}"));
        } else {
            eprintln!("{line}");
        }
    };
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Closure { paths, nar_bytes } => {
                say(format!("closure: {paths} paths, {}", mib(nar_bytes)));
            }
            Event::Planned {
                target,
                paths,
                nar_bytes,
                ..
            } => {
                if let Some(b) = bar(&target) {
                    b.set_length(nar_bytes);
                    b.set_position(0);
                    b.set_message(format!("0/{paths} paths"));
                }
                total.inc_length(nar_bytes);
                if !tty {
                    say(format!(
                        "{target}> copying {paths} paths ({})...",
                        mib(nar_bytes)
                    ));
                }
            }
            Event::Copied {
                target,
                paths,
                nar_bytes,
            } => {
                if let Some(b) = bar(&target) {
                    b.inc(nar_bytes);
                    b.set_message(format!("+{paths} paths"));
                }
                total.inc(nar_bytes);
            }
            Event::Retrying {
                target,
                attempt,
                delay,
                error,
            } => say(format!(
                "{target}> connection failed ({error}); retry {attempt} in {:.1}s",
                delay.as_secs_f64()
            )),
            Event::Finished(r) => {
                if let Some(b) = bar(&r.target) {
                    b.finish_with_message(if r.ok() { "done" } else { "FAILED" });
                }
            }
            Event::Ready { .. } => {}
        }
    }
    total.finish();
    let _ = multi.clear();
}

fn target_line(t: &TargetReport) -> String {
    let base = format!(
        "{}> {} paths copied ({} present), {} NAR, {} on the wire, {:.2}s",
        t.target,
        t.paths_copied,
        t.present,
        mib(t.nar_bytes),
        mib(t.wire_bytes),
        t.seconds
    );
    match &t.error {
        None => base,
        Some(e) => format!(
            "{base}; FAILED ({} paths still missing): {e}",
            t.paths_missing
        ),
    }
}

fn print_summary(r: &CopyReport) {
    for t in &r.targets {
        eprintln!("{}", target_line(t));
    }
    let s = &r.stats;
    eprintln!(
        "total: closure {} paths ({}); read {} from the source in {} NARs, {} from the cache; \
         compressed {} -> {}; saved by dedup {}; {:.2}s",
        r.closure_paths,
        mib(r.closure_nar_bytes),
        mib(s.nar_bytes_read),
        s.nar_from_path,
        mib(s.cache_hit_bytes),
        mib(s.ready_nar_bytes),
        mib(s.compressed_bytes),
        mib(r.saved_by_dedup()),
        r.seconds
    );
    let failed: Vec<&str> = r
        .targets
        .iter()
        .filter(|t| !t.ok())
        .map(|t| t.target.as_str())
        .collect();
    if !failed.is_empty() {
        eprintln!("failed: {}", failed.join(", "));
    }
}
