//! Machine discovery: runs the embedded driver on ferry's evaluator and turns its lazy result into the typed
//! [`Network`], one option at a time. Each problem (an option that fails to evaluate, has the wrong type or
//! does not exist) becomes a [`Diagnostic`] located at the option's definition; the option keeps its
//! default so that the rest of the network is still checked.

// `EvalError` is the evaluator's type and carries a trace; boxing it at every call of its API would only
// add noise. Errors are rare here (one per broken option), so their size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::eval::{EvalError, EvalErrorKind, EvalOptions, Evaluator, SearchPathEntry, Value};
use crate::syntax::{Code, Diagnostic};

use super::ast::{Location, Locator};
use super::options::{
    DEPLOYMENT_OPTIONS, Deployment, IGNORED_DEPLOYMENT_OPTIONS, IGNORED_KEY_OPTIONS,
    IGNORED_NETWORK_OPTIONS, KEY_OPTIONS, Key, KeySource, Machine, NETWORK_OPTIONS, Network,
    OptionType, SecretText, UploadAt, parse_permissions, suggest, wider_than_0640,
};
use super::{DRIVER_NIX, Error, LIB_NIX, Result, VIRTUAL_DIR};

/// What to discover and how.
#[derive(Clone, Debug, Default)]
pub struct DiscoverOptions {
    /// Search path (`-I`, NIX_PATH) and `--arg`/`--argstr` for network files that are functions.
    pub eval: EvalOptions,
    /// Only these machines (all when empty).
    pub machines: Vec<String>,
    /// Evaluate `deployment.keys.*.text` (deploy needs it; `ferry eval` and `ferry lint` don't).
    pub resolve_key_text: bool,
    /// Evaluate every machine with the Nix driver only, without the Rust fast path (for comparisons).
    pub driver_only: bool,
}

/// The result of discovery.
#[derive(Debug)]
pub struct Discovery {
    /// The network, with defaults where an option could not be used; `None` when the network files
    /// themselves could not be evaluated.
    pub network: Option<Network>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every file discovery reached (the network files, then each machine's modules), without repeats.
    pub files: Vec<PathBuf>,
    /// How many machines the Rust fast path evaluated (the others went through the Nix driver).
    pub fast_machines: usize,
}

impl Discovery {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The `lib` directory of the first `nixpkgs` on the search path, as `<nixpkgs/lib>` would find it.
pub fn find_nixpkgs(search_path: &[SearchPathEntry]) -> Option<PathBuf> {
    search_path.iter().find_map(|e| {
        let root = match &e.prefix {
            Some(p) if p == "nixpkgs" => e.path.clone(),
            Some(_) => return None,
            None => e.path.join("nixpkgs"),
        };
        root.join("lib/default.nix").is_file().then_some(root)
    })
}

/// Discovers the network described by `files` (later files extend earlier ones).
pub fn discover(files: &[PathBuf], opts: &DiscoverOptions) -> Result<Discovery> {
    if files.is_empty() {
        return Err(Error::NoFiles);
    }
    let mut abs = Vec::with_capacity(files.len());
    for f in files {
        let p = std::path::absolute(f).map_err(|source| Error::Io {
            path: f.clone(),
            source,
        })?;
        if let Err(source) = std::fs::metadata(&p) {
            return Err(Error::Io { path: p, source });
        }
        abs.push(p);
    }
    // The parser needs guarding against pathological nesting (see syntax::parse::MAX_NESTING); check the
    // network files before the evaluator parses them.
    let mut diags = Vec::new();
    for p in &abs {
        let text = std::fs::read_to_string(p).map_err(|source| Error::Io {
            path: p.clone(),
            source,
        })?;
        if crate::syntax::parse::too_deep(&text).is_some() {
            diags.extend(crate::syntax::parse_file(p, &text).errors);
        }
    }
    if !diags.is_empty() {
        return Ok(Discovery {
            network: None,
            diagnostics: diags,
            files: abs,
            fast_machines: 0,
        });
    }
    let mut w = Walker {
        ev: Evaluator::new(opts.eval.clone()),
        loc: Locator::new(),
        diags: Vec::new(),
        resolve_key_text: opts.resolve_key_text,
        networks: Vec::new(),
        driver_only: opts.driver_only,
        fast_machines: 0,
        machine_files: None,
    };
    let network = w.run(&abs, opts)?;
    let mut seen = std::collections::HashSet::new();
    let mut all_files = Vec::new();
    for f in abs.iter().cloned().chain(
        network
            .iter()
            .flat_map(|n| n.machines.values().flat_map(|m| m.modules.iter().cloned())),
    ) {
        if seen.insert(f.clone()) {
            all_files.push(f);
        }
    }
    Ok(Discovery {
        network,
        diagnostics: w.diags,
        files: all_files,
        fast_machines: w.fast_machines,
    })
}

/// Why a value could not be used.
enum Problem {
    Eval(EvalError),
    Type(String),
}

impl From<EvalError> for Problem {
    fn from(e: EvalError) -> Problem {
        Problem::Eval(e)
    }
}

type Check<T> = std::result::Result<T, Problem>;

struct Walker {
    ev: Evaluator,
    loc: Locator,
    diags: Vec<Diagnostic>,
    resolve_key_text: bool,
    /// The network files' values, for the fast path.
    networks: Vec<(PathBuf, Value)>,
    driver_only: bool,
    fast_machines: usize,
    machine_files: Option<HashMap<String, PathBuf>>,
}

/// How a value's type reads in a message.
fn a_type(t: &str) -> &'static str {
    match t {
        "string" => "a string",
        "int" => "an integer",
        "float" => "a float",
        "bool" => "a boolean",
        "list" => "a list",
        "set" => "an attribute set",
        "lambda" => "a function",
        "path" => "a path",
        "null" => "null",
        _ => "a value of another type",
    }
}

impl Walker {
    fn virtual_path(name: &str) -> PathBuf {
        Path::new(VIRTUAL_DIR).join(name)
    }

