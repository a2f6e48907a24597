//! The builtins: Nix 2.8's set, minus what needs a store or the network, which evaluates to a clear
//! "not available during discovery" error only when called.

use std::collections::HashMap;
use std::rc::Rc;

use super::machine::{as_float, check_list_len, check_string_len, err, expected, type_err};
use super::value::{Attrs, NixList, NixStr, PrimApp, Sym, Thunk, V};
use super::{EvalError, EvalErrorKind, Evaluator, IResult as Result};

/// A builtin function of `arity` arguments.
pub(crate) struct PrimOp {
    pub name: &'static str,
    pub arity: usize,
    pub f: fn(&mut Evaluator, Vec<V>) -> Result<V>,
}

impl std::fmt::Debug for PrimOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<primop {}>", self.name)
    }
}

macro_rules! prim {
    ($name:literal, $arity:literal, $f:expr) => {
        PrimOp {
            name: $name,
            arity: $arity,
            f: $f,
        }
    };
}

/// Builtins also bound at top level without the `__` prefix.
pub(crate) const TOP_LEVEL: &[&str] = &[
    "abort",
    "baseNameOf",
    "derivation",
    "derivationStrict",
    "dirOf",
    "fetchGit",
    "fetchMercurial",
    "fetchTarball",
    "fetchTree",
    "fromTOML",
    "import",
    "isNull",
    "map",
    "placeholder",
    "removeAttrs",
    "scopedImport",
    "throw",
    "toString",
];

fn unavailable(_: &mut Evaluator, _: Vec<V>) -> Result<V> {
    // Renamed with the builtin's name by the caller (see `name_unavailable`).
    Err(err(
        EvalErrorKind::NotAvailableDuringDiscovery,
        "not available during discovery",
    ))
}

