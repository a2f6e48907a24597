//! The fast path of discovery: the same machine evaluation as the driver (`nix/driver.nix`), with the module
//! walk and the `deployment.*` merge done in Rust over the evaluator's API instead of in Nix.
//!
//! The driver's generic, untyped merge costs hundreds of Nix function calls per machine; here the schema is
//! known, so a machine costs its module calls plus a few attribute selections. The driver is still used for
//! what needs laziness inside Nix: `config` (modules that read it force the driver's own merge), `nodes`,
//! the stand-ins, and for every machine this path does not handle. Any shape the fast path does not
//! recognise (a module that is not an attribute set, `_module.args`, conflicting definitions, an error)
//! makes it give up on that machine, and the driver's result is used instead, so both paths always agree;
//! the tests and the benchmark check them against `nix-instantiate` running the driver.

// `EvalError` is the evaluator's type; see discover.rs.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::eval::{EvalErrorKind, Evaluator, Value};

use super::options::{DEPLOYMENT_OPTIONS, KEY_OPTIONS};

/// Why the fast path gave up (the driver takes over).
#[derive(Debug)]
pub(super) struct Bail;

type R<T> = Result<T, Bail>;

impl From<crate::eval::EvalError> for Bail {
    fn from(_: crate::eval::EvalError) -> Bail {
        Bail
    }
}

/// A definition on its way down to an option, with the properties met on the way.
#[derive(Clone)]
struct Def {
    value: Value,
    /// mkIf conditions from enclosing namespaces, outermost first.
    conds: Vec<Value>,
    priority: i64,
    order: i64,
}

const DEFAULT_PRIORITY: i64 = 100;
const DEFAULT_ORDER: i64 = 1000;

pub(super) struct Native {
    function_args: Value,
    /// Imported module files: `import` is cached per path, and so is the check of their arguments.
    files: std::collections::HashMap<PathBuf, Value>,
    /// The names of the driver's module arguments (the same for every machine).
    arg_names: Option<HashSet<String>>,
    /// Module files whose function arguments are all built in.
    args_ok: HashSet<PathBuf>,
}

fn tag(ev: &mut Evaluator, v: &Value) -> R<Option<String>> {
    if ev.type_name(v)? != "set" {
        return Ok(None);
    }
    match ev.select(v, "_type")? {
        Some(t) => Ok(Some(ev.force_string(&t)?)),
        None => Ok(None),
    }
}

fn sel(ev: &mut Evaluator, v: &Value, name: &str) -> R<Value> {
    ev.select(v, name)?.ok_or(Bail)
}

/// NixOS' pushDownProperties, recording conditions instead of wrapping: the result values are plain sets.
fn push_down(ev: &mut Evaluator, def: Def, out: &mut Vec<Def>) -> R<()> {
    match tag(ev, &def.value)?.as_deref() {
        None => {
            if ev.type_name(&def.value)? != "set" || ev.select(&def.value, "outPath")?.is_some() {
                return Err(Bail);
            }
            out.push(def);
        }
        Some("merge") => {
            let contents = sel(ev, &def.value, "contents")?;
            for c in ev.list_items(&contents)? {
                push_down(
                    ev,
                    Def {
                        value: c,
                        ..def.clone()
                    },
                    out,
                )?;
            }
        }
        Some("if") => {
            let cond = sel(ev, &def.value, "condition")?;
            let content = sel(ev, &def.value, "content")?;
            let mut conds = def.conds.clone();
            conds.push(cond);
            push_down(
                ev,
                Def {
                    value: content,
                    conds,
                    ..def
                },
                out,
            )?;
        }
        Some("override") => {
            let p = sel(ev, &def.value, "priority")?;
            let priority = ev.force_int(&p)?;
            let content = sel(ev, &def.value, "content")?;
            push_down(
                ev,
                Def {
                    value: content,
                    priority,
                    ..def
                },
                out,
            )?;
        }
        Some("order") => {
            let content = sel(ev, &def.value, "content")?;
            push_down(
                ev,
                Def {
                    value: content,
                    ..def
                },
                out,
            )?;
        }
        Some(_) => return Err(Bail),
    }
    Ok(())
}