    fn run(&mut self, files: &[PathBuf], opts: &DiscoverOptions) -> Result<Option<Network>> {
        self.ev
            .add_virtual_file(&Self::virtual_path("driver.nix"), DRIVER_NIX.to_string());
        self.ev
            .add_virtual_file(&Self::virtual_path("lib.nix"), LIB_NIX.to_string());
        let nixpkgs = find_nixpkgs(&opts.eval.search_path);
        let lib = match &nixpkgs {
            Some(root) => self.ev.eval_file(&root.join("lib/default.nix")),
            None => self.ev.eval_file(&Self::virtual_path("lib.nix")),
        }
        .map_err(|e| Error::Driver(Box::new(e)))?;

        // Each network file, applied to --arg/--argstr when it is a function (as NixOps does).
        let mut networks = Vec::new();
        for f in files {
            let value = match self
                .ev
                .eval_file(f)
                .and_then(|v| {
                    // NixOps calls a network file that is a function with the deployment's arguments
                    // (here --arg/--argstr), even when there are none.
                    if self.ev.type_name(&v)? != "lambda" {
                        Ok(v)
                    } else if self.ev.options().auto_args.is_empty() {
                        let empty = self.ev.make_attrs(Vec::new());
                        self.ev.call(&v, empty)
                    } else {
                        self.ev.apply_auto_args(&v)
                    }
                })
                .and_then(|v| {
                    // Force the top level now: a file that is not an attribute set is reported here.
                    let t = self.ev.type_name(&v)?;
                    if t == "set" {
                        Ok(v)
                    } else {
                        Err(EvalError::new(
                            EvalErrorKind::TypeError,
                            format!(
                                "a network file must be an attribute set, but it is {}",
                                a_type(t)
                            ),
                        ))
                    }
                }) {
                Ok(v) => v,
                Err(e) => {
                    let d = self.eval_diag(&e, None, "cannot evaluate the network file", Some(f));
                    self.diags.push(d);
                    continue;
                }
            };
            self.networks.push((f.clone(), value.clone()));
            let file = self.ev.make_string(&f.to_string_lossy());
            networks.push(
                self.ev
                    .make_attrs(vec![("file".into(), file), ("value".into(), value)]),
            );
        }
        if networks.len() != files.len() {
            return Ok(None);
        }
        let driver = self
            .ev
            .eval_file(&Self::virtual_path("driver.nix"))
            .map_err(|e| Error::Driver(Box::new(e)))?;
        let mut args = vec![
            ("networks".to_string(), self.ev.make_list(networks)),
            ("lib".to_string(), lib),
        ];
        if let Some(root) = &nixpkgs {
            let modules = root.join("nixos/modules");
            if modules.is_dir() {
                args.push(("modulesPath".into(), self.ev.make_path(&modules)));
            }
        }
        let args = self.ev.make_attrs(args);
        let result = self
            .ev
            .call(&driver, args)
            .map_err(|e| Error::Driver(Box::new(e)))?;

        let mut network = self.network(&result, files)?;
        self.machines(&result, files, opts, &mut network)?;
        Ok(Some(network))
    }

