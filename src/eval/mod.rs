//! The embedded Nix evaluator: a lazy interpreter for the whole Nix language over rnix's syntax tree.
//!
//! Layer: `eval` (pure, sync). It may use [`crate::syntax`] helpers, rnix and rowan; it must not depend on
//! tokio, the network model, the store, the daemon or the CLI, and it never prints (`builtins.trace`
//! writes to a sink the caller drains with [`Evaluator::take_traces`]).
//!
//! Files are parsed once, lowered to a compact IR with variables resolved to frame slots, and cached per
//! path, so importing the same module from a thousand machines costs one parse. Rowan trees are `!Send`,
//! and so is an [`Evaluator`]: use one per thread.

mod error;

pub use error::{EvalError, EvalErrorKind, Result, Span};

use std::path::{Path, PathBuf};

/// One entry of the search path used by `<name>` lookups: `prefix=path` or a plain `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchPathEntry {
    pub prefix: Option<String>,
    pub path: PathBuf,
}

impl SearchPathEntry {
    /// Parses `prefix=path` or `path`, as `-I` and `NIX_PATH` entries are written.
    pub fn parse(s: &str) -> SearchPathEntry {
        match s.split_once('=') {
            Some((prefix, path)) => SearchPathEntry {
                prefix: Some(prefix.to_string()),
                path: PathBuf::from(path),
            },
            None => SearchPathEntry {
                prefix: None,
                path: PathBuf::from(s),
            },
        }
    }
}

/// A `--arg NAME EXPR` or `--argstr NAME VALUE` automatic argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoArg {
    Expr(String),
    Str(String),
}

/// Evaluator settings.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// `-I` entries first, then `NIX_PATH`'s.
    pub search_path: Vec<SearchPathEntry>,
    /// Applied like nix-instantiate does to a top-level function.
    pub auto_args: Vec<(String, AutoArg)>,
    /// `builtins.currentSystem`.
    pub current_system: String,
    /// Deep recursion becomes an [`EvalErrorKind::TooDeep`] error, never a stack overflow.
    pub max_call_depth: usize,
    /// Bytes of native stack the evaluator may use below the point where it was entered; a second guard
    /// next to `max_call_depth`, because one Nix call can take several Rust frames. Run on a thread with
    /// a bigger stack (see [`run_with_big_stack`]) to raise it.
    pub stack_budget: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            search_path: Vec::new(),
            auto_args: Vec::new(),
            current_system: default_system(),
            max_call_depth: 10_000,
            stack_budget: 6 * 1024 * 1024,
        }
    }
}

impl EvalOptions {
    /// The defaults plus the search path from `NIX_PATH`.
    pub fn from_env() -> Self {
        let mut opts = EvalOptions::default();
        if let Ok(nix_path) = std::env::var("NIX_PATH") {
            opts.search_path.extend(
                nix_path
                    .split(':')
                    .filter(|s| !s.is_empty())
                    .map(SearchPathEntry::parse),
            );
        }
        opts
    }
}

fn default_system() -> String {
    let arch = std::env::consts::ARCH;
    let os = std::env::consts::OS;
    format!("{arch}-{os}")
}

/// Stack size for [`run_with_big_stack`]: deep Nix recursion needs many native frames.
pub const BIG_STACK: usize = 256 * 1024 * 1024;

/// Runs `f` on a fresh thread with a [`BIG_STACK`]-byte stack and returns its result. Evaluators must be
/// created inside `f` (they are `!Send`). Fails only if the thread cannot be spawned or panicked.
pub fn run_with_big_stack<F, R>(f: F) -> std::io::Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let handle = std::thread::Builder::new()
        .name("nix-eval".into())
        .stack_size(BIG_STACK)
        .spawn(f)?;
    handle
        .join()
        .map_err(|_| std::io::Error::other("evaluator thread panicked"))
}

/// A cheap-to-clone handle to a (possibly unevaluated) value.
#[derive(Clone, Debug)]
pub struct Value(());