/// The definitions of attribute `name` of plain-set definitions.
fn child(ev: &mut Evaluator, defs: &[Def], name: &str) -> R<Vec<Def>> {
    let mut out = Vec::new();
    for d in defs {
        if let Some(v) = ev.select(&d.value, name)? {
            out.push(Def {
                value: v,
                ..d.clone()
            });
        }
    }
    Ok(out)
}

fn pushed_children(ev: &mut Evaluator, defs: &[Def], name: &str) -> R<Vec<Def>> {
    let mut out = Vec::new();
    for d in child(ev, defs, name)? {
        push_down(ev, d, &mut out)?;
    }
    Ok(out)
}

/// Removes mkIf (forcing conditions), mkMerge and mkOrder; records priorities.
fn discharge(ev: &mut Evaluator, def: Def, out: &mut Vec<Def>) -> R<()> {
    for c in &def.conds {
        if !ev.force_bool(c)? {
            return Ok(());
        }
    }
    let def = Def {
        conds: Vec::new(),
        ..def
    };
    match tag(ev, &def.value)?.as_deref() {
        Some("merge") => {
            let contents = sel(ev, &def.value, "contents")?;
            for c in ev.list_items(&contents)? {
                discharge(
                    ev,
                    Def {
                        value: c,
                        ..def.clone()
                    },
                    out,
                )?;
            }
        }
        Some("if") => {
            let cond = sel(ev, &def.value, "condition")?;
            if ev.force_bool(&cond)? {
                let content = sel(ev, &def.value, "content")?;
                discharge(
                    ev,
                    Def {
                        value: content,
                        ..def
                    },
                    out,
                )?;
            }
        }
        Some("override") => {
            let p = sel(ev, &def.value, "priority")?;
            let priority = ev.force_int(&p)?;
            let content = sel(ev, &def.value, "content")?;
            discharge(
                ev,
                Def {
                    value: content,
                    priority,
                    ..def
                },
                out,
            )?;
        }
        Some("order") => {
            let p = sel(ev, &def.value, "priority")?;
            let order = ev.force_int(&p)?;
            let content = sel(ev, &def.value, "content")?;
            discharge(
                ev,
                Def {
                    value: content,
                    order,
                    ..def
                },
                out,
            )?;
        }
        _ => out.push(def),
    }
    Ok(())
}

/// The merged value of a leaf option, `None` when no definition survives.
fn merge_leaf(ev: &mut Evaluator, defs: Vec<Def>) -> R<Option<Value>> {
    let mut discharged = Vec::new();
    for d in defs {
        discharge(ev, d, &mut discharged)?;
    }
    let Some(best) = discharged.iter().map(|d| d.priority).min() else {
        return Ok(None);
    };
    let mut top: Vec<Def> = discharged
        .into_iter()
        .filter(|d| d.priority == best)
        .collect();
    let mut all_lists = true;
    for d in &top {
        if ev.type_name(&d.value)? != "list" {
            all_lists = false;
            break;
        }
    }
    if all_lists {
        top.sort_by_key(|d| d.order);
        let mut items = Vec::new();
        for d in &top {
            items.extend(ev.list_items(&d.value)?);
        }
        return Ok(Some(ev.make_list(items)));
    }
    if top.len() == 1 {
        return Ok(top.pop().map(|d| d.value));
    }
    // Several definitions must agree; the driver reports conflicts with their positions.
    let first = ev.to_json(&top[0].value)?;
    for d in &top[1..] {
        if ev.to_json(&d.value)? != first {
            return Err(Bail);
        }
    }
    Ok(top.pop().map(|d| d.value))
}

impl Native {
    pub(super) fn new(ev: &mut Evaluator) -> Option<Native> {
        let function_args = ev
            .eval_source(
                "builtins.functionArgs",
                Path::new("/ferry-internal/network/function-args.nix"),
            )
            .ok()?;
        Some(Native {
            function_args,
            files: std::collections::HashMap::new(),
            arg_names: None,
            args_ok: HashSet::new(),
        })
    }

    /// A stand-in for the driver's `machines.<name>` with `modules`, `rawDeployment` and `deployment`
    /// computed here; `None` to use the driver's.
    pub(super) fn machine(
        &mut self,
        ev: &mut Evaluator,
        name: &str,
        networks: &[(PathBuf, Value)],
        mv: &Value,
        key_defaults: &Value,
    ) -> Option<Value> {
        self.machine_inner(ev, name, networks, mv, key_defaults)
            .ok()
    }

