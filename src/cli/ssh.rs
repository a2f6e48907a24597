//! `ferry ssh`: an interactive shell (with a PTY) on a machine, or one command with its exit code passed through.
//!
//! Layer: `cli`. Also home of [`ConnectArgs`], the connection flags shared with `ferry exec`.
//! Until deployments exist, machines are named with `--to [user@]host[:port]`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ssh::{ConnectOptions, ExecEvent, PtyRequest, RemoteProcess, SshSession, Target};

/// Connection flags shared by `ferry ssh` and `ferry exec`.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Private key to try first (ed25519 in OpenSSH format, mode 0600); then ssh-agent, then ~/.ssh/config.
    #[arg(short = 'i', long = "identity", value_name = "KEY")]
    pub identity: Option<PathBuf>,
    /// Record the key of a host that is not in any known_hosts file (after checking its fingerprint).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// An ssh option, as `-o Key=Value` for OpenSSH (HostName, User, Port, IdentityFile, ProxyJump, ...).
    #[arg(short = 'o', long = "ssh-option", value_name = "KEY=VALUE")]
    pub ssh_options: Vec<String>,
    /// ssh_config file to read instead of ~/.ssh/config ("none" for none).
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// ferry's own known_hosts file (default: $XDG_DATA_HOME/ferry/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Seconds allowed for each of TCP connect, SSH handshake and authentication.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub connect_timeout: u64,
}

impl ConnectArgs {
    /// The library options these flags describe.
    pub fn options(&self) -> ConnectOptions {
        let mut o = ConnectOptions::from_env();
        o.identity = self.identity.clone();
        o.accept_new_host_keys = self.accept_new_host_keys;
        o.ssh_options = self
            .ssh_options
            .iter()
            .flat_map(|kv| ["-o".to_string(), kv.clone()])
            .collect();
        match self.ssh_config.as_deref() {
            Some(p) if p.as_os_str() == "none" => o.ssh_config_file = None,
            Some(p) => o.ssh_config_file = Some(p.to_path_buf()),
            None => {}
        }
        if let Some(k) = &self.known_hosts {
            o.ferry_known_hosts = k.clone();
        }
        o.connect_timeout = Duration::from_secs(self.connect_timeout.max(1));
        o
    }
}

/// Open a shell on a machine, or run a command there.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// The machine: [user@]host[:port] (a ~/.ssh/config alias works too).
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub to: String,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Command to run; its words are joined with spaces and run by the remote user's shell (as with ssh).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Runs `ferry ssh`.
pub fn run(args: SshArgs) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry ssh: cannot start the async runtime: {e}");
            return ExitCode::from(255);
        }
    };
    let result = rt.block_on(ssh(args));
    // Don't wait for the blocking stdin reader: the remote side is done.
    rt.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ferry ssh: {e:#}");
            // 255, like ssh, when the connection itself failed.
            ExitCode::from(255)
        }
    }
}

async fn ssh(args: SshArgs) -> Result<u8> {
    let target = Target::parse(&args.to)?;
    let session = SshSession::connect(&target, &args.connect.options())
        .await
        .with_context(|| format!("connecting to {target}"))?;
    if args.command.is_empty() {
        if rustix::termios::isatty(std::io::stdin()) {
            return interactive(&session).await;
        }
        // No terminal: a login shell reading commands from our stdin, like `ssh host < script`.
        let process = session.exec("exec \"${SHELL:-/bin/sh}\" -l").await?;
        return pipe(process).await;
    }
    let process = session.exec(&args.command.join(" ")).await?;
    pipe(process).await
}

/// Copies local stdin to the remote command and its output to local stdout/stderr; returns its exit code.
async fn pipe(mut process: RemoteProcess) -> Result<u8> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<Vec<u8>>>(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None).await;
                    break;
                }
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            input = rx.recv(), if stdin_open => match input {
                Some(Some(data)) => process.write_stdin(&data).await?,
                Some(None) | None => {
                    stdin_open = false;
                    process.close_stdin().await?;
                }
            },
            event = process.next_event() => match event? {
                Some(ExecEvent::Stdout(d)) => {
                    if write_all_or_broken_pipe(&mut stdout, &d).await? {
                        return Ok(0);
                    }
                }
                Some(ExecEvent::Stderr(d)) => {
                    stderr.write_all(&d).await?;
                    stderr.flush().await?;
                }
                Some(ExecEvent::Exit(status)) => {
                    if let crate::ssh::ExitStatus::Signal { name, .. } = &status {
                        eprintln!("ferry ssh: remote command killed by SIG{name}");
                    }
                    return Ok(status.shell_code());
                }
                None => return Ok(255),
            },
        }
    }
}

/// Writes and flushes; `Ok(true)` when the reader went away (a broken pipe is not an error, as in ripgrep).
async fn write_all_or_broken_pipe(out: &mut tokio::io::Stdout, data: &[u8]) -> Result<bool> {
    match out.write_all(data).await.and(out.flush().await) {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Puts the local terminal in raw mode and restores it when dropped.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter() -> Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).context("reading terminal settings")?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw)
            .context("setting raw mode")?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

fn terminal_size() -> (u32, u32) {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(ws) if ws.ws_col > 0 && ws.ws_row > 0 => (u32::from(ws.ws_col), u32::from(ws.ws_row)),
        _ => (80, 24),
    }
}

/// A login shell on a PTY: raw local terminal, window size changes forwarded.
async fn interactive(session: &SshSession) -> Result<u8> {
    let (cols, rows) = terminal_size();
    let pty = PtyRequest {
        term: std::env::var("TERM").unwrap_or_else(|_| "xterm".to_string()),
        cols,
        rows,
    };
    let mut process = session.exec_pty(None, &pty).await?;
    let _raw = RawMode::enter()?;
    let mut winch =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                break;
            }
        }
    });
    let mut stdout = tokio::io::stdout();
    loop {
        tokio::select! {
            Some(data) = rx.recv() => process.write_stdin(&data).await?,
            Some(()) = async { match winch.as_mut() { Some(w) => w.recv().await, None => std::future::pending().await } } => {
                let (c, r) = terminal_size();
                process.window_change(c, r).await?;
            }
            event = process.next_event() => match event? {
                Some(ExecEvent::Stdout(d)) | Some(ExecEvent::Stderr(d)) => {
                    stdout.write_all(&d).await?;
                    stdout.flush().await?;
                }
                Some(ExecEvent::Exit(status)) => {
                    let _ = std::io::stdout().flush();
                    return Ok(status.shell_code());
                }
                None => return Ok(255),
            },
        }
    }
}