pub(crate) static PRIMOPS: &[PrimOp] = &[
    // Control.
    prim!("abort", 1, |ev, a| {
        let s = ev.coerce_to_string(&a[0], false, false)?;
        Err(err(
            EvalErrorKind::Abort,
            format!(
                "evaluation aborted with the following error message: '{}'",
                s.s
            ),
        ))
    }),
    prim!("throw", 1, |ev, a| {
        let s = ev.coerce_to_string(&a[0], false, false)?;
        Err(err(EvalErrorKind::Throw, s.s.to_string()))
    }),
    prim!("addErrorContext", 2, |ev, a| {
        // The context message is not kept: ferry's traces carry positions instead.
        ev.force(&a[1])
    }),
    prim!("tryEval", 1, |ev, a| {
        let (success, value) = match ev.force(&a[0]) {
            Ok(v) => (true, v),
            Err(e)
                if matches!(
                    e.kind,
                    EvalErrorKind::Throw | EvalErrorKind::AssertionFailed
                ) =>
            {
                (false, V::Bool(false))
            }
            Err(e) => return Err(e),
        };
        Ok(ev.attrs_from(vec![("success", V::Bool(success)), ("value", value)]))
    }),
    prim!("seq", 2, |ev, a| {
        ev.force(&a[0])?;
        ev.force(&a[1])
    }),
    prim!("deepSeq", 2, |ev, a| {
        ev.force_deep(&a[0])?;
        ev.force(&a[1])
    }),
    prim!("trace", 2, |ev, a| {
        let v = ev.force(&a[0])?;
        let msg = match &v {
            V::Str(s) => s.s.to_string(),
            other => ev.print_value(other, false)?,
        };
        ev.traces.push(msg);
        ev.force(&a[1])
    }),
    prim!("genericClosure", 1, |ev, a| {
        let args = ev.force_attrs(&a[0])?;
        let start = args.get("startSet").cloned().ok_or_else(|| {
            err(
                EvalErrorKind::MissingAttribute,
                "attribute 'startSet' required",
            )
        })?;
        let op = args.get("operator").cloned().ok_or_else(|| {
            err(
                EvalErrorKind::MissingAttribute,
                "attribute 'operator' required",
            )
        })?;
        let mut work: std::collections::VecDeque<V> =
            ev.force_list(&start)?.iter().cloned().collect();
        let mut seen_keys: Vec<V> = Vec::new();
        let mut fast: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut out = Vec::new();
        while let Some(item) = work.pop_front() {
            let attrs = ev.force_attrs(&item)?;
            let key = attrs
                .get("key")
                .cloned()
                .ok_or_else(|| err(EvalErrorKind::MissingAttribute, "attribute 'key' required"))?;
            let key = ev.force(&key)?;
            let fast_key = match &key {
                V::Int(i) => Some(format!("i{i}")),
                V::Str(s) => Some(format!("s{}", s.s)),
                _ => None,
            };
            let is_new = match fast_key {
                Some(k) => fast.insert(k),
                None => {
                    let mut found = false;
                    for k in &seen_keys {
                        if ev.equal(k, &key)? {
                            found = true;
                            break;
                        }
                    }
                    if !found {
                        seen_keys.push(key.clone());
                    }
                    !found
                }
            };
            if !is_new {
                continue;
            }
            out.push(item.clone());
            let next = ev.apply(&op, item, None)?;
            work.extend(ev.force_list(&next)?.iter().cloned());
        }
        Ok(V::List(Rc::new(NixList::new(out))))
    }),
    // Types.
    prim!("typeOf", 1, |ev, a| Ok(V::str(
        ev.force(&a[0])?.type_name()
    ))),
    prim!("isAttrs", 1, |ev, a| Ok(V::Bool(matches!(
        ev.force(&a[0])?,
        V::Attrs(_)
    )))),
    prim!("isList", 1, |ev, a| Ok(V::Bool(matches!(
        ev.force(&a[0])?,
        V::List(_)
    )))),
    prim!("isString", 1, |ev, a| Ok(V::Bool(matches!(
        ev.force(&a[0])?,
        V::Str(_)
    )))),
    prim!("isInt", 1, |ev, a| Ok(V::Bool(matches!(
        ev.force(&a[0])?,
        V::Int(_)
    )))),
    prim!("isFloat", 1, |ev, a| Ok(V::Bool(matches!(
        ev.force(&a[0])?,
        V::Float(_)
    )))),
    prim!("isBool", 1, |ev, a| Ok(V::Bool(matches!(
        ev.force(&a[0])?,
        V::Bool(_)
    )))),
    prim!("isNull", 1, |ev, a| Ok(V::Bool(matches!(
        ev.force(&a[0])?,
        V::Null
    )))),
    prim!("isPath", 1, |ev, a| Ok(V::Bool(matches!(
        ev.force(&a[0])?,
        V::Path(_)
    )))),
    prim!("isFunction", 1, |ev, a| Ok(V::Bool(matches!(
        ev.force(&a[0])?,
        V::Lambda(_) | V::PrimOp(_)
    )))),
    // Arithmetic.
    prim!("add", 2, |ev, a| num_op(ev, super::compile::BinOp::Add, &a)),
    prim!("sub", 2, |ev, a| num_op(ev, super::compile::BinOp::Sub, &a)),
    prim!("mul", 2, |ev, a| num_op(ev, super::compile::BinOp::Mul, &a)),
    prim!("div", 2, |ev, a| num_op(ev, super::compile::BinOp::Div, &a)),
    prim!("bitAnd", 2, |ev, a| Ok(V::Int(
        ev.force_int_v(&a[0])? & ev.force_int_v(&a[1])?
    ))),
    prim!("bitOr", 2, |ev, a| Ok(V::Int(
        ev.force_int_v(&a[0])? | ev.force_int_v(&a[1])?
    ))),
    prim!("bitXor", 2, |ev, a| Ok(V::Int(
        ev.force_int_v(&a[0])? ^ ev.force_int_v(&a[1])?
    ))),
    prim!("lessThan", 2, |ev, a| Ok(V::Bool(
        ev.less_than(&a[0], &a[1])?
    ))),
    prim!("ceil", 1, |ev, a| match ev.force(&a[0])? {
        V::Int(i) => Ok(V::Int(i)),
        V::Float(f) => Ok(V::Int(f.ceil() as i64)),
        other => Err(expected("a float", &other)),
    }),
    prim!("floor", 1, |ev, a| match ev.force(&a[0])? {
        V::Int(i) => Ok(V::Int(i)),
        V::Float(f) => Ok(V::Int(f.floor() as i64)),
        other => Err(expected("a float", &other)),
    }),
    // Attribute sets.
    prim!("attrNames", 1, |ev, a| {
        let s = ev.force_attrs(&a[0])?;
        Ok(V::List(Rc::new(NixList::new(
            s.entries
                .iter()
                .map(|(n, _, _)| V::str(n.clone()))
                .collect(),
        ))))
    }),
    prim!("attrValues", 1, |ev, a| {
        let s = ev.force_attrs(&a[0])?;
        Ok(V::List(Rc::new(NixList::new(
            s.entries.iter().map(|(_, v, _)| v.clone()).collect(),
        ))))
    }),
    prim!("hasAttr", 2, |ev, a| {
        let n = ev.force_str_plain(&a[0])?;
        let s = ev.force_attrs(&a[1])?;
        Ok(V::Bool(s.get(&n).is_some()))
    }),
    prim!("getAttr", 2, |ev, a| {
        let n = ev.force_str_plain(&a[0])?;
        let s = ev.force_attrs(&a[1])?;
        match s.get(&n) {
            Some(v) => {
                let v = v.clone();
                ev.force(&v)
            }
            None => Err(ev.missing_attr(&n, &s)),
        }
    }),
    prim!("unsafeGetAttrPos", 2, |ev, a| {
        let n = ev.force_str_plain(&a[0])?;
        let s = ev.force_attrs(&a[1])?;
        match s.find(&n).and_then(|i| s.entries[i].2) {
            Some(p) => Ok(ev.pos_attrs(p)),
            None => Ok(V::Null),
        }
    }),
    prim!("removeAttrs", 2, |ev, a| {
        let s = ev.force_attrs(&a[0])?;
        let names = ev.force_list(&a[1])?;
        let mut drop = std::collections::HashSet::new();
        for n in names.iter() {
            drop.insert(ev.force_str_plain(n)?);
        }
        let entries = s
            .entries
            .iter()
            .filter(|(n, _, _)| !drop.contains(n))
            .cloned()
            .collect();
        Ok(V::Attrs(Rc::new(Attrs { entries })))
    }),
    prim!("intersectAttrs", 2, |ev, a| {
        let x = ev.force_attrs(&a[0])?;
        let y = ev.force_attrs(&a[1])?;
        let entries = y
            .entries
            .iter()
            .filter(|(n, _, _)| x.get(n).is_some())
            .cloned()
            .collect();
        Ok(V::Attrs(Rc::new(Attrs { entries })))
    }),
    prim!("listToAttrs", 1, |ev, a| {
        let l = ev.force_list(&a[0])?;
        let mut entries: Vec<(Sym, V, Option<super::Pos>)> = Vec::with_capacity(l.len());
        let mut seen = std::collections::HashSet::new();
        for item in l.iter() {
            let s = ev.force_attrs(item)?;
            let name = s
                .get("name")
                .cloned()
                .ok_or_else(|| err(EvalErrorKind::MissingAttribute, "attribute 'name' missing"))?;
            let name = ev.force_str_plain(&name)?;
            let value = s
                .get("value")
                .cloned()
                .ok_or_else(|| err(EvalErrorKind::MissingAttribute, "attribute 'value' missing"))?;
            // The first occurrence of a name wins.
            if seen.insert(name.clone()) {
                let pos = s.find("value").and_then(|i| s.entries[i].2);
                entries.push((ev.interner.intern(&name), value, pos));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(V::Attrs(Rc::new(Attrs { entries })))
    }),
    prim!("mapAttrs", 2, |ev, a| {
        let s = ev.force_attrs(&a[1])?;
        let f = a[0].clone();
        let entries = s
            .entries
            .iter()
            .map(|(n, v, p)| {
                let partial = V::thunk(Thunk::Apply(f.clone(), V::str(n.clone())));
                (n.clone(), V::thunk(Thunk::Apply(partial, v.clone())), *p)
            })
            .collect();
        let _ = ev;
        Ok(V::Attrs(Rc::new(Attrs { entries })))
    }),
    prim!("catAttrs", 2, |ev, a| {
        let n = ev.force_str_plain(&a[0])?;
        let l = ev.force_list(&a[1])?;
        let mut out = Vec::new();
        for item in l.iter() {
            let s = ev.force_attrs(item)?;
            if let Some(v) = s.get(&n) {
                out.push(v.clone());
            }
        }
        Ok(V::List(Rc::new(NixList::new(out))))
    }),
    prim!("zipAttrsWith", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        let mut groups: std::collections::BTreeMap<Sym, Vec<V>> = std::collections::BTreeMap::new();
        for item in l.iter() {
            let s = ev.force_attrs(item)?;
            for (n, v, _) in &s.entries {
                groups.entry(n.clone()).or_default().push(v.clone());
            }
        }
        let f = a[0].clone();
        let entries = groups
            .into_iter()
            .map(|(n, vs)| {
                let partial = V::thunk(Thunk::Apply(f.clone(), V::str(n.clone())));
                (
                    n,
                    V::thunk(Thunk::Apply(partial, V::List(Rc::new(NixList::new(vs))))),
                    None,
                )
            })
            .collect();
        Ok(V::Attrs(Rc::new(Attrs { entries })))
    }),
    prim!("groupBy", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        let mut groups: std::collections::BTreeMap<Rc<str>, Vec<V>> =
            std::collections::BTreeMap::new();
        for item in l.iter() {
            let k = ev.apply(&a[0], item.clone(), None)?;
            let k = ev.force_str_plain(&k)?;
            groups.entry(k).or_default().push(item.clone());
        }
        let entries = groups
            .into_iter()
            .map(|(n, vs)| {
                (
                    ev.interner.intern(&n),
                    V::List(Rc::new(NixList::new(vs))),
                    None,
                )
            })
            .collect();
        Ok(V::Attrs(Rc::new(Attrs { entries })))
    }),
    prim!("functionArgs", 1, |ev, a| {
        let f = ev.force(&a[0])?;
        match &f {
            V::Lambda(c) => match &c.def.param {
                super::compile::Param::Ident(_) => Ok(V::Attrs(Rc::new(Attrs::default()))),
                super::compile::Param::Pattern { formals, .. } => {
                    let entries = formals
                        .iter()
                        .map(|(n, d)| (n.clone(), V::Bool(d.is_some()), Some(c.def.pos)))
                        .collect();
                    Ok(V::Attrs(Rc::new(Attrs::from_unsorted(entries))))
                }
            },
            V::PrimOp(_) => Ok(V::Attrs(Rc::new(Attrs::default()))),
            other => Err(expected("a function", other)),
        }
    }),
    // Lists.
    prim!("map", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        let f = a[0].clone();
        Ok(V::List(Rc::new(NixList::new(
            l.iter()
                .map(|x| V::thunk(Thunk::Apply(f.clone(), x.clone())))
                .collect(),
        ))))
    }),
    prim!("filter", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        let mut out = Vec::new();
        for x in l.iter() {
            let keep = ev.apply(&a[0], x.clone(), None)?;
            if ev.force_bool_v(&keep)? {
                out.push(x.clone());
            }
        }
        Ok(V::List(Rc::new(NixList::new(out))))
    }),
    prim!("foldl'", 3, |ev, a| {
        let l = ev.force_list(&a[2])?;
        let mut acc = a[1].clone();
        for x in l.iter() {
            let g = ev.apply(&a[0], acc, None)?;
            acc = ev.apply(&g, x.clone(), None)?;
        }
        ev.force(&acc)
    }),
    prim!("elem", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        for x in l.iter() {
            if ev.equal(&a[0], x)? {
                return Ok(V::Bool(true));
            }
        }
        Ok(V::Bool(false))
    }),
    prim!("elemAt", 2, |ev, a| {
        let l = ev.force_list(&a[0])?;
        let i = ev.force_int_v(&a[1])?;
        match usize::try_from(i).ok().and_then(|i| l.get(i)) {
            Some(v) => {
                let v = v.clone();
                ev.force(&v)
            }
            None => Err(err(
                EvalErrorKind::Eval,
                format!("list index {i} is out of bounds"),
            )),
        }
    }),
    prim!("length", 1, |ev, a| Ok(V::Int(
        ev.force_list(&a[0])?.len() as i64
    ))),
    prim!("head", 1, |ev, a| {
        let l = ev.force_list(&a[0])?;
        match l.first() {
            Some(v) => {
                let v = v.clone();
                ev.force(&v)
            }
            None => Err(err(EvalErrorKind::Eval, "list index 0 is out of bounds")),
        }
    }),
    prim!("tail", 1, |ev, a| {
        let l = ev.force_list(&a[0])?;
        if l.is_empty() {
            return Err(err(EvalErrorKind::Eval, "'tail' called on an empty list"));
        }
        Ok(V::List(Rc::new(NixList::new(l[1..].to_vec()))))
    }),
    prim!("concatLists", 1, |ev, a| {
        let l = ev.force_list(&a[0])?;
        let mut out = Vec::new();
        for x in l.iter() {
            let l = ev.force_list(x)?;
            check_list_len(out.len() + l.len())?;
            out.extend(l.iter().cloned());
        }
        Ok(V::List(Rc::new(NixList::new(out))))
    }),
    prim!("concatMap", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        let mut out = Vec::new();
        for x in l.iter() {
            let r = ev.apply(&a[0], x.clone(), None)?;
            let l = ev.force_list(&r)?;
            check_list_len(out.len() + l.len())?;
            out.extend(l.iter().cloned());
        }
        Ok(V::List(Rc::new(NixList::new(out))))
    }),
    prim!("genList", 2, |ev, a| {
        let n = ev.force_int_v(&a[1])?;
        if n < 0 {
            return Err(err(
                EvalErrorKind::Eval,
                format!("cannot create list of size {n}"),
            ));
        }
        check_list_len(usize::try_from(n).unwrap_or(usize::MAX))?;
        let f = a[0].clone();
        Ok(V::List(Rc::new(NixList::new(
            (0..n)
                .map(|i| V::thunk(Thunk::Apply(f.clone(), V::Int(i))))
                .collect(),
        ))))
    }),
    prim!("sort", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        let items: Vec<V> = l.iter().cloned().collect();
        let sorted = merge_sort(ev, &a[0], items)?;
        Ok(V::List(Rc::new(NixList::new(sorted))))
    }),
    prim!("partition", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        let (mut right, mut wrong) = (Vec::new(), Vec::new());
        for x in l.iter() {
            let r = ev.apply(&a[0], x.clone(), None)?;
            if ev.force_bool_v(&r)? {
                right.push(x.clone());
            } else {
                wrong.push(x.clone());
            }
        }
        Ok(ev.attrs_from(vec![
            ("right", V::List(Rc::new(NixList::new(right)))),
            ("wrong", V::List(Rc::new(NixList::new(wrong)))),
        ]))
    }),
    prim!("all", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        for x in l.iter() {
            let r = ev.apply(&a[0], x.clone(), None)?;
            if !ev.force_bool_v(&r)? {
                return Ok(V::Bool(false));
            }
        }
        Ok(V::Bool(true))
    }),
    prim!("any", 2, |ev, a| {
        let l = ev.force_list(&a[1])?;
        for x in l.iter() {
            let r = ev.apply(&a[0], x.clone(), None)?;
            if ev.force_bool_v(&r)? {
                return Ok(V::Bool(true));
            }
        }
        Ok(V::Bool(false))
    }),
    // Strings.
    prim!("toString", 1, |ev, a| Ok(V::Str(
        ev.coerce_to_string(&a[0], true, false)?
    ))),
    prim!("concatStringsSep", 2, |ev, a| {
        let sep = ev.force_nixstr(&a[0])?;
        let l = ev.force_list(&a[1])?;
        let mut out = String::new();
        let mut ctx: Vec<Rc<str>> = sep.ctx.as_ref().map(|c| c.to_vec()).unwrap_or_default();
        for (i, x) in l.iter().enumerate() {
            if i > 0 {
                out.push_str(&sep.s);
            }
            let s = ev.coerce_to_string(x, false, true)?;
            check_string_len(out.len() + s.s.len())?;
            out.push_str(&s.s);
            if let Some(c) = &s.ctx {
                ctx.extend(c.iter().cloned());
            }
        }
        Ok(V::Str(NixStr {
            s: Rc::from(out),
            ctx: if ctx.is_empty() {
                None
            } else {
                Some(Rc::new(ctx))
            },
        }))
    }),
    prim!("replaceStrings", 3, |ev, a| {
        let from = ev.force_list(&a[0])?;
        let to = ev.force_list(&a[1])?;
        if from.len() != to.len() {
            return Err(err(
                EvalErrorKind::Eval,
                "'from' and 'to' arguments to 'replaceStrings' have different lengths",
            ));
        }
        let s = ev.force_nixstr(&a[2])?;
        let mut froms = Vec::with_capacity(from.len());
        for f in from.iter() {
            froms.push(ev.force_str_plain(f)?);
        }
        let mut tos: Vec<Option<Rc<str>>> = vec![None; to.len()];
        let bytes = s.s.as_bytes();
        let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
        let mut p = 0;
        while p <= bytes.len() {
            let mut matched = false;
            for (i, f) in froms.iter().enumerate() {
                if bytes[p..].starts_with(f.as_bytes()) {
                    if tos[i].is_none() {
                        tos[i] = Some(ev.force_str_plain(&to[i])?);
                    }
                    if let Some(t) = &tos[i] {
                        check_string_len(out.len() + t.len())?;
                        out.extend_from_slice(t.as_bytes());
                    }
                    matched = true;
                    if f.is_empty() {
                        if p < bytes.len() {
                            out.push(bytes[p]);
                        }
                        p += 1;
                    } else {
                        p += f.len();
                    }
                    break;
                }
            }
            if !matched {
                if p < bytes.len() {
                    out.push(bytes[p]);
                }
                p += 1;
            }
        }
        Ok(V::Str(NixStr {
            s: Rc::from(String::from_utf8_lossy(&out).as_ref()),
            ctx: s.ctx.clone(),
        }))
    }),
    prim!("substring", 3, |ev, a| {
        let start = ev.force_int_v(&a[0])?;
        let len = ev.force_int_v(&a[1])?;
        let s = ev.coerce_to_string(&a[2], false, false)?;
        if start < 0 {
            return Err(err(
                EvalErrorKind::Eval,
                "negative start position in 'substring'",
            ));
        }
        let b = s.s.as_bytes();
        let start = (start as usize).min(b.len());
        let end = if len < 0 {
            b.len()
        } else {
            start.saturating_add(len as usize).min(b.len())
        };
        Ok(V::Str(NixStr {
            s: Rc::from(String::from_utf8_lossy(&b[start..end]).as_ref()),
            ctx: s.ctx.clone(),
        }))
    }),
    prim!("stringLength", 1, |ev, a| Ok(V::Int(
        ev.coerce_to_string(&a[0], false, false)?.s.len() as i64
    ))),
    prim!("split", 2, |ev, a| {
        let re = ev.force_str_plain(&a[0])?;
        let s = ev.force_str_plain(&a[1])?;
        let re = super::regex::compile(&re, false)?;
        let mut out = Vec::new();
        let mut last = 0;
        for caps in re.captures_iter(&s) {
            let Some(m) = caps.get(0) else { continue };
            out.push(V::str(&s[last..m.start()]));
            let groups = (1..caps.len())
                .map(|i| caps.get(i).map(|g| V::str(g.as_str())).unwrap_or(V::Null))
                .collect();
            out.push(V::List(Rc::new(NixList::new(groups))));
            last = m.end();
        }
        out.push(V::str(&s[last..]));
        Ok(V::List(Rc::new(NixList::new(out))))
    }),
    prim!("match", 2, |ev, a| {
        let re = ev.force_str_plain(&a[0])?;
        let s = ev.force_str_plain(&a[1])?;
        let re = super::regex::compile(&re, true)?;
        match re.captures(&s) {
            Some(caps) => Ok(V::List(Rc::new(NixList::new(
                (1..caps.len())
                    .map(|i| caps.get(i).map(|g| V::str(g.as_str())).unwrap_or(V::Null))
                    .collect(),
            )))),
            None => Ok(V::Null),
        }
    }),
    prim!("splitVersion", 1, |ev, a| {
        let s = ev.coerce_to_string(&a[0], false, false)?;
        Ok(V::List(Rc::new(NixList::new(
            split_version(&s.s).into_iter().map(V::str).collect(),
        ))))
    }),
    prim!("compareVersions", 2, |ev, a| {
        let x = ev.force_str_plain(&a[0])?;
        let y = ev.force_str_plain(&a[1])?;
        Ok(V::Int(compare_versions(&x, &y)))
    }),
    prim!("parseDrvName", 1, |ev, a| {
        let s = ev.coerce_to_string(&a[0], false, false)?;
        let (name, version) = parse_drv_name(&s.s);
        Ok(ev.attrs_from(vec![("name", V::str(name)), ("version", V::str(version))]))
    }),
    prim!("hashString", 2, |ev, a| {
        let algo = ev.force_str_plain(&a[0])?;
        let s = ev.force_str_plain(&a[1])?;
        Ok(V::str(hash_hex(&algo, s.as_bytes())?))
    }),
    prim!("baseNameOf", 1, |ev, a| {
        let s = ev.coerce_to_string(&a[0], false, false)?;
        let t = s.s.strip_suffix('/').unwrap_or(&s.s);
        let base = match t.rfind('/') {
            Some(p) => &t[p + 1..],
            None => t,
        };
        Ok(V::Str(NixStr {
            s: Rc::from(base),
            ctx: s.ctx.clone(),
        }))
    }),
    prim!("dirOf", 1, |ev, a| {
        let v = ev.force(&a[0])?;
        let s = ev.coerce_to_string(&v, false, false)?;
        let dir = match s.s.rfind('/') {
            None => ".".to_string(),
            Some(0) => "/".to_string(),
            Some(p) => s.s[..p].to_string(),
        };
        if matches!(v, V::Path(_)) {
            Ok(V::Path(Rc::from(dir)))
        } else {
            Ok(V::Str(NixStr {
                s: Rc::from(dir),
                ctx: s.ctx.clone(),
            }))
        }
    }),
    prim!("unsafeDiscardStringContext", 1, |ev, a| {
        let s = ev.coerce_to_string(&a[0], false, false)?;
        Ok(V::Str(NixStr::plain(s.s)))
    }),
    prim!("unsafeDiscardOutputDependency", 1, |ev, a| Ok(V::Str(
        ev.coerce_to_string(&a[0], false, false)?
    ))),
    prim!("hasContext", 1, |ev, a| Ok(V::Bool(
        ev.force_nixstr(&a[0])?.ctx.is_some()
    ))),
    prim!("getContext", 1, |ev, a| {
        let s = ev.force_nixstr(&a[0])?;
        let mut entries = Vec::new();
        for p in s.ctx.iter().flat_map(|c| c.iter()) {
            let path = ev.attrs_from(vec![("path", V::Bool(true))]);
            entries.push((ev.interner.intern(p), path, None));
        }
        Ok(V::Attrs(Rc::new(Attrs::from_unsorted(entries))))
    }),
    prim!("appendContext", 2, |ev, a| {
        let s = ev.force_nixstr(&a[0])?;
        let c = ev.force_attrs(&a[1])?;
        let mut ctx: Vec<Rc<str>> = s.ctx.as_ref().map(|c| c.to_vec()).unwrap_or_default();
        ctx.extend(c.entries.iter().map(|(n, _, _)| n.clone()));
        Ok(V::Str(NixStr {
            s: s.s.clone(),
            ctx: if ctx.is_empty() {
                None
            } else {
                Some(Rc::new(ctx))
            },
        }))
    }),
    prim!("placeholder", 1, |ev, a| {
        let out = ev.force_str_plain(&a[0])?;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(format!("nix-output:{out}").as_bytes());
        Ok(V::str(format!("/{}", nixbase32(&digest))))
    }),
    // Files and environment.
    prim!("import", 1, |ev, a| ev.import_value(&a[0])),
    prim!("scopedImport", 2, |_, _| Err(err(
        EvalErrorKind::NotImplemented,
        "'scopedImport' is not supported by ferry's evaluator"
    ))),
    prim!("readFile", 1, |ev, a| {
        let p = ev.coerce_to_path(&a[0])?;
        let bytes = ev.read_file_bytes(&p)?;
        Ok(V::str(String::from_utf8_lossy(&bytes).as_ref()))
    }),
    prim!("pathExists", 1, |ev, a| {
        let p = ev.coerce_to_path(&a[0])?;
        Ok(V::Bool(ev.path_exists(&p)))
    }),
    prim!("readDir", 1, |ev, a| {
        let p = ev.coerce_to_path(&a[0])?;
        let rd = std::fs::read_dir(&*p)
            .map_err(|e| err(EvalErrorKind::Io, format!("reading directory '{p}': {e}")))?;
        let mut entries = Vec::new();
        for ent in rd {
            let ent =
                ent.map_err(|e| err(EvalErrorKind::Io, format!("reading directory '{p}': {e}")))?;
            let ft = ent
                .file_type()
                .map_err(|e| err(EvalErrorKind::Io, format!("reading directory '{p}': {e}")))?;
            let kind = if ft.is_symlink() {
                "symlink"
            } else if ft.is_dir() {
                "directory"
            } else if ft.is_file() {
                "regular"
            } else {
                "unknown"
            };
            let name = ent.file_name().to_string_lossy().to_string();
            entries.push((ev.interner.intern(&name), V::str(kind), None));
        }
        Ok(V::Attrs(Rc::new(Attrs::from_unsorted(entries))))
    }),
    prim!("getEnv", 1, |ev, a| {
        let n = ev.force_str_plain(&a[0])?;
        Ok(V::str(std::env::var(&*n).unwrap_or_default()))
    }),
    prim!("toPath", 1, |ev, a| {
        let p = ev.coerce_to_path(&a[0])?;
        Ok(V::str(p))
    }),
    prim!("findFile", 2, |ev, a| {
        let name = ev.force_str_plain(&a[1])?;
        ev.find_file(&name)
    }),
    prim!("toJSON", 1, |ev, a| { Ok(V::str(ev.json_text_of(&a[0])?)) }),
    prim!("fromJSON", 1, |ev, a| {
        let s = ev.force_str_plain(&a[0])?;
        let j: serde_json::Value =
            serde_json::from_str(&s).map_err(|e| err(EvalErrorKind::Eval, format!("{e}")))?;
        Ok(ev.value_of_json(&j))
    }),
    prim!("fromTOML", 1, |_, _| Err(err(
        EvalErrorKind::NotImplemented,
        "'fromTOML' is not supported by ferry's evaluator"
    ))),
    prim!("toXML", 1, |_, _| Err(err(
        EvalErrorKind::NotImplemented,
        "'toXML' is not supported by ferry's evaluator"
    ))),
    // Store and network: only an error when called.
    prim!("derivation", 1, unavailable),
    prim!("derivationStrict", 1, unavailable),
    prim!("fetchGit", 1, unavailable),
    prim!("fetchMercurial", 1, unavailable),
    prim!("fetchTarball", 1, unavailable),
    prim!("fetchTree", 1, unavailable),
    prim!("fetchurl", 1, unavailable),
    prim!("filterSource", 2, unavailable),
    prim!("path", 1, unavailable),
    prim!("toFile", 2, unavailable),
    prim!("storePath", 1, unavailable),
    prim!("hashFile", 2, |ev, a| {
        let algo = ev.force_str_plain(&a[0])?;
        let p = ev.coerce_to_path(&a[1])?;
        let bytes = ev.read_file_bytes(&p)?;
        Ok(V::str(hash_hex(&algo, &bytes)?))
    }),
];

