//! Command-line interface: clap commands and rendering. The only layer that prints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod copy;
pub mod create;
pub mod delete;
pub mod deployments;
pub mod destroy;
pub mod eval;
pub mod exec;
pub mod export;
pub mod import;
pub mod import_nixops;
pub mod info;
pub mod lint;
pub mod list;
pub mod logging;
pub mod modify;
pub mod nix_eval;
pub mod path_info;
pub mod render;
pub mod ssh;
pub mod ssh_key;

/// ferry: deploy NixOS networks to fleets of machines.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    /// The state file (default: ~/.ferry/state.db); deployment commands also take it as `-s FILE`.
    #[arg(
        long = "state",
        global = true,
        env = "FERRY_STATE",
        value_name = "FILE"
    )]
    pub state: Option<PathBuf>,

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
    /// Create a deployment from network files.
    Create(create::CreateArgs),
    /// Change a deployment's network files, name, description or arguments.
    Modify(modify::ModifyArgs),
    /// List the deployments.
    List(list::ListArgs),
    /// Show a deployment and the status of its machines.
    Info(info::InfoArgs),
    /// Delete a deployment from the state file.
    Delete(delete::DeleteArgs),
    /// Destroy machines (backend "none": forget them).
    Destroy(destroy::DestroyArgs),
    /// Print deployments as JSON.
    Export(export::ExportArgs),
    /// Add deployments from an export document.
    Import(import::ImportArgs),
    /// Print a deployment's SSH key.
    SshKey(ssh_key::SshKeyArgs),
    /// Create deployments from a NixOps state file.
    ImportNixops(import_nixops::ImportNixopsArgs),
    /// Evaluate a Nix file or expression like `nix-instantiate --eval`.
    NixEval(nix_eval::NixEvalArgs),
    /// Discover a NixOps network and print each machine's deployment options.
    Eval(eval::EvalArgs),
    /// Check network files: syntax, scopes, secrets, and the deployment options.
    Lint(lint::LintArgs),
    /// Copy closures to many hosts at once (each NAR read and compressed once).
    Copy(copy::CopyArgs),
}

/// Parse the command line, run the command and map its outcome to an exit code.
pub fn run() -> ExitCode {
    logging::init();
    let cli = Cli::parse();
    let state = cli.state.as_deref();
    match cli.command {
        Command::PathInfo(args) => path_info::run(args),
        Command::Create(args) => create::run(state, args),
        Command::Modify(args) => modify::run(state, args),
        Command::List(args) => list::run(state, args),
        Command::Info(args) => info::run(state, args),
        Command::Delete(args) => delete::run(state, args),
        Command::Destroy(args) => destroy::run(state, args),
        Command::Export(args) => export::run(state, args),
        Command::Import(args) => import::run(state, args),
        Command::SshKey(args) => ssh_key::run(state, args),
        Command::ImportNixops(args) => import_nixops::run(state, args),
        Command::NixEval(args) => nix_eval::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Lint(args) => lint::run(args),
        Command::Ssh(args) => ssh::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Copy(args) => copy::run(args),
    }
}
