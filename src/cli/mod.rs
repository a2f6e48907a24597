//! Command-line interface: clap commands and rendering. The only layer that prints.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod copy;
pub mod eval;
pub mod exec;
pub mod lint;
pub mod logging;
pub mod nix_eval;
pub mod path_info;
pub mod render;
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
    /// Show information about store paths, like `nix path-info`.
    PathInfo(path_info::PathInfoArgs),
    /// Evaluate a Nix file or expression like `nix-instantiate --eval`.
    NixEval(nix_eval::NixEvalArgs),
    /// Discover a NixOps network and print each machine's deployment options.
    Eval(eval::EvalArgs),
    /// Check network files: syntax, scopes, secrets, and the deployment options.
    Lint(lint::LintArgs),
    /// Open a shell on a machine (with a PTY), or run a command there with its exit code passed through.
    Ssh(ssh::SshArgs),
    /// Run a command on many machines at once; output prefixed `host> `, summary at the end.
    Exec(exec::ExecArgs),
    /// Copy closures to many hosts at once (each NAR read and compressed once).
    Copy(copy::CopyArgs),
}

/// Parse the command line, run the command and map its outcome to an exit code.
pub fn run() -> ExitCode {
    logging::init();
    let cli = Cli::parse();
    match cli.command {
        Command::PathInfo(args) => path_info::run(args),
        Command::NixEval(args) => nix_eval::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Lint(args) => lint::run(args),
        Command::Ssh(args) => ssh::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Copy(args) => copy::run(args),
    }
}