/// Turns the generic "not available" error of a store/fetch builtin into one naming it.
pub(crate) fn name_unavailable(e: Box<EvalError>, op: &PrimApp) -> Box<EvalError> {
    if e.kind == EvalErrorKind::NotAvailableDuringDiscovery
        && e.message == "not available during discovery"
    {
        let mut e2 = err(
            EvalErrorKind::NotAvailableDuringDiscovery,
            format!(
                "'{}' is not available during discovery: ferry evaluates networks without a Nix store",
                op.op.name
            ),
        );
        e2.pos = e.pos;
        return e2;
    }
    e
}

fn num_op(ev: &mut Evaluator, op: super::compile::BinOp, a: &[V]) -> Result<V> {
    let x = ev.force(&a[0])?;
    let y = ev.force(&a[1])?;
    ev.arith(op, x, y)
}

fn merge_sort(ev: &mut Evaluator, cmp: &V, items: Vec<V>) -> Result<Vec<V>> {
    if items.len() <= 1 {
        return Ok(items);
    }
    let mut right = items;
    let left_part: Vec<V> = right.drain(..right.len() / 2).collect();
    let left = merge_sort(ev, cmp, left_part)?;
    let right = merge_sort(ev, cmp, right)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        // Stable: take from the right only if it is strictly less.
        let g = ev.apply(cmp, right[j].clone(), None)?;
        let r = ev.apply(&g, left[i].clone(), None)?;
        if ev.force_bool_v(&r)? {
            out.push(right[j].clone());
            j += 1;
        } else {
            out.push(left[i].clone());
            i += 1;
        }
    }
    out.extend_from_slice(&left[i..]);
    out.extend_from_slice(&right[j..]);
    Ok(out)
}

