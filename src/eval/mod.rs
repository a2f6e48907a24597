//! The embedded Nix evaluator: a lazy interpreter for the whole Nix language over rnix's syntax tree.
//!
//! Layer: `eval` (pure, sync). It may use [`crate::syntax`] helpers, rnix and rowan; it must not depend on
//! tokio, the network model, the store, the daemon or the CLI, and it never prints (`builtins.trace`
//! writes to a sink the caller drains with [`Evaluator::take_traces`]).
//!
//! Files are parsed once, lowered to a compact IR with variables resolved to frame slots, and cached per
//! path, so importing the same module from a thousand machines costs one parse. Rowan trees are `!Send`,
//! and so is an [`Evaluator`]: use one per thread.
//!
//! Robustness: thunks are blackholed while forced (a cycle is "infinite recursion encountered"); calls and
//! forcing count depth and measure the native stack against [`EvalOptions::stack_budget`], so deep
//! recursion is an [`EvalErrorKind::TooDeep`] error, never a stack overflow. Create evaluators inside
//! [`run_with_big_stack`] for deep programs (the budget follows the thread automatically). Before parsing,
//! a linear token scan rejects input whose tree would be too deep for rnix (which otherwise overflows or
//! goes quadratic on long chains); strings, lists and steps are capped; nested values drop iteratively.
//!
//! Conformance (`tests/eval_conformance.rs`): byte-identical `--strict --json` output to Nix 2.8 on the
//! corpus in `tests/data/eval`, and the plain printer. Known gaps, by design or not yet done:
//! - anything needing a store: `derivation`, fetchers, `path`, `toFile`, `filterSource`, interpolating or
//!   JSON-serialising a path (which copies it to the store) evaluate to `NotAvailableDuringDiscovery`;
//! - string contexts are carried but minimal (no derivation outputs);
//! - `builtins.match`/`split` use the `regex` crate on a translated POSIX ERE: leftmost-first instead of
//!   leftmost-longest alternation, no back-references or collating elements;
//! - `scopedImport`, `fromTOML`, `toXML` are not implemented; `addErrorContext` keeps no message;
//! - positions of `-E` expressions name a virtual file, where Nix 2.8 names the source text itself;
//! - integer `+ - *` wrap like Nix 2.8's C++ (later Nix versions report overflow).

mod builtins;
mod compile;
mod error;
mod guard;
mod machine;
mod print;
mod regex;
mod strings;
mod value;

pub use error::{EvalError, EvalErrorKind, Result, Span};

/// Results inside the evaluator: the error is boxed so the hot paths move 16 bytes, not a whole error.
pub(crate) type IResult<T> = std::result::Result<T, Box<EvalError>>;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rowan::ast::AstNode;

use compile::{Compiler, Expr, Interner};
use machine::err;
use value::{Attrs, Env, NixList, Sym, Thunk, V, new_env};

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
    /// Evaluation steps (thunks forced and calls made) before evaluation stops with
    /// [`EvalErrorKind::TooDeep`]; bounds run time for untrusted input such as fuzzing. Unlimited by default.
    pub max_steps: u64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            search_path: Vec::new(),
            auto_args: Vec::new(),
            current_system: default_system(),
            max_call_depth: 100_000,
            stack_budget: default_stack_budget(),
            max_steps: u64::MAX,
        }
    }
}

/// A native stack budget that is safe on the current thread: most of [`BIG_STACK`] on a thread made by
/// [`run_with_big_stack`], 6 MiB on the main thread (8 MiB by default on Linux), 1 MiB elsewhere (Rust
/// spawns threads with 2 MiB).
fn default_stack_budget() -> usize {
    let current = std::thread::current();
    match current.name() {
        Some(BIG_STACK_THREAD_NAME) => BIG_STACK - 16 * 1024 * 1024,
        Some("main") => 6 * 1024 * 1024,
        _ => 1024 * 1024,
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

/// The name of threads made by [`run_with_big_stack`]; [`EvalOptions::default`] gives evaluators created
/// on such a thread (or any thread of [`BIG_STACK`] bytes with this name) the deep stack budget.
pub const BIG_STACK_THREAD_NAME: &str = "ferry-eval-big-stack";

/// Runs `f` on a fresh thread with a [`BIG_STACK`]-byte stack and returns its result. Evaluators must be
/// created inside `f` (they are `!Send`). Fails only if the thread cannot be spawned or panicked.
pub fn run_with_big_stack<F, R>(f: F) -> std::io::Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let handle = std::thread::Builder::new()
        .name(BIG_STACK_THREAD_NAME.into())
        .stack_size(BIG_STACK)
        .spawn(f)?;
    handle
        .join()
        .map_err(|_| std::io::Error::other("evaluator thread panicked"))
}

/// A compact source position: a file index and a byte offset. Resolved to a [`Span`] on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub file: u32,
    pub off: u32,
}

