//! Command-line interface: clap commands and rendering. The only layer that prints.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod exec;
pub mod logging;
pub mod path_info;
pub mod ssh;

/// ferry: deploy NixOS networks to fleets of machines.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a shell on a machine (with a PTY), or run a command there with its exit code passed through.
    Ssh(ssh::SshArgs),
    /// Run a command on many machines at once; output prefixed `host> `, summary at the end.
    Exec(exec::ExecArgs),
    /// Show information about store paths, like `nix path-info`.
    PathInfo(path_info::PathInfoArgs),
}

/// Parse the command line, run the command and map its outcome to an exit code.
pub fn run() -> ExitCode {
    logging::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Ssh(args) => ssh::run(args),
        Command::Exec(args) => exec::run(args),
        Command::PathInfo(args) => path_info::run(args),
    }
}