/// Nix's `splitVersion`: components are runs of digits or of other non-separator characters.
pub(crate) fn split_version(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut p = 0;
    while p < b.len() {
        let c = b[p];
        if c == b'.' || c == b'-' {
            p += 1;
            continue;
        }
        let start = p;
        if c.is_ascii_digit() {
            while p < b.len() && b[p].is_ascii_digit() {
                p += 1;
            }
        } else {
            while p < b.len() && !b[p].is_ascii_digit() && b[p] != b'.' && b[p] != b'-' {
                p += 1;
            }
        }
        out.push(String::from_utf8_lossy(&b[start..p]).to_string());
    }
    out
}

fn component_less(a: &str, b: &str) -> bool {
    let an: Option<u64> = if !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) {
        a.parse().ok()
    } else {
        None
    };
    let bn: Option<u64> = if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) {
        b.parse().ok()
    } else {
        None
    };
    match (an, bn) {
        (Some(x), Some(y)) => x < y,
        _ => {
            if a == "pre" && b != "pre" {
                true
            } else if b == "pre" {
                false
            } else if bn.is_some() {
                // Numbers are newer than words.
                true
            } else if an.is_some() {
                false
            } else {
                a < b
            }
        }
    }
}

/// Nix's `compareVersions`: -1, 0 or 1.
pub(crate) fn compare_versions(a: &str, b: &str) -> i64 {
    let x = split_version(a);
    let y = split_version(b);
    let n = x.len().max(y.len());
    for i in 0..n {
        let c1 = x.get(i).map(String::as_str).unwrap_or("");
        let c2 = y.get(i).map(String::as_str).unwrap_or("");
        if component_less(c1, c2) {
            return -1;
        }
        if component_less(c2, c1) {
            return 1;
        }
    }
    0
}

