//! `ferry nix-eval`: evaluate a Nix file or expression with the embedded evaluator and print it exactly
//! like `nix-instantiate --eval [--strict] [--json]`. This is the evaluator's conformance surface.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::eval::{AutoArg, EvalOptions, Evaluator, SearchPathEntry};

/// Arguments of `ferry nix-eval`.
#[derive(Debug, Args)]
pub struct NixEvalArgs {
    /// Evaluate every value deeply, like `nix-instantiate --eval --strict`.
    #[arg(long)]
    pub strict: bool,
    /// Print the value as JSON.
    #[arg(long)]
    pub json: bool,
    /// Add a search path entry (`prefix=path` or `path`), before NIX_PATH's.
    #[arg(short = 'I', value_name = "PATH")]
    pub include: Vec<String>,
    /// Pass NAME = EXPR to a top-level function.
    #[arg(long, num_args = 2, value_names = ["NAME", "EXPR"])]
    pub arg: Vec<String>,
    /// Pass NAME = "VALUE" to a top-level function.
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"])]
    pub argstr: Vec<String>,
    /// Evaluate this expression instead of a file.
    #[arg(
        short = 'E',
        long = "expr",
        value_name = "EXPR",
        conflicts_with = "file"
    )]
    pub expr: Option<String>,
    /// The file to evaluate.
    #[arg(required_unless_present = "expr")]
    pub file: Option<PathBuf>,
}

/// Runs `ferry nix-eval`.
pub fn run(args: NixEvalArgs) -> ExitCode {
    let json = args.json;
    let result = crate::eval::run_with_big_stack(move || evaluate(&args));
    match result {
        Ok(Ok(out)) => {
            let mut stdout = std::io::stdout().lock();
            // nix-instantiate ends plain output with a newline and JSON without one. A closed pipe is not
            // an error (like ripgrep).
            let _ = if json {
                write!(stdout, "{out}")
            } else {
                writeln!(stdout, "{out}")
            };
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn evaluate(args: &NixEvalArgs) -> Result<String, String> {
    let mut search_path: Vec<SearchPathEntry> = args
        .include
        .iter()
        .map(|s| SearchPathEntry::parse(s))
        .collect();
    search_path.extend(EvalOptions::from_env().search_path);
    let mut opts = EvalOptions {
        search_path,
        ..EvalOptions::default()
    };
    for pair in args.arg.chunks(2) {
        if let [name, expr] = pair {
            opts.auto_args
                .push((name.clone(), AutoArg::Expr(expr.clone())));
        }
    }
    for pair in args.argstr.chunks(2) {
        if let [name, value] = pair {
            opts.auto_args
                .push((name.clone(), AutoArg::Str(value.clone())));
        }
    }
    let mut ev = Evaluator::new(opts);
    let value = match (&args.expr, &args.file) {
        (Some(expr), _) => {
            let cwd =
                std::env::current_dir().map_err(|e| format!("error: current directory: {e}"))?;
            ev.eval_source(expr, &cwd.join("(string)"))
        }
        (None, Some(file)) => ev.eval_file(file),
        (None, None) => return Err("error: no file or expression given".into()),
    }
    .map_err(|e| e.to_string())?;
    let value = ev.apply_auto_args(&value).map_err(|e| e.to_string())?;
    let out = if args.json {
        ev.to_json_string(&value)
    } else {
        ev.print(&value, args.strict)
    };
    let traces = ev.take_traces();
    for t in traces {
        eprintln!("trace: {t}");
    }
    out.map_err(|e| e.to_string())
}