/// A cheap-to-clone handle to a (possibly unevaluated) value.
#[derive(Clone, Debug)]
pub struct Value(V);

struct SourceFile {
    path: PathBuf,
    src: Rc<str>,
    /// Byte offsets where lines start.
    line_starts: Vec<usize>,
}

/// Deepest syntax tree the lowering accepts; rnix bounds most nesting at 512, but operator chains are
/// built iteratively and can be arbitrarily deep.
const MAX_SYNTAX_DEPTH: usize = 3000;

/// The evaluator: owns the parsed-file cache, the import cache and the trace sink.
pub struct Evaluator {
    opts: EvalOptions,
    pub(crate) interner: Interner,
    files: Vec<SourceFile>,
    /// Compiled files by canonical path: parse once.
    parsed: HashMap<String, Rc<Expr>>,
    /// `import` results by canonical path.
    imports: HashMap<String, V>,
    virtual_files: HashMap<PathBuf, Rc<str>>,
    globals_env: Env,
    globals_map: Rc<HashMap<Sym, usize>>,
    pub(crate) traces: Vec<String>,
    pub(crate) depth: usize,
    pub(crate) stack_base: usize,
    pub(crate) steps: u64,
}

/// Nix's `canonPath`: absolute, no `.` or `..` components, no duplicate or trailing slashes.
pub(crate) fn canon_path(s: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return "/".to_string();
    }
    let mut out = String::with_capacity(s.len());
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    out
}

impl Evaluator {
    pub fn new(opts: EvalOptions) -> Evaluator {
        let mut ev = Evaluator {
            opts,
            interner: Interner::default(),
            files: Vec::new(),
            parsed: HashMap::new(),
            imports: HashMap::new(),
            virtual_files: HashMap::new(),
            globals_env: new_env(Vec::new(), None),
            globals_map: Rc::new(HashMap::new()),
            traces: Vec::new(),
            depth: 0,
            stack_base: 0,
            steps: 0,
        };
        let (_builtins, globals) = ev.make_globals();
        let mut slots = Vec::with_capacity(globals.len());
        let mut map = HashMap::with_capacity(globals.len());
        for (name, v) in globals {
            map.insert(name, slots.len());
            slots.push(v);
        }
        ev.globals_map = Rc::new(map);
        *ev.globals_env.slots.borrow_mut() = slots;
        ev
    }

    /// The options this evaluator was created with.
    pub fn options(&self) -> &EvalOptions {
        &self.opts
    }

    /// Registers an in-memory file that `import` and path literals see as if it were on disk at `path`.
    pub fn add_virtual_file(&mut self, path: &Path, contents: String) {
        let key = PathBuf::from(canon_path(&path.to_string_lossy()));
        self.parsed.remove(&*key.to_string_lossy());
        self.virtual_files.insert(key, Rc::from(contents));
    }

    fn begin(&mut self) {
        self.depth = 0;
    }

    /// Resolves positions in an error leaving the evaluator.
    // The box comes straight from the internal `IResult`; unboxing here is the point.
    #[allow(clippy::boxed_local)]
    fn finish(&self, e: Box<EvalError>) -> EvalError {
        let mut e = *e;
        if let Some(sec) = e.extra.secondary.take() {
            e.message = format!("{} at {}", e.message, self.describe_pos(sec));
        }
        if e.span.is_none()
            && let Some(p) = e.pos
        {
            e.span = Some(self.span_of(p));
        }
        for (what, p) in e.extra.trace_pos.drain(..).take(5).collect::<Vec<_>>() {
            let span = self.span_of(p);
            if Some(&span) != e.span.as_ref() {
                e.trace.push((what, span));
            }
        }
        e
    }