    fn select(&mut self, v: &Value, name: &str) -> std::result::Result<Value, EvalError> {
        self.ev.select(v, name)?.ok_or_else(|| {
            EvalError::new(
                EvalErrorKind::MissingAttribute,
                format!("attribute '{name}' missing"),
            )
        })
    }

    fn driver_select(&mut self, v: &Value, name: &str) -> Result<Value> {
        self.select(v, name).map_err(|e| Error::Driver(Box::new(e)))
    }

    /// A diagnostic for an evaluation error: at the error's own position when it is in a user file, else at
    /// `at` (the option's definition), else at `file`.
    fn eval_diag(
        &mut self,
        e: &EvalError,
        at: Option<&Location>,
        what: &str,
        file: Option<&Path>,
    ) -> Diagnostic {
        let code = if e.kind == EvalErrorKind::Parse {
            Code::ParseError
        } else {
            Code::EvalError
        };
        let mut d = Diagnostic::new(code, format!("{what}: {}", e.message));
        let user_span = e
            .span
            .as_ref()
            .filter(|s| !s.file.starts_with(VIRTUAL_DIR) && s.file.is_file());
        match (user_span, at) {
            (Some(s), Some(l)) => {
                d = d.at(&s.file, Some(s.start..s.end));
                if l.file != s.file
                    || !(l.value_range.start <= s.start && s.end <= l.value_range.end)
                {
                    d = d.with_label(
                        l.file.clone(),
                        l.attr_range.clone(),
                        "while evaluating this option",
                    );
                }
            }
            (Some(s), None) => d = d.at(&s.file, Some(s.start..s.end)),
            (None, Some(l)) => d = d.at(&l.file, Some(l.value_range.clone())),
            (None, None) => {
                if let Some(f) = file {
                    d = d.at(f, None);
                }
            }
        }
        for (what, span) in e.trace.iter().take(3) {
            if !span.file.starts_with(VIRTUAL_DIR) {
                d = d.with_note(format!("{what} at {span}"));
            }
        }
        if e.kind == EvalErrorKind::NotAvailableDuringDiscovery
            || e.message.contains("not available during discovery")
        {
            d = d.with_help(
                "ferry evaluates deployment.* and network.* without nixpkgs or a store: compute them from \
                 plain values, `name` or `nodes`",
            );
        }
        d
    }

    // ---- typed reads ---------------------------------------------------------------------------------------

    fn want_string(&mut self, v: &Value) -> Check<String> {
        match self.ev.type_name(v)? {
            "string" => Ok(self.ev.force_string(v)?),
            t => Err(Problem::Type(a_type(t).into())),
        }
    }

    fn want_bool(&mut self, v: &Value) -> Check<bool> {
        match self.ev.type_name(v)? {
            "bool" => Ok(self.ev.force_bool(v)?),
            t => Err(Problem::Type(a_type(t).into())),
        }
    }

    fn want_port(&mut self, v: &Value) -> Check<u16> {
        match self.ev.type_name(v)? {
            "int" => {
                let i = self.ev.force_int(v)?;
                u16::try_from(i)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| Problem::Type(format!("{i}")))
            }
            "string" => {
                let s = self.ev.force_string(v)?;
                Err(Problem::Type(format!(
                    "the string \"{}\"",
                    s.escape_default()
                )))
            }
            t => Err(Problem::Type(a_type(t).into())),
        }
    }

    fn want_str_list(&mut self, v: &Value) -> Check<Vec<String>> {
        match self.ev.type_name(v)? {
            "list" => {
                let items = self.ev.list_items(v)?;
                let mut out = Vec::with_capacity(items.len());
                for item in &items {
                    match self.ev.type_name(item)? {
                        "string" => out.push(self.ev.force_string(item)?),
                        t => return Err(Problem::Type(format!("a list containing {}", a_type(t)))),
                    }
                }
                Ok(out)
            }
            t => Err(Problem::Type(a_type(t).into())),
        }
    }

    /// keyFile: a string, or a path converted with toString semantics (never copied to the store).
    fn want_key_file(&mut self, v: &Value) -> Check<String> {
        match self.ev.type_name(v)? {
            "string" => Ok(self.ev.force_string(v)?),
            "path" => Ok(self.ev.force_path(v)?.to_string_lossy().into_owned()),
            t => Err(Problem::Type(a_type(t).into())),
        }
    }

    // ---- locations -----------------------------------------------------------------------------------------

    fn files_at(&mut self, holder: &Value, func: &str, loc: &[&str]) -> Vec<PathBuf> {
        let Ok(Some(f)) = self.ev.select(holder, func) else {
            return Vec::new();
        };
        let parts = loc.iter().map(|s| self.ev.make_string(s)).collect();
        let list = self.ev.make_list(parts);
        let Ok(files) = self.ev.call(&f, list).and_then(|l| self.ev.list_items(&l)) else {
            return Vec::new();
        };
        files
            .iter()
            .filter_map(|f| self.ev.force_string(f).ok())
            .map(PathBuf::from)
            .collect()
    }