fn parse_drv_name(s: &str) -> (String, String) {
    // The name ends at the first dash followed by a non-letter.
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'-' && i + 1 < b.len() && !b[i + 1].is_ascii_alphabetic() {
            return (s[..i].to_string(), s[i + 1..].to_string());
        }
    }
    (s.to_string(), String::new())
}

fn hash_hex(algo: &str, data: &[u8]) -> Result<String> {
    use sha2::Digest;
    let bytes: Vec<u8> = match algo {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        other => {
            return Err(err(
                EvalErrorKind::Eval,
                format!("unknown hash algorithm '{other}'"),
            ));
        }
    };
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Nix's base-32 (as used in store paths and `placeholder`).
pub(crate) fn nixbase32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let len = (bytes.len() * 8).div_ceil(5);
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = u16::from(bytes[i]) >> j;
        let hi = if i + 1 < bytes.len() {
            u16::from(bytes[i + 1]) << (8 - j)
        } else {
            0
        };
        let c = ((lo | hi) & 0x1f) as usize;
        out.push(char::from(ALPHABET[c]));
    }
    out
}

impl Evaluator {
    /// A set from `(name, value)` pairs (any order).
    pub(crate) fn attrs_from(&mut self, pairs: Vec<(&str, V)>) -> V {
        let entries = pairs
            .into_iter()
            .map(|(n, v)| (self.interner.intern(n), v, None))
            .collect();
        V::Attrs(Rc::new(Attrs::from_unsorted(entries)))
    }