    pub(crate) fn span_of(&self, pos: Pos) -> Span {
        let Some(f) = self.files.get(pos.file as usize) else {
            return Span {
                file: PathBuf::from("«unknown»"),
                start: 0,
                end: 0,
                line: 1,
                col: 1,
            };
        };
        let off = (pos.off as usize).min(f.src.len());
        let line_idx = match f.line_starts.binary_search(&off) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = f.line_starts.get(line_idx).copied().unwrap_or(0);
        let col = f
            .src
            .get(start..off)
            .map(|s| s.chars().count())
            .unwrap_or(off - start)
            + 1;
        Span {
            file: f.path.clone(),
            start: off,
            end: off,
            line: line_idx as u32 + 1,
            col: col as u32,
        }
    }

    pub(crate) fn describe_pos(&self, pos: Pos) -> String {
        self.span_of(pos).to_string()
    }

    /// The source text of an expression at `pos` up to the end of its line (for assertion messages).
    pub(crate) fn assert_snippet(&self, cond: &Rc<Expr>) -> String {
        let pos = match &**cond {
            Expr::Var(_, p) | Expr::Bin(_, _, _, p) | Expr::Apply(_, _, p) | Expr::Not(_, p) => {
                Some(*p)
            }
            Expr::Select(_, _, _, p) | Expr::HasAttr(_, _, p) => Some(*p),
            _ => None,
        };
        let Some(pos) = pos else { return "…".into() };
        let Some(f) = self.files.get(pos.file as usize) else {
            return "…".into();
        };
        let rest = f.src.get(pos.off as usize..).unwrap_or("");
        let line = rest.split(';').next().unwrap_or("");
        line.trim().to_string()
    }

