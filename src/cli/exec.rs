//! `ferry exec`: run one command on many machines at once (NixOps's ssh-for-each).
//!
//! Layer: `cli`. Output lines are prefixed `host> ` (stdout to stdout, stderr to stderr), whole lines at a time
//! so hosts never interleave inside a line; a summary of exit statuses ends the run, and the exit code is
//! non-zero if any host failed. Until deployments exist, machines are named with `--to`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio::sync::{Semaphore, mpsc};

use super::ssh::ConnectArgs;
use crate::ssh::{ExecEvent, ExitStatus, SshSession, Target};

/// Run a command on several machines in parallel.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Machines, as [user@]host[:port] (repeat the flag or separate with commas).
    #[arg(
        long,
        value_name = "[USER@]HOST[:PORT]",
        value_delimiter = ',',
        required = true
    )]
    pub to: Vec<String>,
    /// How many machines run at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: u32,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Command to run; its words are joined with spaces and run by each remote user's shell.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

enum Line {
    Out(String),
    Err(String),
}

/// How one host ended.
enum Outcome {
    Exited(ExitStatus),
    Failed(String),
}

/// Runs `ferry exec`.
pub fn run(args: ExecArgs) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry exec: cannot start the async runtime: {e}");
            return ExitCode::from(255);
        }
    };
    let code = rt.block_on(exec(args));
    rt.shutdown_background();
    code
}

/// Splits `buf` into complete lines, sent with `host> `; keeps the unfinished tail.
fn emit_lines(
    host: &str,
    buf: &mut Vec<u8>,
    tx: &mpsc::UnboundedSender<Line>,
    err: bool,
    flush: bool,
) {
    while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buf.drain(..=pos).collect();
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        let msg = format!("{host}> {text}");
        let _ = tx.send(if err { Line::Err(msg) } else { Line::Out(msg) });
    }
    if flush && !buf.is_empty() {
        let msg = format!("{host}> {}", String::from_utf8_lossy(buf));
        buf.clear();
        let _ = tx.send(if err { Line::Err(msg) } else { Line::Out(msg) });
    }
}

async fn run_one(
    target: Target,
    label: String,
    opts: crate::ssh::ConnectOptions,
    command: String,
    tx: mpsc::UnboundedSender<Line>,
) -> Outcome {
    let session = match SshSession::connect(&target, &opts).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let mut process = match session.exec(&command).await {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if let Err(e) = process.close_stdin().await {
        return Outcome::Failed(e.to_string());
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        match process.next_event().await {
            Ok(Some(ExecEvent::Stdout(d))) => {
                out.extend_from_slice(&d);
                emit_lines(&label, &mut out, &tx, false, false);
            }
            Ok(Some(ExecEvent::Stderr(d))) => {
                err.extend_from_slice(&d);
                emit_lines(&label, &mut err, &tx, true, false);
            }
            Ok(Some(ExecEvent::Exit(status))) => {
                emit_lines(&label, &mut out, &tx, false, true);
                emit_lines(&label, &mut err, &tx, true, true);
                let _ = session.close().await;
                return Outcome::Exited(status);
            }
            Ok(None) => return Outcome::Exited(ExitStatus::Unknown),
            Err(e) => {
                emit_lines(&label, &mut out, &tx, false, true);
                emit_lines(&label, &mut err, &tx, true, true);
                return Outcome::Failed(e.to_string());
            }
        }
    }
}

async fn exec(args: ExecArgs) -> ExitCode {
    let mut targets = Vec::new();
    for t in &args.to {
        match Target::parse(t) {
            Ok(target) => targets.push((target, t.clone())),
            Err(e) => {
                eprintln!("ferry exec: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let opts = args.connect.options();
    let command = args.command.join(" ");
    let limit = Arc::new(Semaphore::new(args.parallel as usize));
    let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
    let mut tasks = Vec::new();
    for (target, label) in targets {
        let (opts, command, tx, limit) = (opts.clone(), command.clone(), tx.clone(), limit.clone());
        let label2 = label.clone();
        tasks.push((
            label,
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                run_one(target, label2, opts, command, tx).await
            }),
        ));
    }
    drop(tx);
    // One printer: whole lines, so hosts never interleave inside a line.
    let printer = tokio::task::spawn_blocking(move || {
        let mut broken = false;
        while let Some(line) = rx.blocking_recv() {
            match line {
                Line::Out(l) if !broken => {
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{l}").and_then(|()| out.flush()).is_err() {
                        // Reader went away (e.g. `| head`): keep running, stop printing.
                        broken = true;
                    }
                }
                Line::Out(_) => {}
                Line::Err(l) => {
                    let _ = writeln!(std::io::stderr().lock(), "{l}");
                }
            }
        }
    });
    let mut results = Vec::new();
    for (label, task) in tasks {
        let outcome = match task.await {
            Ok(o) => o,
            Err(e) => Outcome::Failed(format!("internal error: {e}")),
        };
        results.push((label, outcome));
    }
    let _ = printer.await;

    let width = results.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut failed = 0;
    let mut summary = String::from("summary:\n");
    for (label, outcome) in &results {
        let text = match outcome {
            Outcome::Exited(s) if s.success() => "ok (exit 0)".to_string(),
            Outcome::Exited(s) => {
                failed += 1;
                format!("FAILED ({s})")
            }
            Outcome::Failed(e) => {
                failed += 1;
                format!("FAILED: {}", e.lines().next().unwrap_or_default())
            }
        };
        summary.push_str(&format!("  {label:<width$}  {text}\n"));
    }
    summary.push_str(&format!(
        "{} of {} hosts succeeded\n",
        results.len() - failed,
        results.len()
    ));
    let _ = std::io::stderr().lock().write_all(summary.as_bytes());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
