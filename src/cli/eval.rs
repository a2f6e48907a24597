//! `ferry eval FILES… [--machine M]… [--json] [-I PATH]… [--arg N E]… [--argstr N V]…`: discover the
//! network and print it with each machine's resolved deployment options. Key contents never appear.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::eval::{AutoArg, EvalOptions, SearchPathEntry};
use crate::network::{DiscoverOptions, KeySource, Network, discover};

use super::render::{Sources, render_human, stderr_is_terminal, want_color};

/// Evaluator flags shared by `ferry eval` and `ferry lint`.
#[derive(Debug, Args, Clone, Default)]
pub struct EvalFlags {
    /// Add a search path entry (`prefix=path` or `path`), before NIX_PATH's.
    #[arg(short = 'I', value_name = "PATH")]
    pub include: Vec<String>,
    /// Pass NAME = EXPR to network files that are functions.
    #[arg(long, num_args = 2, value_names = ["NAME", "EXPR"])]
    pub arg: Vec<String>,
    /// Pass NAME = "VALUE" to network files that are functions.
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"])]
    pub argstr: Vec<String>,
}

impl EvalFlags {
    /// The evaluator options: `-I` entries, then NIX_PATH's; the automatic arguments.
    pub fn options(&self) -> EvalOptions {
        let mut search_path: Vec<SearchPathEntry> = self
            .include
            .iter()
            .map(|s| SearchPathEntry::parse(s))
            .collect();
        let env = EvalOptions::from_env();
        search_path.extend(env.search_path);
        let mut opts = EvalOptions {
            search_path,
            ..EvalOptions::default()
        };
        for pair in self.arg.chunks(2) {
            if let [n, e] = pair {
                opts.auto_args.push((n.clone(), AutoArg::Expr(e.clone())));
            }
        }
        for pair in self.argstr.chunks(2) {
            if let [n, v] = pair {
                opts.auto_args.push((n.clone(), AutoArg::Str(v.clone())));
            }
        }
        opts
    }
}

/// Arguments of `ferry eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Network files; later files extend earlier ones.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Only this machine (repeatable).
    #[arg(long = "machine", value_name = "M")]
    pub machines: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub flags: EvalFlags,
}

/// Runs `ferry eval`.
pub fn run(args: EvalArgs) -> ExitCode {
    let opts = DiscoverOptions {
        eval: args.flags.options(),
        machines: args.machines.clone(),
        resolve_key_text: false,
    };
    let files = args.files.clone();
    let result = crate::eval::run_with_big_stack(move || -> crate::network::Result<_> {
        discover(&files, &opts)
    });
    let discovery = match result {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if !discovery.diagnostics.is_empty() {
        let text = render_human(
            &discovery.diagnostics,
            &mut Sources::default(),
            want_color(stderr_is_terminal()),
        );
        eprint!("{text}");
    }
    let Some(network) = discovery
        .network
        .as_ref()
        .filter(|_| !discovery.has_errors())
    else {
        eprintln!("error: the network has errors; nothing printed");
        return ExitCode::from(1);
    };
    let out = if args.json {
        network.summary_json().to_string()
    } else {
        human(network)
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe is not an error.
    let _ = writeln!(stdout, "{}", out.trim_end());
    ExitCode::SUCCESS
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The human listing.
pub fn human(n: &Network) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "network: {}", n.description);
    let _ = writeln!(out, "  enableRollback: {}", n.enable_rollback);
    let _ = writeln!(
        out,
        "  nixpkgs: {}",
        n.nixpkgs
            .as_deref()
            .unwrap_or("<nixpkgs> (from the search path)")
    );
    for (name, m) in &n.machines {
        let d = &m.deployment;
        let _ = writeln!(out, "\nmachine {name}");
        let _ = writeln!(out, "  targetHost: {}", d.target_host);
        let _ = writeln!(out, "  targetPort: {}", d.target_port);
        let _ = writeln!(out, "  targetUser: {}", d.target_user);
        let _ = writeln!(out, "  sshOptions: {}", list(&d.ssh_options));
        let _ = writeln!(out, "  tags: {}", list(&d.tags));
        let _ = writeln!(out, "  buildOnTarget: {}", d.build_on_target);
        let _ = writeln!(
            out,
            "  substituteOnDestination: {}",
            d.substitute_on_destination
        );
        let _ = writeln!(
            out,
            "  privilegeEscalationCommand: {}",
            list(&d.privilege_escalation_command)
        );
        let _ = writeln!(out, "  provisionSSHKey: {}", d.provision_ssh_key);
        let _ = writeln!(out, "  alwaysActivate: {}", d.always_activate);
        if d.keys.is_empty() {
            let _ = writeln!(out, "  keys: {{}}");
        } else {
            let _ = writeln!(out, "  keys:");
        }
        for (k, key) in &d.keys {
            let source = match &key.source {
                KeySource::Text(_) => "text".to_string(),
                KeySource::KeyFile(f) => format!("keyFile {f}"),
                KeySource::KeyCommand(c) => format!("keyCommand {}", list(c)),
            };
            let _ = writeln!(
                out,
                "    {k}: {source}; {}:{} {} in {}, {}",
                key.user,
                key.group,
                key.permissions_string(),
                key.dest_dir,
                key.upload_at.as_str()
            );
        }
    }
    out
}