    fn add_source(&mut self, path: &Path, src: Rc<str>) -> u32 {
        let mut line_starts = vec![0];
        line_starts.extend(
            src.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            src,
            line_starts,
        });
        (self.files.len() - 1) as u32
    }

    /// Parses and lowers a source text as if it lived at `path`.
    fn compile_source(&mut self, src: Rc<str>, path: &Path) -> IResult<Rc<Expr>> {
        let file = self.add_source(path, src.clone());
        // Below the limits' sizes neither scan can trigger: skip them for the many small module files.
        let small = src.len() <= guard::MAX_DEPTH_ESTIMATE.min(guard::MAX_CODE_RUN);
        if let Some(off) = (!small).then(|| guard::long_run_at(&src)).flatten() {
            let mut e = EvalError::new(
                EvalErrorKind::TooDeep,
                "token run too long (more than 4096 path characters)",
            );
            e.pos = Some(Pos {
                file,
                off: off as u32,
            });
            return Err(Box::new(e));
        }
        if let Some(off) = (!small).then(|| guard::too_deep_at(&src)).flatten() {
            let mut e = EvalError::new(EvalErrorKind::TooDeep, "expression nested too deeply");
            e.pos = Some(Pos {
                file,
                off: off as u32,
            });
            return Err(Box::new(e));
        }
        let parse = rnix::Root::parse(&src);
        if let Some(first) = parse.errors().first() {
            let (msg, off) = parse_error(first, src.len());
            let mut e = EvalError::new(EvalErrorKind::Parse, msg);
            e.pos = Some(Pos {
                file,
                off: off as u32,
            });
            return Err(Box::new(e));
        }
        let root = parse.tree();
        if !small && syntax_depth(root.syntax()) > MAX_SYNTAX_DEPTH {
            let mut e = EvalError::new(EvalErrorKind::TooDeep, "expression nested too deeply");
            e.pos = Some(Pos { file, off: 0 });
            return Err(Box::new(e));
        }
        let dir = match path.parent() {
            Some(d) => d.to_string_lossy().to_string(),
            None => "/".to_string(),
        };
        let budget = self.opts.stack_budget;
        // Lowering shares the stack budget with the evaluation that imported this file.
        let base = if self.depth > 0 {
            self.stack_base
        } else {
            machine::stack_pointer()
        };
        let mut c = Compiler::new(
            &mut self.interner,
            file,
            dir,
            self.globals_map.clone(),
            budget,
        );
        c.set_stack_base(base);
        Ok(c.compile_root(&root)?)
    }

    pub(crate) fn read_file_bytes(&self, path: &str) -> IResult<Vec<u8>> {
        if let Some(v) = self.virtual_files.get(Path::new(path)) {
            return Ok(v.as_bytes().to_vec());
        }
        std::fs::read(path)
            .map_err(|e| err(EvalErrorKind::Io, format!("opening file '{path}': {e}")))
    }

    pub(crate) fn path_exists(&self, path: &str) -> bool {
        let p = Path::new(path);
        if self.virtual_files.contains_key(p) || self.virtual_files.keys().any(|k| k.starts_with(p))
        {
            return true;
        }
        std::fs::symlink_metadata(p).is_ok()
    }

    fn is_dir(&self, path: &str) -> bool {
        let p = Path::new(path);
        if self.virtual_files.contains_key(p) {
            return false;
        }
        if self.virtual_files.keys().any(|k| k.starts_with(p)) {
            return true;
        }
        std::fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false)
    }

    /// Loads (once) and compiles a file; a directory means its `default.nix`.
    fn load(&mut self, path: &str) -> IResult<(String, Rc<Expr>)> {
        let mut path = canon_path(path);
        if self.is_dir(&path) {
            path = canon_path(&format!("{path}/default.nix"));
        }
        if let Some(e) = self.parsed.get(&path) {
            return Ok((path, e.clone()));
        }
        let bytes = self.read_file_bytes(&path)?;
        let src: Rc<str> = Rc::from(String::from_utf8_lossy(&bytes).as_ref());
        let expr = self.compile_source(src, Path::new(&path))?;
        self.parsed.insert(path.clone(), expr.clone());
        Ok((path, expr))
    }

    /// `import path`: evaluated once per file, in the base environment.
    pub(crate) fn import_value(&mut self, v: &V) -> IResult<V> {
        let p = self.coerce_to_path(v)?;
        let (path, expr) = self.load(&p)?;
        let thunk = match self.imports.get(&path) {
            Some(t) => t.clone(),
            None => {
                let t = V::thunk(Thunk::Expr(expr, self.globals_env.clone()));
                self.imports.insert(path, t.clone());
                t
            }
        };
        self.force(&thunk)
    }

    /// `<name>` through the search path.
    pub(crate) fn find_file(&mut self, name: &str) -> IResult<V> {
        for entry in self.opts.search_path.clone() {
            let base = entry.path.to_string_lossy().to_string();
            let candidate = match &entry.prefix {
                None => format!("{base}/{name}"),
                Some(prefix) if prefix.is_empty() => format!("{base}/{name}"),
                Some(prefix) => {
                    if name == prefix {
                        base.clone()
                    } else if let Some(rest) = name
                        .strip_prefix(prefix.as_str())
                        .and_then(|r| r.strip_prefix('/'))
                    {
                        format!("{base}/{rest}")
                    } else {
                        continue;
                    }
                }
            };
            let candidate = if candidate.starts_with('/') {
                candidate
            } else {
                match std::env::current_dir() {
                    Ok(cwd) => format!("{}/{candidate}", cwd.to_string_lossy()),
                    Err(_) => continue,
                }
            };
            let candidate = canon_path(&candidate);
            if self.path_exists(&candidate) {
                return Ok(V::Path(Rc::from(candidate)));
            }
        }
        Err(err(
            EvalErrorKind::Eval,
            format!(
                "file '{name}' was not found in the Nix search path (add it using $NIX_PATH or -I)"
            ),
        ))
    }

    pub fn eval_file(&mut self, path: &Path) -> Result<Value> {
        self.begin();
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            match std::env::current_dir() {
                Ok(cwd) => cwd.join(path),
                Err(e) => return Err(*err(EvalErrorKind::Io, format!("current directory: {e}"))),
            }
        };
        let r = self.import_value(&V::Path(Rc::from(canon_path(&abs.to_string_lossy()))));
        r.map(Value).map_err(|e| self.finish(e))
    }

    pub fn eval_source(&mut self, source: &str, virtual_path: &Path) -> Result<Value> {
        self.begin();
        let r = (|| {
            let expr = self.compile_source(Rc::from(source), virtual_path)?;
            let env = self.globals_env.clone();
            self.eval(&expr, &env)
        })();
        r.map(Value).map_err(|e| self.finish(e))
    }

    /// Applies `--arg`/`--argstr` to a top-level function, like nix-instantiate 2.8: with no automatic
    /// arguments the value is returned as is; otherwise a function taking a set
    /// is called with the automatic arguments (its defaults fill the rest); anything else is returned as is.
    pub fn apply_auto_args(&mut self, v: &Value) -> Result<Value> {
        self.begin();
        let r = (|| {
            let f = self.force(&v.0)?;
            // Like nix-instantiate 2.8: without automatic arguments a function is left uncalled.
            if self.opts.auto_args.is_empty() {
                return Ok(f);
            }
            let V::Lambda(c) = &f else { return Ok(f) };
            if !matches!(c.def.param, compile::Param::Pattern { .. }) {
                return Ok(f);
            }
            let mut entries = Vec::new();
            for (name, arg) in self.opts.auto_args.clone() {
                let value = match arg {
                    AutoArg::Str(s) => V::str(s),
                    AutoArg::Expr(src) => {
                        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
                        let expr =
                            self.compile_source(Rc::from(src.as_str()), &cwd.join("«arg»"))?;
                        V::thunk(Thunk::Expr(expr, self.globals_env.clone()))
                    }
                };
                entries.push((self.interner.intern(&name), value, None));
            }
            let arg = V::Attrs(Rc::new(Attrs::from_unsorted(entries)));
            self.apply(&f, arg, None)
        })();
        r.map(Value).map_err(|e| self.finish(e))
    }

    /// `builtins.typeOf`'s name for the value.
    pub fn type_name(&mut self, v: &Value) -> Result<&'static str> {
        self.begin();
        self.force(&v.0)
            .map(|x| x.type_name())
            .map_err(|e| self.finish(e))
    }

    /// The attribute names of a set, sorted.
    pub fn attr_names(&mut self, v: &Value) -> Result<Vec<String>> {
        self.begin();
        match self.force_attrs(&v.0) {
            Ok(a) => Ok(a.entries.iter().map(|(n, _, _)| n.to_string()).collect()),
            Err(e) => Err(self.finish(e)),
        }
    }

    /// The attribute `name` of a set (not forced), or `None` if it has none.
    pub fn select(&mut self, v: &Value, name: &str) -> Result<Option<Value>> {
        self.begin();
        match self.force_attrs(&v.0) {
            Ok(a) => Ok(a.get(name).cloned().map(Value)),
            Err(e) => Err(self.finish(e)),
        }
    }

    /// Where the attribute was defined.
    pub fn attr_pos(&mut self, v: &Value, name: &str) -> Result<Option<Span>> {
        self.begin();
        match self.force_attrs(&v.0) {
            Ok(a) => Ok(a
                .find(name)
                .and_then(|i| a.entries[i].2)
                .map(|p| self.span_of(p))),
            Err(e) => Err(self.finish(e)),
        }
    }

    /// Calls a function (lazily: the result is forced to weak head normal form, its parts are not).
    pub fn call(&mut self, f: &Value, arg: Value) -> Result<Value> {
        self.begin();
        let r = self.call_value(&f.0, arg.0);
        r.map(Value).map_err(|e| self.finish(e))
    }

    pub(crate) fn call_value(&mut self, f: &V, arg: V) -> IResult<V> {
        machine_call(self, f, arg)
    }

    pub fn list_items(&mut self, v: &Value) -> Result<Vec<Value>> {
        self.begin();
        match self.force_list(&v.0) {
            Ok(l) => Ok(l.iter().cloned().map(Value).collect()),
            Err(e) => Err(self.finish(e)),
        }
    }

    pub fn force_bool(&mut self, v: &Value) -> Result<bool> {
        self.begin();
        self.force_bool_v(&v.0).map_err(|e| self.finish(e))
    }

    pub fn force_int(&mut self, v: &Value) -> Result<i64> {
        self.begin();
        self.force_int_v(&v.0).map_err(|e| self.finish(e))
    }

    /// The string's contents; its context is ignored.
    pub fn force_string(&mut self, v: &Value) -> Result<String> {
        self.begin();
        self.force_str_plain(&v.0)
            .map(|s| s.to_string())
            .map_err(|e| self.finish(e))
    }

    pub fn force_path(&mut self, v: &Value) -> Result<PathBuf> {
        self.begin();
        match self.force(&v.0) {
            Ok(V::Path(p)) => Ok(PathBuf::from(&*p)),
            Ok(other) => Err(self.finish(machine::expected("a path", &other))),
            Err(e) => Err(self.finish(e)),
        }
    }

    /// Forces the value to weak head normal form (thunks evaluated, contents left lazy).
    pub fn force_value(&mut self, v: &Value) -> Result<Value> {
        self.begin();
        self.force(&v.0).map(Value).map_err(|e| self.finish(e))
    }

    /// Forces the value deeply, like `builtins.deepSeq`.
    pub fn force_deep_value(&mut self, v: &Value) -> Result<Value> {
        self.begin();
        self.force_deep(&v.0).map(Value).map_err(|e| self.finish(e))
    }

    pub fn make_attrs(&mut self, attrs: Vec<(String, Value)>) -> Value {
        let entries = attrs
            .into_iter()
            .map(|(n, v)| (self.interner.intern(&n), v.0, None))
            .collect();
        Value(V::Attrs(Rc::new(Attrs::from_unsorted(entries))))
    }

    pub fn make_string(&mut self, s: &str) -> Value {
        Value(V::str(s))
    }

    pub fn make_path(&mut self, p: &Path) -> Value {
        Value(V::Path(Rc::from(canon_path(&p.to_string_lossy()))))
    }

    pub fn make_int(&mut self, i: i64) -> Value {
        Value(V::Int(i))
    }

    pub fn make_bool(&mut self, b: bool) -> Value {
        Value(V::Bool(b))
    }

    pub fn make_null(&mut self) -> Value {
        Value(V::Null)
    }

    pub fn make_list(&mut self, items: Vec<Value>) -> Value {
        Value(V::List(Rc::new(NixList::new(
            items.into_iter().map(|v| v.0).collect(),
        ))))
    }

    /// A lazy `f x` (forced only when needed).
    pub fn make_apply(&mut self, f: &Value, x: Value) -> Value {
        Value(V::thunk(Thunk::Apply(f.0.clone(), x.0)))
    }

    /// What `nix-instantiate --eval --strict --json` prints, as JSON.
    pub fn to_json(&mut self, v: &Value) -> Result<serde_json::Value> {
        let text = self.to_json_string(v)?;
        serde_json::from_str(&text)
            .map_err(|e| *err(EvalErrorKind::Eval, format!("invalid JSON produced: {e}")))
    }

    /// The exact text `nix-instantiate --eval --strict --json` prints (without the trailing newline).
    pub fn to_json_string(&mut self, v: &Value) -> Result<String> {
        self.begin();
        self.json_text_of(&v.0).map_err(|e| self.finish(e))
    }

    /// What `nix-instantiate --eval [--strict]` prints (without the trailing newline).
    pub fn print(&mut self, v: &Value, strict: bool) -> Result<String> {
        self.begin();
        self.print_value(&v.0, strict).map_err(|e| self.finish(e))
    }

    /// Drains the messages `builtins.trace` wrote.
    pub fn take_traces(&mut self) -> Vec<String> {
        std::mem::take(&mut self.traces)
    }
}