    fn load(
        &mut self,
        ev: &mut Evaluator,
        base_args: &Value,
        file: Option<&Path>,
        value: &Value,
    ) -> R<Value> {
        let m = if ev.type_name(value)? == "lambda" {
            if !file.is_some_and(|f| self.args_ok.contains(f)) {
                let fa = ev.call(&self.function_args, value.clone())?;
                let arg_names = self.arg_names.as_ref().ok_or(Bail)?;
                for n in ev.attr_names(&fa)? {
                    if !arg_names.contains(&n) {
                        // `_module.args`: the driver resolves those lazily.
                        return Err(Bail);
                    }
                }
                if let Some(f) = file {
                    self.args_ok.insert(f.to_path_buf());
                }
            }
            ev.call(value, base_args.clone())?
        } else {
            value.clone()
        };
        if ev.type_name(&m)? != "set" {
            return Err(Bail);
        }
        Ok(m)
    }

    fn machine_inner(
        &mut self,
        ev: &mut Evaluator,
        name: &str,
        networks: &[(PathBuf, Value)],
        mv: &Value,
        key_defaults: &Value,
    ) -> R<Value> {
        let base_args = sel(ev, mv, "baseArgs")?;
        if self.arg_names.is_none() {
            self.arg_names = Some(ev.attr_names(&base_args)?.into_iter().collect());
        }

        // The module closure, in genericClosure's order (breadth first, first occurrence of a key wins).
        struct Item {
            key: String,
            file: String,
            value: Value,
        }
        let mut queue: VecDeque<Item> = VecDeque::new();
        for (attr, prefix) in [("defaults", "defaults"), (name, "machine")] {
            let mut i = 0;
            for (file, v) in networks {
                if let Some(d) = ev.select(v, attr)? {
                    queue.push_back(Item {
                        key: format!("{prefix}:{i}"),
                        file: file.to_string_lossy().into_owned(),
                        value: d,
                    });
                    i += 1;
                }
            }
        }
        let mut seen = HashSet::new();
        let mut modules: Vec<String> = Vec::new();
        let mut configs: Vec<Def> = Vec::new();
        while let Some(item) = queue.pop_front() {
            if !seen.insert(item.key.clone()) {
                continue;
            }
            let (file, raw, path) = match ev.type_name(&item.value)? {
                "path" | "string" => {
                    let p = if ev.type_name(&item.value)? == "path" {
                        ev.force_path(&item.value)?
                    } else {
                        PathBuf::from(ev.force_string(&item.value)?)
                    };
                    let raw = match self.files.get(&p) {
                        Some(v) => v.clone(),
                        None => {
                            let target = if p.is_dir() {
                                p.join("default.nix")
                            } else {
                                p.clone()
                            };
                            let v = ev.eval_file(&target)?;
                            self.files.insert(p.clone(), v.clone());
                            v
                        }
                    };
                    (p.to_string_lossy().into_owned(), raw, Some(p))
                }
                _ => (item.file.clone(), item.value.clone(), None),
            };
            let m = self.load(ev, &base_args, path.as_deref(), &raw)?;
            modules.push(file.clone());
            let names = ev.attr_names(&m)?;
            let structured = names.iter().any(|n| n == "config" || n == "options");
            let config = if structured {
                match ev.select(&m, "config")? {
                    Some(c) => c,
                    None => ev.make_attrs(Vec::new()),
                }
            } else {
                m.clone()
            };
            configs.push(Def {
                value: config,
                conds: Vec::new(),
                priority: DEFAULT_PRIORITY,
                order: DEFAULT_ORDER,
            });
            for list_name in ["imports", "require"] {
                if !names.iter().any(|n| n == list_name) {
                    continue;
                }
                let list = sel(ev, &m, list_name)?;
                let items = match ev.list_items(&list) {
                    Ok(items) => items,
                    Err(e)
                        if matches!(
                            e.kind,
                            EvalErrorKind::Throw | EvalErrorKind::AssertionFailed
                        ) =>
                    {
                        continue;
                    }
                    Err(_) => return Err(Bail),
                };
                for (i, v) in items.into_iter().enumerate() {
                    // As the driver's tryEval: an import that throws (modulesPath, pkgs) is skipped.
                    let t = match ev.type_name(&v) {
                        Ok(t) => t,
                        Err(e)
                            if matches!(
                                e.kind,
                                EvalErrorKind::Throw | EvalErrorKind::AssertionFailed
                            ) =>
                        {
                            continue;
                        }
                        Err(_) => return Err(Bail),
                    };
                    match t {
                        "path" | "string" => {
                            let p = if t == "path" {
                                ev.force_path(&v)?
                            } else {
                                PathBuf::from(ev.force_string(&v)?)
                            };
                            if !p.exists() {
                                continue;
                            }
                            let key = p.to_string_lossy().into_owned();
                            queue.push_back(Item {
                                key: key.clone(),
                                file: key,
                                value: v,
                            });
                        }
                        _ => queue.push_back(Item {
                            key: format!("{}/{i}", item.key),
                            file: file.clone(),
                            value: v,
                        }),
                    }
                }
            }
        }

        // deployment.*: names from every definition (conditions not forced), values merged per option.
        let mut roots = Vec::new();
        for c in configs {
            push_down(ev, c, &mut roots)?;
        }
        let dep = pushed_children(ev, &roots, "deployment")?;
        let mut names = BTreeSet::new();
        for d in &dep {
            names.extend(ev.attr_names(&d.value)?);
        }
        let defaults = sel(ev, mv, "defaults")?;
        let mut raw = Vec::new();
        let mut merged = Vec::new();
        for spec in DEPLOYMENT_OPTIONS {
            let value = if spec.name == "keys" {
                Some(self.keys(ev, &dep, key_defaults)?)
            } else {
                {
                    let c = child(ev, &dep, spec.name)?;
                    merge_leaf(ev, c)?
                }
            };
            let value = match value {
                Some(v) => v,
                None => sel(ev, &defaults, spec.name)?,
            };
            merged.push((spec.name.to_string(), value));
        }
        for n in names {
            // Only the names matter to discovery, except targetEnv, whose value decides a warning.
            let v = if n == "targetEnv" {
                let c = child(ev, &dep, &n)?;
                match merge_leaf(ev, c)? {
                    Some(v) => v,
                    None => ev.make_bool(false),
                }
            } else {
                ev.make_bool(true)
            };
            raw.push((n, v));
        }
        let module_values = modules.iter().map(|m| ev.make_string(m)).collect();
        let out = vec![
            ("modules".to_string(), ev.make_list(module_values)),
            ("rawDeployment".to_string(), ev.make_attrs(raw)),
            ("deployment".to_string(), ev.make_attrs(merged)),
            ("filesAt".to_string(), sel(ev, mv, "filesAt")?),
        ];
        Ok(ev.make_attrs(out))
    }

