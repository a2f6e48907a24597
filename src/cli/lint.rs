//! `ferry lint FILES… [--format human|json] [--explain CODE]`: static rules on every file plus the option
//! rules from evaluating the network. Exits 1 when there are errors, 0 on warnings only.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::network::DiscoverOptions;
use crate::network::lint::{LintOptions, lint};
use crate::syntax::Code;

use super::eval::EvalFlags;
use super::render::{Sources, render_human, render_json, stdout_is_terminal, summary, want_color};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
}

/// Arguments of `ferry lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Network files (and modules) to check.
    #[arg(required_unless_present = "explain")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Print what a rule does, why, and an example (a code like E0003 or a name like unknown-option).
    #[arg(long, value_name = "CODE")]
    pub explain: Option<String>,
    /// Only the static rules: don't evaluate the network.
    #[arg(long)]
    pub no_eval: bool,
    #[command(flatten)]
    pub flags: EvalFlags,
}

/// Runs `ferry lint`.
pub fn run(args: LintArgs) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    if let Some(code) = &args.explain {
        return match Code::parse(code) {
            Some(c) => {
                let _ = writeln!(
                    stdout,
                    "{} ({}, {})\n\n{}",
                    c.as_str(),
                    c.name(),
                    c.severity().as_str(),
                    c.explanation()
                );
                ExitCode::SUCCESS
            }
            None => {
                let known: Vec<String> = Code::ALL
                    .iter()
                    .map(|c| format!("{} ({})", c.as_str(), c.name()))
                    .collect();
                eprintln!(
                    "error: unknown lint code `{code}`; known codes: {}",
                    known.join(", ")
                );
                ExitCode::from(1)
            }
        };
    }
    let opts = LintOptions {
        discover: DiscoverOptions {
            eval: args.flags.options(),
            machines: Vec::new(),
            resolve_key_text: false,
        },
        evaluate: !args.no_eval,
    };
    let files = args.files.clone();
    let diags = match crate::eval::run_with_big_stack(move || -> crate::network::Result<_> {
        lint(&files, &opts)
    }) {
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
    let mut sources = Sources::default();
    match args.format {
        Format::Human => {
            let text = render_human(&diags, &mut sources, want_color(stdout_is_terminal()));
            let _ = write!(stdout, "{text}");
            let _ = writeln!(stdout, "{}", summary(&diags));
        }
        Format::Json => {
            let _ = writeln!(stdout, "{}", render_json(&diags, &mut sources));
        }
    }
    if diags.iter().any(|d| d.is_error()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