/// The evaluator: owns the parsed-file cache, the import cache and the trace sink.
pub struct Evaluator {
    opts: EvalOptions,
}

fn not_yet() -> EvalError {
    EvalError::new(EvalErrorKind::NotImplemented, "not implemented yet")
}

impl Evaluator {
    pub fn new(opts: EvalOptions) -> Evaluator {
        Evaluator { opts }
    }

    /// The options this evaluator was created with.
    pub fn options(&self) -> &EvalOptions {
        &self.opts
    }

    /// Registers an in-memory file that `import` and path literals see as if it were on disk at `path`.
    pub fn add_virtual_file(&mut self, path: &Path, contents: String) {
        let _ = (path, contents);
    }

    pub fn eval_file(&mut self, path: &Path) -> Result<Value> {
        let _ = path;
        Err(not_yet())
    }

    pub fn eval_source(&mut self, source: &str, virtual_path: &Path) -> Result<Value> {
        let _ = (source, virtual_path);
        Err(not_yet())
    }

    pub fn apply_auto_args(&mut self, v: &Value) -> Result<Value> {
        let _ = v;
        Err(not_yet())
    }

    /// `builtins.typeOf`'s name for the value.
    pub fn type_name(&mut self, v: &Value) -> Result<&'static str> {
        let _ = v;
        Err(not_yet())
    }

    /// The attribute names of a set, sorted.
    pub fn attr_names(&mut self, v: &Value) -> Result<Vec<String>> {
        let _ = v;
        Err(not_yet())
    }

    pub fn select(&mut self, v: &Value, name: &str) -> Result<Option<Value>> {
        let _ = (v, name);
        Err(not_yet())
    }

    /// Where the attribute was defined.
    pub fn attr_pos(&mut self, v: &Value, name: &str) -> Result<Option<Span>> {
        let _ = (v, name);
        Err(not_yet())
    }

    pub fn call(&mut self, f: &Value, arg: Value) -> Result<Value> {
        let _ = (f, arg);
        Err(not_yet())
    }

    pub fn list_items(&mut self, v: &Value) -> Result<Vec<Value>> {
        let _ = v;
        Err(not_yet())
    }

    pub fn force_bool(&mut self, v: &Value) -> Result<bool> {
        let _ = v;
        Err(not_yet())
    }

    pub fn force_int(&mut self, v: &Value) -> Result<i64> {
        let _ = v;
        Err(not_yet())
    }

    /// The string's contents; its context is ignored.
    pub fn force_string(&mut self, v: &Value) -> Result<String> {
        let _ = v;
        Err(not_yet())
    }

    pub fn force_path(&mut self, v: &Value) -> Result<PathBuf> {
        let _ = v;
        Err(not_yet())
    }

    pub fn make_attrs(&mut self, attrs: Vec<(String, Value)>) -> Value {
        let _ = attrs;
        Value(())
    }

    pub fn make_string(&mut self, s: &str) -> Value {
        let _ = s;
        Value(())
    }

    pub fn make_path(&mut self, p: &Path) -> Value {
        let _ = p;
        Value(())
    }

    pub fn make_int(&mut self, i: i64) -> Value {
        let _ = i;
        Value(())
    }

    pub fn make_bool(&mut self, b: bool) -> Value {
        let _ = b;
        Value(())
    }

    pub fn make_list(&mut self, items: Vec<Value>) -> Value {
        let _ = items;
        Value(())
    }

    /// What `nix-instantiate --eval --strict --json` prints, as JSON.
    pub fn to_json(&mut self, v: &Value) -> Result<serde_json::Value> {
        let _ = v;
        Err(not_yet())
    }

    /// What `nix-instantiate --eval [--strict]` prints (without the trailing newline).
    pub fn print(&mut self, v: &Value, strict: bool) -> Result<String> {
        let _ = (v, strict);
        Err(not_yet())
    }

    /// Drains the messages `builtins.trace` wrote.
    pub fn take_traces(&mut self) -> Vec<String> {
        Vec::new()
    }
}