    /// deployment.keys: an attrsOf submodule; a key exists if one definition survives at its level.
    fn keys(&self, ev: &mut Evaluator, dep: &[Def], key_defaults: &Value) -> R<Value> {
        let level = pushed_children(ev, dep, "keys")?;
        let mut names = BTreeSet::new();
        for d in &level {
            names.extend(ev.attr_names(&d.value)?);
        }
        let mut keys = Vec::new();
        for k in names {
            let mut defs = Vec::new();
            for d in child(ev, &level, &k)? {
                discharge(ev, d, &mut defs)?;
            }
            if defs.is_empty() {
                continue;
            }
            let mut fields_defs = Vec::new();
            for d in defs {
                let d = Def {
                    priority: DEFAULT_PRIORITY,
                    ..d
                };
                push_down(ev, d, &mut fields_defs)?;
            }
            let mut fields = BTreeSet::new();
            for d in &fields_defs {
                fields.extend(ev.attr_names(&d.value)?);
            }
            for spec in KEY_OPTIONS {
                fields.insert(spec.name.to_string());
            }
            let mut attrs = Vec::new();
            for f in fields {
                let c = child(ev, &fields_defs, &f)?;
                let v = merge_leaf(ev, c)?;
                let v = match v {
                    Some(v) => v,
                    None => match ev.select(key_defaults, &f)? {
                        Some(d) => d,
                        // text/keyFile/keyCommand without a definition: absent, as in the driver.
                        None => continue,
                    },
                };
                attrs.push((f, v));
            }
            keys.push((k, ev.make_attrs(attrs)));
        }
        Ok(ev.make_attrs(keys))
    }
}