fn machine_call(ev: &mut Evaluator, f: &V, arg: V) -> IResult<V> {
    ev.apply(f, arg, None)
}

/// Depth of a syntax tree, iteratively (the tree itself may be too deep to recurse over).
fn syntax_depth(root: &rnix::SyntaxNode) -> usize {
    let mut depth = 0usize;
    let mut max = 0usize;
    for event in root.preorder() {
        match event {
            rowan::WalkEvent::Enter(_) => {
                depth += 1;
                max = max.max(depth);
            }
            rowan::WalkEvent::Leave(_) => depth -= 1,
        }
    }
    max
}

fn parse_error(e: &rnix::ParseError, len: usize) -> (String, usize) {
    use rnix::ParseError as P;
    match e {
        P::Unexpected(r) => (
            "syntax error, unexpected token".into(),
            usize::from(r.start()),
        ),
        P::UnexpectedExtra(r) => (
            "syntax error, unexpected token after the expression".into(),
            usize::from(r.start()),
        ),
        P::UnexpectedWanted(got, r, want) => (
            format!(
                "syntax error, unexpected {got:?}, expecting {}",
                want.iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            usize::from(r.start()),
        ),
        P::UnexpectedDoubleBind(r) => (
            "syntax error, pattern bound twice".into(),
            usize::from(r.start()),
        ),
        P::UnexpectedEOF => ("syntax error, unexpected end of file".into(), len),
        P::UnexpectedEOFWanted(want) => (
            format!(
                "syntax error, unexpected end of file, expecting {}",
                want.iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            len,
        ),
        P::DuplicatedArgs(r, name) => (
            format!("duplicate formal function argument '{name}'"),
            usize::from(r.start()),
        ),
        P::RecursionLimitExceeded => (
            "expression nested too deeply (more than 512 levels)".into(),
            0,
        ),
        _ => (format!("syntax error: {e}"), 0),
    }
}