    /// The `builtins` set and the base environment's names (`builtins`, `true`, `map`, `__map`, …).
    pub(crate) fn make_globals(&mut self) -> (V, Vec<(Sym, V)>) {
        let mut b: Vec<(Sym, V, Option<super::Pos>)> = Vec::new();
        let mut prims: HashMap<&'static str, V> = HashMap::new();
        for op in PRIMOPS {
            let v = V::PrimOp(Rc::new(PrimApp {
                op,
                args: Vec::new(),
            }));
            prims.insert(op.name, v.clone());
            b.push((self.interner.intern(op.name), v, None));
        }
        let consts: Vec<(&str, V)> = vec![
            ("true", V::Bool(true)),
            ("false", V::Bool(false)),
            ("null", V::Null),
            ("currentSystem", V::str(self.opts.current_system.as_str())),
            ("currentTime", V::Int(current_time())),
            ("nixVersion", V::str("2.8.0")),
            ("langVersion", V::Int(6)),
            ("storeDir", V::str("/nix/store")),
        ];
        for (n, v) in &consts {
            b.push((self.interner.intern(n), v.clone(), None));
        }
        let nix_path: Vec<V> = self
            .opts
            .search_path
            .clone()
            .into_iter()
            .map(|e| {
                let prefix = V::str(e.prefix.unwrap_or_default());
                let path = V::str(e.path.to_string_lossy().as_ref());
                self.attrs_from(vec![("path", path), ("prefix", prefix)])
            })
            .collect();
        b.push((
            self.interner.intern("nixPath"),
            V::List(Rc::new(NixList::new(nix_path))),
            None,
        ));
        // `builtins.builtins` refers to the set itself: fill it through a thunk.
        let cell = Rc::new(std::cell::RefCell::new(Thunk::Blackhole));
        b.push((
            self.interner.intern("builtins"),
            V::Thunk(cell.clone()),
            None,
        ));
        let builtins = V::Attrs(Rc::new(Attrs::from_unsorted(b.clone())));
        *cell.borrow_mut() = Thunk::Done(builtins.clone());

        let mut globals: Vec<(Sym, V)> = Vec::new();
        for (n, v, _) in &b {
            if &**n == "builtins" {
                continue;
            }
            globals.push((self.interner.intern(&format!("__{n}")), v.clone()));
        }
        for n in TOP_LEVEL {
            if let Some(v) = prims.get(n) {
                globals.push((self.interner.intern(n), v.clone()));
            }
        }
        for (n, v) in consts.iter().take(3) {
            globals.push((self.interner.intern(n), v.clone()));
        }
        globals.push((self.interner.intern("builtins"), builtins.clone()));
        (builtins, globals)
    }