    /// Where `option` of `machine` is defined.
    fn locate(
        &mut self,
        machine: Option<(&str, &Value)>,
        option: &[&str],
        fallback: &[PathBuf],
    ) -> Option<Location> {
        let files = match machine {
            Some((_, mv)) => self.files_at(mv, "filesAt", option),
            None => Vec::new(),
        };
        let name = machine.map(|(n, _)| n);
        for f in files.iter().rev().chain(fallback.iter()) {
            if let Some(l) = self.loc.find(f, option, name) {
                return Some(l);
            }
        }
        if let Some(n) = name {
            for f in fallback {
                if let Some(l) = self.loc.find_machine(f, n) {
                    return Some(l);
                }
            }
        }
        None
    }

    fn report(
        &mut self,
        problem: Problem,
        at: Option<Location>,
        what: &str,
        ty: OptionType,
        fallback: &Path,
    ) {
        match problem {
            Problem::Eval(e) => {
                let d = self.eval_diag(
                    &e,
                    at.as_ref(),
                    &format!("cannot evaluate `{what}`"),
                    Some(fallback),
                );
                self.diags.push(d);
            }
            Problem::Type(found) => {
                let mut d = Diagnostic::new(
                    Code::WrongType,
                    format!("`{what}` must be {}, but it is {found}", ty.describe()),
                );
                d = match &at {
                    Some(l) => d.at(&l.file, Some(l.value_range.clone())),
                    None => d.at(fallback, None),
                };
                if ty == OptionType::Port && found.starts_with("the string") {
                    d = d.with_help("write the port as an integer, without quotes");
                }
                self.diags.push(d);
            }
        }
    }