    /// A path argument: a path, or a string holding an absolute path.
    pub(crate) fn coerce_to_path(&mut self, v: &V) -> Result<Rc<str>> {
        let s = self.coerce_to_string(v, false, false)?;
        if !s.s.starts_with('/') {
            return Err(err(
                EvalErrorKind::Eval,
                format!("string '{}' doesn't represent an absolute path", s.s),
            ));
        }
        Ok(Rc::from(super::canon_path(&s.s)))
    }

    pub(crate) fn value_of_json(&mut self, j: &serde_json::Value) -> V {
        match j {
            serde_json::Value::Null => V::Null,
            serde_json::Value::Bool(b) => V::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => V::Int(i),
                None => V::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => V::str(s.as_str()),
            serde_json::Value::Array(a) => V::List(Rc::new(NixList::new(
                a.iter().map(|x| self.value_of_json(x)).collect(),
            ))),
            serde_json::Value::Object(o) => {
                let entries = o
                    .iter()
                    .map(|(k, v)| (self.interner.intern(k), self.value_of_json(v), None))
                    .collect();
                V::Attrs(Rc::new(Attrs::from_unsorted(entries)))
            }
        }
    }

    /// `builtins.toJSON` / `--json` text, exactly as Nix 2.8 writes it; forces deeply as it goes.
    pub(crate) fn json_text_of(&mut self, v: &V) -> Result<String> {
        let mut out = String::new();
        self.write_json(v, &mut out)?;
        Ok(out)
    }

    fn write_json(&mut self, v: &V, out: &mut String) -> Result<()> {
        self.enter(None)?;
        let r = self.write_json_inner(v, out);
        self.leave();
        r
    }

    fn write_json_inner(&mut self, v: &V, out: &mut String) -> Result<()> {
        let v = self.force(v)?;
        match &v {
            V::Null => out.push_str("null"),
            V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            V::Int(i) => out.push_str(&i.to_string()),
            V::Float(f) => out.push_str(&super::print::format_float(*f)),
            V::Str(s) => json_string(&s.s, out),
            V::Path(p) => {
                return Err(err(
                    EvalErrorKind::NotAvailableDuringDiscovery,
                    format!(
                        "copying the path '{p}' to the Nix store is not available during discovery"
                    ),
                ));
            }
            V::List(l) => {
                out.push('[');
                for (i, x) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_json(x, out)?;
                }
                out.push(']');
            }
            V::Attrs(a) => {
                if let Some(f) = a.get("__toString") {
                    let f = f.clone();
                    let s = self.apply(&f, v.clone(), None)?;
                    let s = self.coerce_to_string(&s, false, false)?;
                    json_string(&s.s, out);
                    return Ok(());
                }
                if let Some(o) = a.get("outPath") {
                    let o = o.clone();
                    return self.write_json(&o, out);
                }
                out.push('{');
                for (i, (n, x, _)) in a.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(n, out);
                    out.push(':');
                    self.write_json(x, out)?;
                }
                out.push('}');
            }
            V::Lambda(_) | V::PrimOp(_) => {
                return Err(type_err("cannot convert a function to JSON".into()));
            }
            V::Thunk(_) => out.push_str("null"),
        }
        Ok(())
    }
}

/// A JSON string as Nix 2.8 escapes it (control characters as `\u00XX`, the rest raw).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn current_time() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[allow(dead_code)]
fn _assert_float(v: &V) -> f64 {
    as_float(v)
}