    fn unknown(
        &mut self,
        name: &str,
        prefix: &str,
        known: &[&'static str],
        at: Option<Location>,
        fallback: &Path,
        note: Option<String>,
    ) {
        let mut d = Diagnostic::new(
            Code::UnknownOption,
            format!("unknown option `{prefix}.{name}`"),
        );
        d = match &at {
            Some(l) => d.at(&l.file, Some(l.attr_range.clone())),
            None => d.at(fallback, None),
        };
        if let Some(n) = note {
            d = d.with_note(n);
        }
        if let Some(s) = suggest(name, known.iter().copied()) {
            d = d.with_help(format!("did you mean `{prefix}.{s}`?"));
        } else {
            d = d.with_help(format!("the known options are: {}", known.join(", ")));
        }
        self.diags.push(d);
    }

    fn ignored(&mut self, what: String, at: Option<Location>, fallback: &Path) {
        let d = Diagnostic::new(
            Code::IgnoredOption,
            format!("`{what}` is a NixOps option that ferry ignores"),
        );
        let d = match &at {
            Some(l) => d.at(&l.file, Some(l.attr_range.clone())),
            None => d.at(fallback, None),
        };
        self.diags
            .push(d.with_help("ferry deploys to existing machines over SSH; remove the option"));
    }

    // ---- the network ----------------------------------------------------------------------------------------

    fn network(&mut self, result: &Value, files: &[PathBuf]) -> Result<Network> {
        let first = files.first().cloned().unwrap_or_default();
        let merged = self.driver_select(result, "networkMerged")?;
        let names = match self.ev.attr_names(&merged) {
            Ok(n) => n,
            Err(e) => {
                let d = self.eval_diag(&e, None, "cannot evaluate `network`", Some(&first));
                self.diags.push(d);
                Vec::new()
            }
        };
        let known: Vec<&'static str> = NETWORK_OPTIONS.iter().map(|o| o.name).collect();
        for n in &names {
            if known.contains(&n.as_str()) {
                continue;
            }
            let at = self.locate_network(&["network", n], files, result);
            if IGNORED_NETWORK_OPTIONS.contains(&n.as_str()) {
                self.ignored(format!("network.{n}"), at, &first);
            } else {
                self.unknown(n, "network", &known, at, &first, None);
            }
        }
        let net = self.driver_select(result, "network")?;
        let mut network = Network {
            description: "Unnamed NixOps network".into(),
            enable_rollback: false,
            nixpkgs: None,
            machines: BTreeMap::new(),
        };
        for spec in NETWORK_OPTIONS {
            let v = match self.select(&net, spec.name) {
                Ok(v) => v,
                Err(e) => {
                    let at = self.locate_network(&["network", spec.name], files, result);
                    self.report(
                        Problem::Eval(e),
                        at,
                        &format!("network.{}", spec.name),
                        spec.ty,
                        &first,
                    );
                    continue;
                }
            };
            let r: Check<()> = match spec.ty {
                OptionType::Str => self.want_string(&v).map(|s| network.description = s),
                OptionType::Bool => self.want_bool(&v).map(|b| network.enable_rollback = b),
                _ => match self.ev.type_name(&v) {
                    Ok("null") => Ok(()),
                    Ok("string") => self
                        .ev
                        .force_string(&v)
                        .map(|s| network.nixpkgs = Some(s))
                        .map_err(Problem::Eval),
                    Ok("path") => self
                        .ev
                        .force_path(&v)
                        .map(|p| network.nixpkgs = Some(p.to_string_lossy().into_owned()))
                        .map_err(Problem::Eval),
                    Ok("set") => {
                        // A fetched source (outPath) or a nixpkgs set: keep its outPath when computable.
                        match self.ev.select(&v, "outPath") {
                            Ok(Some(o)) => {
                                self.want_key_file(&o).map(|s| network.nixpkgs = Some(s))
                            }
                            Ok(None) => {
                                Err(Problem::Type("an attribute set without outPath".into()))
                            }
                            Err(e) => Err(Problem::Eval(e)),
                        }
                    }
                    // A fetcher that discovery cannot run: the pin is resolved at build time.
                    Err(e) if e.kind == EvalErrorKind::NotAvailableDuringDiscovery => Ok(()),
                    Ok(t) => Err(Problem::Type(a_type(t).into())),
                    Err(e) => Err(Problem::Eval(e)),
                },
            };
            if let Err(p) = r {
                let at = self.locate_network(&["network", spec.name], files, result);
                self.report(p, at, &format!("network.{}", spec.name), spec.ty, &first);
            }
        }
        Ok(network)
    }

    fn locate_network(
        &mut self,
        option: &[&str],
        files: &[PathBuf],
        result: &Value,
    ) -> Option<Location> {
        let rel = &option[1..];
        let defs = self.files_at(result, "networkFilesAt", rel);
        for f in defs.iter().rev().chain(files.iter()) {
            if let Some(l) = self.loc.find(f, option, None) {
                return Some(l);
            }
        }
        None
    }

    // ---- machines -------------------------------------------------------------------------------------------

    fn machines(
        &mut self,
        result: &Value,
        files: &[PathBuf],
        opts: &DiscoverOptions,
        network: &mut Network,
    ) -> Result<()> {
        let machines = self.driver_select(result, "machines")?;
        let names = self
            .ev
            .attr_names(&machines)
            .map_err(|e| Error::Driver(Box::new(e)))?;
        let mut native = if self.driver_only {
            None
        } else {
            super::native::Native::new(&mut self.ev)
        };
        let key_defaults = self.driver_select(result, "keyDefaults")?;
        let networks = self.networks.clone();
        for wanted in &opts.machines {
            if !names.contains(wanted) {
                let mut d = Diagnostic::new(
                    Code::EvalError,
                    format!("no machine named `{wanted}` in the network"),
                );
                if let Some(s) = suggest(wanted, names.iter().map(String::as_str)) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.diags.push(d);
            }
        }
        for name in names {
            if !opts.machines.is_empty() && !opts.machines.contains(&name) {
                continue;
            }
            let mv = self.driver_select(&machines, &name)?;
            let mv = match &mut native {
                Some(n) => match n.machine(&mut self.ev, &name, &networks, &mv, &key_defaults) {
                    Some(fast) => {
                        self.fast_machines += 1;
                        fast
                    }
                    None => mv,
                },
                None => mv,
            };
            if let Some(m) = self.machine(&name, &mv, files) {
                network.machines.insert(name, m);
            }
        }
        self.duplicate_hosts(network, &machines, files);
        Ok(())
    }

    fn machine(&mut self, name: &str, mv: &Value, files: &[PathBuf]) -> Option<Machine> {
        let first = files.first().cloned().unwrap_or_default();
        let machine_file = self
            .machine_file(name, files)
            .unwrap_or_else(|| first.clone());
        let modules: Vec<PathBuf> = self
            .select(mv, "modules")
            .and_then(|l| self.ev.list_items(&l))
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| self.ev.force_string(i).ok())
                    .map(PathBuf::from)
                    .filter(|p| !p.starts_with(VIRTUAL_DIR))
                    .collect()
            })
            .unwrap_or_default();
        let mut module_files: Vec<PathBuf> = Vec::new();
        for m in &modules {
            if !module_files.contains(m) {
                module_files.push(m.clone());
            }
        }
        let raw = self.select(mv, "rawDeployment");
        let raw_names = match raw.and_then(|r| self.ev.attr_names(&r)) {
            Ok(n) => n,
            Err(e) => {
                let at = self.loc.find_machine(&machine_file, name);
                let d = self
                    .eval_diag(
                        &e,
                        at.as_ref(),
                        &format!("cannot evaluate machine `{name}`"),
                        Some(&machine_file),
                    )
                    .with_note(format!("in machine `{name}`"));
                self.diags.push(d);
                return None;
            }
        };
        let note = Some(format!("in machine `{name}`"));
        let known: Vec<&'static str> = DEPLOYMENT_OPTIONS.iter().map(|o| o.name).collect();
        for n in &raw_names {
            if known.contains(&n.as_str()) {
                continue;
            }
            let at = self.locate(Some((name, mv)), &["deployment", n], &module_files);
            if IGNORED_DEPLOYMENT_OPTIONS.contains(&n.as_str()) {
                if n == "targetEnv" && self.target_env_is_none(mv) {
                    continue;
                }
                self.ignored(format!("deployment.{n}"), at, &machine_file);
            } else {
                self.unknown(n, "deployment", &known, at, &machine_file, note.clone());
            }
        }
        let dep = match self.select(mv, "deployment") {
            Ok(d) => d,
            Err(e) => {
                let d = self.eval_diag(
                    &e,
                    None,
                    &format!("cannot evaluate machine `{name}`"),
                    Some(&machine_file),
                );
                self.diags.push(d);
                return None;
            }
        };
        let mut d = Deployment::defaults(name);
        for spec in DEPLOYMENT_OPTIONS {
            let v = match self.select(&dep, spec.name) {
                Ok(v) => v,
                Err(e) => {
                    let at =
                        self.locate(Some((name, mv)), &["deployment", spec.name], &module_files);
                    self.report(
                        Problem::Eval(e),
                        at,
                        &format!("deployment.{}", spec.name),
                        spec.ty,
                        &machine_file,
                    );
                    continue;
                }
            };
            let r: Check<()> = match spec.name {
                "targetHost" => self.want_string(&v).map(|s| d.target_host = s),
                "targetPort" => self.want_port(&v).map(|p| d.target_port = p),
                "targetUser" => self.want_string(&v).map(|s| d.target_user = s),
                "sshOptions" => self.want_str_list(&v).map(|l| d.ssh_options = l),
                "tags" => self.want_str_list(&v).map(|l| d.tags = l),
                "keys" => {
                    d.keys = self.keys(name, mv, &v, &module_files, &machine_file);
                    Ok(())
                }
                "buildOnTarget" => self.want_bool(&v).map(|b| d.build_on_target = b),
                "substituteOnDestination" => {
                    self.want_bool(&v).map(|b| d.substitute_on_destination = b)
                }
                "privilegeEscalationCommand" => self
                    .want_str_list(&v)
                    .map(|l| d.privilege_escalation_command = l),
                "provisionSSHKey" => self.want_bool(&v).map(|b| d.provision_ssh_key = b),
                "alwaysActivate" => self.want_bool(&v).map(|b| d.always_activate = b),
                _ => Ok(()),
            };
            if let Err(p) = r {
                let at = self.locate(Some((name, mv)), &["deployment", spec.name], &module_files);
                self.report(
                    p,
                    at,
                    &format!("deployment.{}", spec.name),
                    spec.ty,
                    &machine_file,
                );
            }
        }
        Some(Machine {
            name: name.to_string(),
            deployment: d,
            modules: module_files,
        })
    }

    /// The last network file that defines machine `name` (one scan of each file's top level, cached).
    fn machine_file(&mut self, name: &str, files: &[PathBuf]) -> Option<PathBuf> {
        if let [only] = files {
            return Some(only.clone());
        }
        if self.machine_files.is_none() {
            let mut map = HashMap::new();
            for f in files {
                for m in self.loc.top_level_names(f) {
                    map.insert(m, f.clone());
                }
            }
            self.machine_files = Some(map);
        }
        self.machine_files
            .as_ref()
            .and_then(|m| m.get(name).cloned())
    }

    fn target_env_is_none(&mut self, mv: &Value) -> bool {
        let Ok(raw) = self.select(mv, "rawDeployment") else {
            return false;
        };
        let Ok(v) = self.select(&raw, "targetEnv") else {
            return false;
        };
        matches!(self.want_string(&v), Ok(s) if s == "none")
    }

    fn keys(
        &mut self,
        machine: &str,
        mv: &Value,
        keys: &Value,
        modules: &[PathBuf],
        fallback: &Path,
    ) -> BTreeMap<String, Key> {
        let mut out = BTreeMap::new();
        let names = match self.ev.type_name(keys) {
            Ok("set") => match self.ev.attr_names(keys) {
                Ok(n) => n,
                Err(e) => {
                    let at = self.locate(Some((machine, mv)), &["deployment", "keys"], modules);
                    self.report(
                        Problem::Eval(e),
                        at,
                        "deployment.keys",
                        OptionType::Keys,
                        fallback,
                    );
                    return out;
                }
            },
            Ok(t) => {
                let at = self.locate(Some((machine, mv)), &["deployment", "keys"], modules);
                self.report(
                    Problem::Type(a_type(t).into()),
                    at,
                    "deployment.keys",
                    OptionType::Keys,
                    fallback,
                );
                return out;
            }
            Err(e) => {
                let at = self.locate(Some((machine, mv)), &["deployment", "keys"], modules);
                self.report(
                    Problem::Eval(e),
                    at,
                    "deployment.keys",
                    OptionType::Keys,
                    fallback,
                );
                return out;
            }
        };
        let known: Vec<&'static str> = KEY_OPTIONS.iter().map(|o| o.name).collect();
        for k in names {
            let Ok(kv) = self.select(keys, &k) else {
                continue;
            };
            let what = |f: &str| format!("deployment.keys.{k}.{f}");
            let fields = match self.ev.type_name(&kv).and_then(|_| self.ev.attr_names(&kv)) {
                Ok(f) => f,
                Err(e) => {
                    let at = self.locate(Some((machine, mv)), &["deployment", "keys", &k], modules);
                    self.report(
                        Problem::Eval(e),
                        at,
                        &format!("deployment.keys.{k}"),
                        OptionType::Keys,
                        fallback,
                    );
                    continue;
                }
            };
            for f in &fields {
                if known.contains(&f.as_str()) || IGNORED_KEY_OPTIONS.contains(&f.as_str()) {
                    continue;
                }
                let at = self.locate(Some((machine, mv)), &["deployment", "keys", &k, f], modules);
                self.unknown(
                    f,
                    &format!("deployment.keys.{k}"),
                    &known,
                    at,
                    fallback,
                    Some(format!("in machine `{machine}`")),
                );
            }
            // Sources set to null count as absent (NixOps' defaults are null). `text` is not forced here.
            let mut sources = Vec::new();
            for s in ["text", "keyFile", "keyCommand"] {
                if !fields.iter().any(|f| f == s) {
                    continue;
                }
                if s != "text" {
                    if let Ok(v) = self.select(&kv, s) {
                        if matches!(self.ev.type_name(&v), Ok("null")) {
                            continue;
                        }
                    }
                }
                sources.push(s);
            }
            if sources.len() != 1 {
                let at = self.locate(Some((machine, mv)), &["deployment", "keys", &k], modules);
                let msg = if sources.is_empty() {
                    format!(
                        "key `{k}` has no contents: set one of `text`, `keyFile` or `keyCommand`"
                    )
                } else {
                    format!("key `{k}` sets {}: set exactly one", sources.join(" and "))
                };
                let mut d = Diagnostic::new(Code::KeySource, msg)
                    .with_note(format!("in machine `{machine}`"));
                d = match &at {
                    Some(l) => d.at(&l.file, Some(l.attr_range.clone())),
                    None => d.at(fallback, None),
                };
                self.diags.push(d);
                continue;
            }
            let source = match sources[0] {
                "text" => {
                    if self.resolve_key_text {
                        match self
                            .select(&kv, "text")
                            .map_err(Problem::Eval)
                            .and_then(|v| self.want_string(&v))
                        {
                            Ok(t) => KeySource::Text(Some(SecretText::new(t))),
                            Err(p) => {
                                let at = self.locate(
                                    Some((machine, mv)),
                                    &["deployment", "keys", &k, "text"],
                                    modules,
                                );
                                self.report(p, at, &what("text"), OptionType::KeyText, fallback);
                                continue;
                            }
                        }
                    } else {
                        KeySource::Text(None)
                    }
                }
                "keyFile" => match self
                    .select(&kv, "keyFile")
                    .map_err(Problem::Eval)
                    .and_then(|v| self.want_key_file(&v))
                {
                    Ok(f) => KeySource::KeyFile(f),
                    Err(p) => {
                        let at = self.locate(
                            Some((machine, mv)),
                            &["deployment", "keys", &k, "keyFile"],
                            modules,
                        );
                        self.report(p, at, &what("keyFile"), OptionType::KeyFile, fallback);
                        continue;
                    }
                },
                _ => match self
                    .select(&kv, "keyCommand")
                    .map_err(Problem::Eval)
                    .and_then(|v| self.want_str_list(&v))
                {
                    Ok(c) => KeySource::KeyCommand(c),
                    Err(p) => {
                        let at = self.locate(
                            Some((machine, mv)),
                            &["deployment", "keys", &k, "keyCommand"],
                            modules,
                        );
                        self.report(p, at, &what("keyCommand"), OptionType::ListOfStr, fallback);
                        continue;
                    }
                },
            };
            let mut key = Key {
                source,
                user: "root".into(),
                group: "root".into(),
                permissions: 0o600,
                dest_dir: "/run/keys".into(),
                upload_at: UploadAt::PreActivation,
            };
            let mut ok = true;
            for field in ["user", "group", "permissions", "destDir", "uploadAt"] {
                let ty = KEY_OPTIONS
                    .iter()
                    .find(|o| o.name == field)
                    .map(|o| o.ty)
                    .unwrap_or(OptionType::Str);
                let r: Check<()> = match self.select(&kv, field) {
                    Err(e) => Err(Problem::Eval(e)),
                    Ok(v) => match self.want_string(&v) {
                        Err(p) => Err(p),
                        Ok(s) => match field {
                            "user" => {
                                key.user = s;
                                Ok(())
                            }
                            "group" => {
                                key.group = s;
                                Ok(())
                            }
                            "destDir" => {
                                key.dest_dir = s;
                                Ok(())
                            }
                            "uploadAt" => UploadAt::parse(&s)
                                .map(|u| key.upload_at = u)
                                .ok_or_else(|| {
                                    Problem::Type(format!("\"{}\"", s.escape_default()))
                                }),
                            _ => match parse_permissions(&s) {
                                Some(p) => {
                                    key.permissions = p;
                                    Ok(())
                                }
                                None => Err(Problem::Type(format!("\"{}\"", s.escape_default()))),
                            },
                        },
                    },
                };
                if let Err(p) = r {
                    ok = false;
                    let at = self.locate(
                        Some((machine, mv)),
                        &["deployment", "keys", &k, field],
                        modules,
                    );
                    self.report(p, at, &what(field), ty, fallback);
                }
            }
            if wider_than_0640(key.permissions) {
                let at = self.locate(
                    Some((machine, mv)),
                    &["deployment", "keys", &k, "permissions"],
                    modules,
                );
                let mut d = Diagnostic::new(
                    Code::WideKeyPermissions,
                    format!(
                        "key `{k}` has permissions {}, wider than 0640",
                        key.permissions_string()
                    ),
                )
                .with_note(format!("in machine `{machine}`"))
                .with_help(
                    "use \"0600\", or \"0640\" with `group` set to the service that reads the key",
                );
                d = match &at {
                    Some(l) => d.at(&l.file, Some(l.value_range.clone())),
                    None => d.at(fallback, None),
                };
                self.diags.push(d);
            }
            if ok {
                out.insert(k, key);
            }
        }
        out
    }

    fn duplicate_hosts(&mut self, network: &Network, machines: &Value, files: &[PathBuf]) {
        let mut seen: HashMap<(String, u16), String> = HashMap::new();
        let fallback = files.first().cloned().unwrap_or_default();
        for (name, m) in &network.machines {
            let key = (m.deployment.target_host.clone(), m.deployment.target_port);
            let Some(other) = seen.get(&key).cloned() else {
                seen.insert(key, name.clone());
                continue;
            };
            let Ok(mv) = self.select(machines, name) else {
                continue;
            };
            let at = self.locate(Some((name, &mv)), &["deployment", "targetHost"], &m.modules);
            let other_at = match (self.select(machines, &other), network.machines.get(&other)) {
                (Ok(ov), Some(om)) => {
                    let modules = om.modules.clone();
                    self.locate(Some((&other, &ov)), &["deployment", "targetHost"], &modules)
                }
                _ => None,
            };
            let mut d = Diagnostic::new(
                Code::DuplicateTargetHost,
                format!(
                    "machines `{other}` and `{name}` both deploy to {}:{}",
                    key.0, key.1
                ),
            );
            d = match &at {
                Some(l) => d.at(&l.file, Some(l.value_range.clone())),
                None => d.at(&fallback, None),
            };
            if let Some(o) = other_at {
                d = d.with_label(
                    o.file,
                    o.value_range,
                    format!("`{other}` deploys there too"),
                );
            }
            self.diags
                .push(d.with_help("give each machine its own deployment.targetHost"));
        }
    }
}
