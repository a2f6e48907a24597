//! The evaluation core: forcing thunks, evaluating IR, calling functions, operators, coercions.

use std::cell::RefCell;
use std::rc::Rc;

use super::compile::{AttrKey, AttrsDef, BinOp, Expr, LambdaDef, Param, StrPart, Var};
use super::value::{
    Attrs, Closure, Env, NixList, NixStr, PrimApp, Sym, Thunk, V, new_env, with_env,
};
use super::{EvalError, EvalErrorKind, Evaluator, IResult as Result, Pos};

pub(crate) fn type_err(msg: String) -> Box<EvalError> {
    Box::new(EvalError::new(EvalErrorKind::TypeError, msg))
}

pub(crate) fn expected(what: &str, got: &V) -> Box<EvalError> {
    type_err(format!(
        "value is {} while {what} was expected",
        got.show_type()
    ))
}

pub(crate) fn err(kind: EvalErrorKind, msg: impl Into<String>) -> Box<EvalError> {
    Box::new(EvalError::new(kind, msg))
}

pub(crate) fn stack_pointer() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

impl Evaluator {
    /// Guards recursion: counts depth and measures the native stack used since the evaluator was entered.
    #[inline]
    pub(crate) fn enter(&mut self, pos: Option<Pos>) -> Result<()> {
        self.depth += 1;
        if self.depth == 1 {
            self.stack_base = stack_pointer();
        }
        self.steps += 1;
        if self.steps > self.opts.max_steps {
            self.depth -= 1;
            return Err(err(
                EvalErrorKind::TooDeep,
                "evaluation step limit exceeded",
            ));
        }
        let used = self.stack_base.abs_diff(stack_pointer());
        if self.depth > self.opts.max_call_depth || used > self.opts.stack_budget {
            self.depth -= 1;
            let mut e = err(
                EvalErrorKind::TooDeep,
                "stack overflow (possible infinite recursion)",
            );
            e.pos = pos;
            return Err(e);
        }
        Ok(())
    }

    /// Native stack used since the evaluator was entered (0 when not inside an evaluation).
    pub(crate) fn stack_used(&self) -> usize {
        if self.depth > 0 {
            self.stack_base.abs_diff(stack_pointer())
        } else {
            0
        }
    }

    #[inline]
    pub(crate) fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Forces a value to weak head normal form.
    pub(crate) fn force(&mut self, v: &V) -> Result<V> {
        match v {
            V::Thunk(t) => self.force_thunk(t),
            other => Ok(other.clone()),
        }
    }

    #[inline(never)]
    fn force_thunk(&mut self, t: &Rc<RefCell<Thunk>>) -> Result<V> {
        {
            let b = t.borrow();
            match &*b {
                Thunk::Done(v) => return Ok(v.clone()),
                Thunk::Blackhole => {
                    return Err(err(
                        EvalErrorKind::InfiniteRecursion,
                        "infinite recursion encountered",
                    ));
                }
                _ => {}
            }
        }
        let state = std::mem::replace(&mut *t.borrow_mut(), Thunk::Blackhole);
        if let Err(e) = self.enter(None) {
            *t.borrow_mut() = state;
            return Err(e);
        }
        let r = match &state {
            Thunk::Expr(e, env) => self.eval(e, env),
            Thunk::Apply(f, x) => self.apply(f, x.clone(), None),
            Thunk::Blackhole | Thunk::Done(_) => Ok(V::Null),
        };
        self.leave();
        match r {
            Ok(v) => {
                *t.borrow_mut() = Thunk::Done(v.clone());
                Ok(v)
            }
            Err(e) => {
                // Like Nix: a failed thunk can be forced again (tryEval may have caught the error).
                *t.borrow_mut() = state;
                Err(e)
            }
        }
    }

    /// Forces deeply (lists and attribute values), like `deepSeq` and `--strict`.
    pub(crate) fn force_deep(&mut self, v: &V) -> Result<V> {
        let mut seen = std::collections::HashSet::new();
        self.force_deep_inner(v, &mut seen)
    }

    fn force_deep_inner(
        &mut self,
        v: &V,
        seen: &mut std::collections::HashSet<usize>,
    ) -> Result<V> {
        let v = self.force(v)?;
        match &v {
            V::Attrs(a) => {
                if !seen.insert(Rc::as_ptr(a) as *const u8 as usize) {
                    return Ok(v);
                }
                self.enter(None)?;
                for (name, item, pos) in &a.entries {
                    if let Err(mut e) = self.force_deep_inner(item, seen) {
                        if let Some(p) = pos
                            && e.extra.trace_pos.len() < 8
                        {
                            e.extra
                                .trace_pos
                                .push((format!("while evaluating the attribute '{name}'"), *p));
                        }
                        self.leave();
                        return Err(e);
                    }
                }
                self.leave();
            }
            V::List(l) => {
                if !seen.insert(Rc::as_ptr(l) as *const u8 as usize) {
                    return Ok(v);
                }
                self.enter(None)?;
                for item in l.iter() {
                    if let Err(e) = self.force_deep_inner(item, seen) {
                        self.leave();
                        return Err(e);
                    }
                }
                self.leave();
            }
            _ => {}
        }
        Ok(v)
    }

    /// A value for `e` in `env` without evaluating it (constants and variables need no thunk).
    #[inline]
    pub(crate) fn delay(&self, e: &Rc<Expr>, env: &Env) -> V {
        match &**e {
            Expr::Const(v) => v.clone(),
            Expr::Var(Var::Local { up, idx }, _) => lookup_local(env, *up, *idx),
            _ => V::thunk(Thunk::Expr(e.clone(), env.clone())),
        }
    }

    /// Like [`Self::delay`] but never reads the frame being initialised (its slots aren't filled yet).
    fn delay_rec(&self, e: &Rc<Expr>, env: &Env) -> V {
        match &**e {
            Expr::Const(v) => v.clone(),
            Expr::Var(Var::Local { up, idx }, _) if *up > 0 => lookup_local(env, *up, *idx),
            _ => V::thunk(Thunk::Expr(e.clone(), env.clone())),
        }
    }

    /// Evaluates `e` in `env` to weak head normal form.
    ///
    /// A thin dispatcher: every arm with locals lives in its own never-inlined function, so the frame
    /// that recursion stacks up stays small (debug builds would otherwise use ~25 KiB per Nix call).
    pub(crate) fn eval(&mut self, e: &Rc<Expr>, env: &Env) -> Result<V> {
        match &**e {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Var(var, pos) => self.eval_var(var, env, *pos),
            Expr::Str(parts, _) => self.eval_str(parts, env),
            Expr::Path(parts, pos) => self.eval_path_interp(parts, env, *pos),
            Expr::SearchPath(name, pos) => self.eval_search_path(name, *pos),
            Expr::Select(target, path, default, pos) => {
                self.eval_select(target, path, default.as_ref(), env, *pos)
            }
            Expr::HasAttr(target, path, _) => self.eval_has_attr(target, path, env),
            Expr::Attrs(def, _) => self.eval_attrs(def, env),
            Expr::Let(def, body) => self.eval_let(def, body, env),
            Expr::List(items) => Ok(self.eval_list(items, env)),
            Expr::Lambda(def) => Ok(V::Lambda(Rc::new(Closure {
                def: def.clone(),
                env: env.clone(),
            }))),
            Expr::Apply(f, x, pos) => self.eval_apply(f, x, env, *pos),
            Expr::If(c, t, f, pos) => {
                if self.eval_cond(c, env, *pos)? {
                    self.eval(t, env)
                } else {
                    self.eval(f, env)
                }
            }
            Expr::Assert(c, body, pos) => self.eval_assert(c, body, env, *pos),
            Expr::With(ns, body, _) => self.eval_with(ns, body, env),
            Expr::Bin(op, l, r, pos) => self.eval_bin(*op, l, r, env, *pos),
            Expr::Not(inner, pos) => Ok(V::Bool(!self.eval_cond(inner, env, *pos)?)),
            Expr::Neg(inner, pos) => self.eval_neg(inner, env, *pos),
            Expr::CurPos(pos) => Ok(self.pos_attrs(*pos)),
        }
    }

    #[inline(never)]
    fn eval_var(&mut self, var: &Var, env: &Env, pos: Pos) -> Result<V> {
        let v = self.lookup(var, env).map_err(|e| e.at(pos))?;
        self.force(&v).map_err(|e| e.at(pos))
    }

    #[inline(never)]
    fn eval_search_path(&mut self, name: &str, pos: Pos) -> Result<V> {
        self.find_file(name).map_err(|e| e.at(pos))
    }

    #[inline(never)]
    fn eval_select(
        &mut self,
        target: &Rc<Expr>,
        path: &[AttrKey],
        default: Option<&Rc<Expr>>,
        env: &Env,
        pos: Pos,
    ) -> Result<V> {
        let mut v = self.eval(target, env)?;
        for key in path.iter() {
            let name = self.attr_key(key, env)?;
            let item = match &v {
                V::Attrs(a) => match a.get(&name) {
                    Some(item) => item.clone(),
                    None => {
                        if let Some(d) = default {
                            return self.eval(d, env);
                        }
                        return Err(self.missing_attr(&name, a).at(pos));
                    }
                },
                other => {
                    if let Some(d) = default {
                        return self.eval(d, env);
                    }
                    return Err(expected("a set", other).at(pos));
                }
            };
            v = self.force(&item).map_err(|e| e.at(pos))?;
        }
        Ok(v)
    }

    #[inline(never)]
    fn eval_has_attr(&mut self, target: &Rc<Expr>, path: &[AttrKey], env: &Env) -> Result<V> {
        let mut v = self.eval(target, env)?;
        for (i, key) in path.iter().enumerate() {
            let name = self.attr_key(key, env)?;
            let V::Attrs(a) = &v else {
                return Ok(V::Bool(false));
            };
            let Some(item) = a.get(&name) else {
                return Ok(V::Bool(false));
            };
            let item = item.clone();
            if i + 1 < path.len() {
                v = self.force(&item)?;
            }
        }
        Ok(V::Bool(true))
    }

    #[inline(never)]
    fn eval_let(&mut self, def: &Rc<AttrsDef>, body: &Rc<Expr>, env: &Env) -> Result<V> {
        let frame = self.rec_frame(def, env);
        self.eval(body, &frame)
    }

    #[inline(never)]
    fn eval_list(&mut self, items: &[Rc<Expr>], env: &Env) -> V {
        V::List(Rc::new(NixList::new(
            items.iter().map(|i| self.delay(i, env)).collect(),
        )))
    }

    #[inline(never)]
    fn eval_apply(&mut self, f: &Rc<Expr>, x: &Rc<Expr>, env: &Env, pos: Pos) -> Result<V> {
        let fv = self.eval(f, env)?;
        let arg = self.delay(x, env);
        self.apply(&fv, arg, Some(pos))
    }

    #[inline(never)]
    fn eval_cond(&mut self, c: &Rc<Expr>, env: &Env, pos: Pos) -> Result<bool> {
        match self.eval(c, env)? {
            V::Bool(b) => Ok(b),
            other => Err(expected("a Boolean", &other).at(pos)),
        }
    }

    #[inline(never)]
    fn eval_assert(&mut self, c: &Rc<Expr>, body: &Rc<Expr>, env: &Env, pos: Pos) -> Result<V> {
        if self.eval_cond(c, env, pos)? {
            return self.eval(body, env);
        }
        let src = self.assert_snippet(c);
        Err(err(
            EvalErrorKind::AssertionFailed,
            format!("assertion '{src}' failed"),
        )
        .at(pos))
    }

    #[inline(never)]
    fn eval_with(&mut self, ns: &Rc<Expr>, body: &Rc<Expr>, env: &Env) -> Result<V> {
        let nsv = self.delay(ns, env);
        let frame = with_env(nsv, env.clone());
        self.eval(body, &frame)
    }

    #[inline(never)]
    fn eval_neg(&mut self, inner: &Rc<Expr>, env: &Env, pos: Pos) -> Result<V> {
        let v = self.eval(inner, env)?;
        self.arith(BinOp::Sub, V::Int(0), v).map_err(|e| e.at(pos))
    }

    pub(crate) fn lookup(&mut self, var: &Var, env: &Env) -> Result<V> {
        match var {
            Var::Local { up, idx } => Ok(lookup_local(env, *up, *idx)),
            Var::With { name, ups } => {
                for up in ups.iter() {
                    let mut frame = env;
                    for _ in 0..*up {
                        match &frame.parent {
                            Some(p) => frame = p,
                            None => break,
                        }
                    }
                    let Some(ns) = frame.with.clone() else {
                        continue;
                    };
                    let nsv = self.force(&ns)?;
                    match &nsv {
                        V::Attrs(a) => {
                            if let Some(v) = a.get(name) {
                                return Ok(v.clone());
                            }
                        }
                        other => return Err(expected("a set", other)),
                    }
                }
                Err(err(
                    EvalErrorKind::UndefinedVariable,
                    format!("undefined variable '{name}'"),
                ))
            }
        }
    }

    fn attr_key(&mut self, key: &AttrKey, env: &Env) -> Result<Sym> {
        match key {
            AttrKey::Static(s) => Ok(s.clone()),
            AttrKey::Dynamic(e, pos) => {
                let v = self.eval(e, env)?;
                let s = self.force_str_plain(&v).map_err(|e| e.at(*pos))?;
                Ok(self.interner.intern(&s))
            }
        }
    }

    pub(crate) fn missing_attr(&self, name: &str, a: &Attrs) -> Box<EvalError> {
        let mut msg = format!("attribute '{name}' missing");
        if let Some((_, best)) = a
            .entries
            .iter()
            .map(|(n, _, _)| (strsim::levenshtein(n, name), n))
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d)
        {
            msg.push_str(&format!("; did you mean '{best}'?"));
        }
        err(EvalErrorKind::MissingAttribute, msg)
    }

    #[inline(never)]
    fn eval_attrs(&mut self, def: &Rc<AttrsDef>, env: &Env) -> Result<V> {
        let (mut entries, denv) = if def.rec {
            let frame = self.rec_frame(def, env);
            let slots = frame.slots.borrow().clone();
            let entries: Vec<(Sym, V, Option<Pos>)> = def
                .statics
                .iter()
                .zip(slots)
                .map(|(a, v)| (a.name.clone(), v, Some(a.pos)))
                .collect();
            (entries, frame)
        } else {
            let entries: Vec<(Sym, V, Option<Pos>)> = def
                .statics
                .iter()
                .map(|a| (a.name.clone(), self.delay(&a.value, env), Some(a.pos)))
                .collect();
            (entries, env.clone())
        };
        if !def.dynamics.is_empty() {
            for (k, v, dpos) in &def.dynamics {
                let kv = self.eval(k, &denv)?;
                if matches!(kv, V::Null) {
                    continue;
                }
                let name = self.force_str_plain(&kv).map_err(|e| e.at(*dpos))?;
                if entries.iter().any(|(n, _, _)| **n == *name) {
                    return Err(err(
                        EvalErrorKind::Eval,
                        format!("dynamic attribute '{name}' already defined"),
                    )
                    .at(*dpos));
                }
                let sym = self.interner.intern(&name);
                entries.push((sym, self.delay(v, &denv), Some(*dpos)));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(V::Attrs(Rc::new(Attrs { entries })))
    }

    /// The frame of a `rec` set or `let`: one slot per static attribute, each a thunk in the frame.
    fn rec_frame(&mut self, def: &Rc<AttrsDef>, env: &Env) -> Env {
        let frame = new_env(Vec::with_capacity(def.statics.len()), Some(env.clone()));
        let mut slots: Vec<V> = Vec::with_capacity(def.statics.len());
        for a in &def.statics {
            // Like Nix, a variable naming an earlier slot of this frame shares its value.
            let v = match &*a.value {
                Expr::Var(Var::Local { up: 0, idx }, _) if *idx < slots.len() => {
                    slots[*idx].clone()
                }
                _ => self.delay_rec(&a.value, &frame),
            };
            slots.push(v);
        }
        *frame.slots.borrow_mut() = slots;
        frame
    }

    /// Applies a function value to an argument.
    pub(crate) fn apply(&mut self, f: &V, arg: V, pos: Option<Pos>) -> Result<V> {
        let f = self.force(f)?;
        self.enter(pos)?;
        let r = self.call_inner(&f, arg, pos);
        self.leave();
        r
    }

    #[inline(never)]
    fn call_inner(&mut self, f: &V, arg: V, pos: Option<Pos>) -> Result<V> {
        match f {
            V::Lambda(c) => self.call_lambda(c, arg, pos),
            V::PrimOp(p) => self.call_primop(p, arg, pos),
            V::Attrs(a) => match a.get("__functor") {
                Some(functor) => {
                    let functor = functor.clone();
                    let g = self.apply(&functor, f.clone(), pos)?;
                    self.apply(&g, arg, pos)
                }
                None => Err(type_err(
                    "attempt to call something which is not a function but a set".into(),
                )),
            },
            other => Err(type_err(format!(
                "attempt to call something which is not a function but {}",
                other.show_type()
            ))),
        }
    }

    #[inline(never)]
    fn call_lambda(&mut self, c: &Rc<Closure>, arg: V, pos: Option<Pos>) -> Result<V> {
        let env = match self.bind_args(&c.def, &c.env, arg) {
            Ok(env) => env,
            Err(e) => return Err(if let Some(p) = pos { e.at(p) } else { e }),
        };
        match self.eval(&c.def.body, &env) {
            Ok(v) => Ok(v),
            Err(mut e) => {
                if let Some(p) = pos
                    && e.extra.trace_pos.len() < 8
                    && e.extra.trace_pos.last().is_none_or(|(_, last)| *last != p)
                {
                    e.extra
                        .trace_pos
                        .push(("while calling a function".to_string(), p));
                }
                Err(e)
            }
        }
    }

    #[inline(never)]
    fn call_primop(&mut self, p: &Rc<PrimApp>, arg: V, pos: Option<Pos>) -> Result<V> {
        let mut args = Vec::with_capacity(p.args.len() + 1);
        args.extend(p.args.iter().cloned());
        args.push(arg);
        if args.len() < p.op.arity {
            return Ok(V::PrimOp(Rc::new(PrimApp { op: p.op, args })));
        }
        match (p.op.f)(self, args) {
            Ok(v) => Ok(v),
            Err(e) => {
                let e = super::builtins::name_unavailable(e, p);
                Err(if let Some(ps) = pos { e.at(ps) } else { e })
            }
        }
    }

    fn bind_args(&mut self, def: &Rc<LambdaDef>, cenv: &Env, arg: V) -> Result<Env> {
        match &def.param {
            Param::Ident(_) => Ok(new_env(vec![arg], Some(cenv.clone()))),
            Param::Pattern {
                formals,
                ellipsis,
                bind,
            } => {
                let argv = self.force(&arg)?;
                let V::Attrs(a) = &argv else {
                    return Err(expected("a set", &argv));
                };
                let env = new_env(Vec::new(), Some(cenv.clone()));
                let mut slots = Vec::with_capacity(formals.len() + 1);
                let mut used = 0;
                for (name, default) in formals {
                    match a.get(name) {
                        Some(v) => {
                            used += 1;
                            slots.push(v.clone());
                        }
                        None => match default {
                            Some(d) => slots.push(self.delay_rec(d, &env)),
                            None => {
                                let loc = self.describe_pos(def.pos);
                                let mut e = err(
                                    EvalErrorKind::BadArgument,
                                    format!(
                                        "anonymous function at {loc} called without required argument '{name}'"
                                    ),
                                );
                                e.pos = Some(def.pos);
                                return Err(e);
                            }
                        },
                    }
                }
                if !ellipsis && used < a.len() {
                    for (name, _, _) in &a.entries {
                        if !formals.iter().any(|(f, _)| f == name) {
                            let loc = self.describe_pos(def.pos);
                            let mut e = err(
                                EvalErrorKind::BadArgument,
                                format!(
                                    "anonymous function at {loc} called with unexpected argument '{name}'"
                                ),
                            );
                            e.pos = Some(def.pos);
                            return Err(e);
                        }
                    }
                }
                if bind.is_some() {
                    slots.push(argv.clone());
                }
                *env.slots.borrow_mut() = slots;
                Ok(env)
            }
        }
    }

    #[inline(never)]
    fn eval_str(&mut self, parts: &[StrPart], env: &Env) -> Result<V> {
        let mut out = String::new();
        let mut ctx: Vec<Rc<str>> = Vec::new();
        for p in parts {
            match p {
                StrPart::Lit(s) => out.push_str(s),
                StrPart::Interp(e, ipos) => {
                    let v = self.eval(e, env)?;
                    let s = self
                        .coerce_to_string(&v, false, true)
                        .map_err(|e| e.at(*ipos))?;
                    check_string_len(out.len() + s.s.len())?;
                    out.push_str(&s.s);
                    if let Some(c) = &s.ctx {
                        ctx.extend(c.iter().cloned());
                    }
                }
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
    }

    #[inline(never)]
    fn eval_path_interp(&mut self, parts: &[StrPart], env: &Env, pos: Pos) -> Result<V> {
        let mut out = String::new();
        for p in parts {
            match p {
                StrPart::Lit(s) => out.push_str(s),
                StrPart::Interp(e, ipos) => {
                    let v = self.eval(e, env)?;
                    let s = self
                        .coerce_to_string(&v, false, false)
                        .map_err(|e| e.at(*ipos))?;
                    if s.ctx.is_some() {
                        return Err(err(
                            EvalErrorKind::Eval,
                            "a string that refers to a store path cannot be appended to a path",
                        )
                        .at(pos));
                    }
                    out.push_str(&s.s);
                }
            }
        }
        Ok(V::Path(Rc::from(super::canon_path(&out))))
    }

    /// Nix's `coerceToString`. `more` is `toString`'s extra coercions (numbers, bools, null, lists).
    pub(crate) fn coerce_to_string(
        &mut self,
        v: &V,
        more: bool,
        copy_to_store: bool,
    ) -> Result<NixStr> {
        let v = self.force(v)?;
        match &v {
            V::Str(s) => Ok(s.clone()),
            V::Path(p) => {
                if copy_to_store {
                    Err(err(
                        EvalErrorKind::NotAvailableDuringDiscovery,
                        format!(
                            "copying the path '{p}' to the Nix store is not available during discovery"
                        ),
                    ))
                } else {
                    Ok(NixStr::plain(p.clone()))
                }
            }
            V::Attrs(a) => {
                if let Some(f) = a.get("__toString") {
                    let f = f.clone();
                    let r = self.apply(&f, v.clone(), None)?;
                    return self.coerce_to_string(&r, more, copy_to_store);
                }
                if let Some(o) = a.get("outPath") {
                    let o = o.clone();
                    return self.coerce_to_string(&o, more, copy_to_store);
                }
                Err(type_err("cannot coerce a set to a string".into()))
            }
            V::Int(i) if more => Ok(NixStr::plain(i.to_string())),
            V::Float(f) if more => Ok(NixStr::plain(format!("{f:.6}"))),
            V::Bool(b) if more => Ok(NixStr::plain(if *b { "1" } else { "" })),
            V::Null if more => Ok(NixStr::plain("")),
            V::List(l) if more => {
                self.enter(None)?;
                let r = self.coerce_list_to_string(l, copy_to_store);
                self.leave();
                r
            }
            other => Err(type_err(format!(
                "cannot coerce {} to a string",
                other.show_type()
            ))),
        }
    }

    fn coerce_list_to_string(&mut self, l: &NixList, copy_to_store: bool) -> Result<NixStr> {
        let more = true;
        {
            {
                let mut out = String::new();
                let mut ctx = Vec::new();
                let n = l.len();
                for (i, item) in l.iter().enumerate() {
                    let s = self.coerce_to_string(item, more, copy_to_store)?;
                    out.push_str(&s.s);
                    if let Some(c) = &s.ctx {
                        ctx.extend(c.iter().cloned());
                    }
                    if i + 1 < n {
                        let iv = self.force(item)?;
                        let empty_list = matches!(&iv, V::List(x) if x.is_empty());
                        if !empty_list {
                            out.push(' ');
                        }
                    }
                }
                Ok(NixStr {
                    s: Rc::from(out),
                    ctx: if ctx.is_empty() {
                        None
                    } else {
                        Some(Rc::new(ctx))
                    },
                })
            }
        }
    }

    /// Forces a string and returns its contents (context dropped).
    pub(crate) fn force_str_plain(&mut self, v: &V) -> Result<Rc<str>> {
        match self.force(v)? {
            V::Str(s) => Ok(s.s),
            other => Err(expected("a string", &other)),
        }
    }

    pub(crate) fn force_nixstr(&mut self, v: &V) -> Result<NixStr> {
        match self.force(v)? {
            V::Str(s) => Ok(s),
            other => Err(expected("a string", &other)),
        }
    }

    pub(crate) fn force_int_v(&mut self, v: &V) -> Result<i64> {
        match self.force(v)? {
            V::Int(i) => Ok(i),
            other => Err(expected("an integer", &other)),
        }
    }

    pub(crate) fn force_bool_v(&mut self, v: &V) -> Result<bool> {
        match self.force(v)? {
            V::Bool(b) => Ok(b),
            other => Err(expected("a Boolean", &other)),
        }
    }

    pub(crate) fn force_attrs(&mut self, v: &V) -> Result<Rc<Attrs>> {
        match self.force(v)? {
            V::Attrs(a) => Ok(a),
            other => Err(expected("a set", &other)),
        }
    }

    pub(crate) fn force_list(&mut self, v: &V) -> Result<Rc<NixList>> {
        match self.force(v)? {
            V::List(l) => Ok(l),
            other => Err(expected("a list", &other)),
        }
    }

    fn eval_bin(
        &mut self,
        op: BinOp,
        l: &Rc<Expr>,
        r: &Rc<Expr>,
        env: &Env,
        pos: Pos,
    ) -> Result<V> {
        match op {
            BinOp::And => {
                if !self.eval_bool(l, env, pos)? {
                    return Ok(V::Bool(false));
                }
                Ok(V::Bool(self.eval_bool(r, env, pos)?))
            }
            BinOp::Or => {
                if self.eval_bool(l, env, pos)? {
                    return Ok(V::Bool(true));
                }
                Ok(V::Bool(self.eval_bool(r, env, pos)?))
            }
            BinOp::Impl => {
                if !self.eval_bool(l, env, pos)? {
                    return Ok(V::Bool(true));
                }
                Ok(V::Bool(self.eval_bool(r, env, pos)?))
            }
            _ => {
                let lv = self.eval(l, env)?;
                let rv = self.eval(r, env)?;
                self.binop(op, lv, rv).map_err(|e| e.at(pos))
            }
        }
    }

    fn eval_bool(&mut self, e: &Rc<Expr>, env: &Env, pos: Pos) -> Result<bool> {
        match self.eval(e, env)? {
            V::Bool(b) => Ok(b),
            other => Err(expected("a Boolean", &other).at(pos)),
        }
    }

    /// A binary operator on two forced values.
    pub(crate) fn binop(&mut self, op: BinOp, lv: V, rv: V) -> Result<V> {
        match op {
            BinOp::Eq => Ok(V::Bool(self.equal(&lv, &rv)?)),
            BinOp::Neq => Ok(V::Bool(!self.equal(&lv, &rv)?)),
            BinOp::Lt => Ok(V::Bool(self.less_than(&lv, &rv)?)),
            BinOp::Gt => Ok(V::Bool(self.less_than(&rv, &lv)?)),
            BinOp::Le => Ok(V::Bool(!self.less_than(&rv, &lv)?)),
            BinOp::Ge => Ok(V::Bool(!self.less_than(&lv, &rv)?)),
            BinOp::Concat => {
                let a = self.force_list(&lv)?;
                let b = self.force_list(&rv)?;
                if b.is_empty() {
                    return Ok(V::List(a));
                }
                if a.is_empty() {
                    return Ok(V::List(b));
                }
                check_list_len(a.len() + b.len())?;
                let mut out = Vec::with_capacity(a.len() + b.len());
                out.extend(a.iter().cloned());
                out.extend(b.iter().cloned());
                Ok(V::List(Rc::new(NixList::new(out))))
            }
            BinOp::Update => {
                let a = self.force_attrs(&lv)?;
                let b = self.force_attrs(&rv)?;
                Ok(V::Attrs(update(&a, &b)))
            }
            BinOp::Add => match (&lv, &rv) {
                (V::Int(_) | V::Float(_), V::Int(_) | V::Float(_)) => self.arith(op, lv, rv),
                (V::Path(p), _) => {
                    let s = self.coerce_to_string(&rv, false, false)?;
                    if s.ctx.is_some() {
                        return Err(err(
                            EvalErrorKind::Eval,
                            "a string that refers to a store path cannot be appended to a path",
                        ));
                    }
                    Ok(V::Path(Rc::from(super::canon_path(&format!("{p}{}", s.s)))))
                }
                (V::Str(_) | V::Attrs(_), _) => {
                    let a = self.coerce_to_string(&lv, false, false)?;
                    let b = self.coerce_to_string(&rv, false, true)?;
                    let ctx = merge_ctx(&a, &b);
                    check_string_len(a.s.len() + b.s.len())?;
                    Ok(V::Str(NixStr {
                        s: Rc::from(format!("{}{}", a.s, b.s)),
                        ctx,
                    }))
                }
                _ => {
                    if matches!(lv, V::Int(_) | V::Float(_)) {
                        Err(type_err(format!(
                            "cannot add {} to {}",
                            rv.show_type(),
                            lv.show_type()
                        )))
                    } else {
                        Err(type_err(format!(
                            "cannot coerce {} to a string",
                            lv.show_type()
                        )))
                    }
                }
            },
            BinOp::Sub | BinOp::Mul | BinOp::Div => self.arith(op, lv, rv),
            BinOp::And | BinOp::Or | BinOp::Impl => {
                let a = self.force_bool_v(&lv)?;
                let b = self.force_bool_v(&rv)?;
                Ok(V::Bool(match op {
                    BinOp::And => a && b,
                    BinOp::Or => a || b,
                    _ => !a || b,
                }))
            }
        }
    }

    /// Integer arithmetic wraps like Nix 2.8's (C++) does; mixing in a float gives a float.
    pub(crate) fn arith(&mut self, op: BinOp, a: V, b: V) -> Result<V> {
        match (&a, &b) {
            (V::Int(x), V::Int(y)) => Ok(V::Int(match op {
                BinOp::Add => x.wrapping_add(*y),
                BinOp::Sub => x.wrapping_sub(*y),
                BinOp::Mul => x.wrapping_mul(*y),
                _ => {
                    if *y == 0 {
                        return Err(err(EvalErrorKind::Eval, "division by zero"));
                    }
                    match x.checked_div(*y) {
                        Some(q) => q,
                        None => {
                            return Err(err(EvalErrorKind::Eval, "overflow in integer division"));
                        }
                    }
                }
            })),
            (V::Int(_) | V::Float(_), V::Int(_) | V::Float(_)) => {
                let x = as_float(&a);
                let y = as_float(&b);
                Ok(V::Float(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    _ => {
                        if y == 0.0 {
                            return Err(err(EvalErrorKind::Eval, "division by zero"));
                        }
                        x / y
                    }
                }))
            }
            (V::Int(_) | V::Float(_), other) | (other, _) => Err(expected("an integer", other)),
        }
    }

    /// Deep equality, as `==`.
    pub(crate) fn equal(&mut self, a: &V, b: &V) -> Result<bool> {
        let a = self.force(a)?;
        let b = self.force(b)?;
        Ok(match (&a, &b) {
            (V::Int(x), V::Int(y)) => x == y,
            (V::Int(_) | V::Float(_), V::Int(_) | V::Float(_)) => as_float(&a) == as_float(&b),
            (V::Str(x), V::Str(y)) => x.s == y.s,
            (V::Path(x), V::Path(y)) => x == y,
            (V::Null, V::Null) => true,
            (V::Bool(x), V::Bool(y)) => x == y,
            (V::List(x), V::List(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                self.enter(None)?;
                for (p, q) in x.iter().zip(y.iter()) {
                    match self.equal(p, q) {
                        Ok(true) => {}
                        other => {
                            self.leave();
                            return other;
                        }
                    }
                }
                self.leave();
                true
            }
            (V::Attrs(x), V::Attrs(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                // Derivations compare by their output path.
                if self.is_derivation(x)?
                    && self.is_derivation(y)?
                    && let (Some(p), Some(q)) = (x.get("outPath"), y.get("outPath"))
                {
                    let (p, q) = (p.clone(), q.clone());
                    return self.equal(&p, &q);
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                self.enter(None)?;
                for ((n1, v1, _), (n2, v2, _)) in x.entries.iter().zip(y.entries.iter()) {
                    if n1 != n2 {
                        self.leave();
                        return Ok(false);
                    }
                    match self.equal(v1, v2) {
                        Ok(true) => {}
                        other => {
                            self.leave();
                            return other;
                        }
                    }
                }
                self.leave();
                true
            }
            _ => false,
        })
    }

    pub(crate) fn is_derivation(&mut self, a: &Attrs) -> Result<bool> {
        match a.get("type") {
            Some(t) => {
                let t = t.clone();
                match self.force(&t)? {
                    V::Str(s) => Ok(&*s.s == "derivation"),
                    _ => Ok(false),
                }
            }
            None => Ok(false),
        }
    }

    /// `<`, as `builtins.lessThan` (numbers, strings, paths, lists).
    pub(crate) fn less_than(&mut self, a: &V, b: &V) -> Result<bool> {
        let a = self.force(a)?;
        let b = self.force(b)?;
        match (&a, &b) {
            (V::Int(x), V::Int(y)) => Ok(x < y),
            (V::Int(_) | V::Float(_), V::Int(_) | V::Float(_)) => Ok(as_float(&a) < as_float(&b)),
            (V::Str(x), V::Str(y)) => Ok(x.s.as_bytes() < y.s.as_bytes()),
            (V::Path(x), V::Path(y)) => Ok(x.as_bytes() < y.as_bytes()),
            (V::List(x), V::List(y)) => {
                self.enter(None)?;
                let r = self.less_than_lists(x, y);
                self.leave();
                r
            }
            _ => Err(type_err(format!(
                "cannot compare {} with {}",
                a.show_type(),
                b.show_type()
            ))),
        }
    }

    fn less_than_lists(&mut self, x: &NixList, y: &NixList) -> Result<bool> {
        for (p, q) in x.iter().zip(y.iter()) {
            if !self.equal(p, q)? {
                return self.less_than(p, q);
            }
        }
        Ok(x.len() < y.len())
    }

    /// `{ file, line, column }` for `__curPos` and `unsafeGetAttrPos`.
    pub(crate) fn pos_attrs(&mut self, pos: Pos) -> V {
        let span = self.span_of(pos);
        let file = self.interner.intern("file");
        let line = self.interner.intern("line");
        let column = self.interner.intern("column");
        V::Attrs(Rc::new(Attrs {
            entries: vec![
                (column, V::Int(i64::from(span.col)), None),
                (file, V::str(span.file.to_string_lossy().as_ref()), None),
                (line, V::Int(i64::from(span.line)), None),
            ],
        }))
    }
}

/// Longest string the evaluator builds (256 MiB): bigger ones would exhaust memory, not fail cleanly.
pub(crate) const MAX_STRING_LEN: usize = 1 << 28;
/// Longest list the evaluator builds (16 Mi elements).
pub(crate) const MAX_LIST_LEN: usize = 1 << 24;

pub(crate) fn check_string_len(n: usize) -> Result<()> {
    if n > MAX_STRING_LEN {
        return Err(err(
            EvalErrorKind::Eval,
            format!("string of {n} bytes is too long (limit {MAX_STRING_LEN})"),
        ));
    }
    Ok(())
}

pub(crate) fn check_list_len(n: usize) -> Result<()> {
    if n > MAX_LIST_LEN {
        return Err(err(
            EvalErrorKind::Eval,
            format!("list of {n} elements is too long (limit {MAX_LIST_LEN})"),
        ));
    }
    Ok(())
}

pub(crate) fn as_float(v: &V) -> f64 {
    match v {
        V::Int(i) => *i as f64,
        V::Float(f) => *f,
        _ => 0.0,
    }
}

pub(crate) fn merge_ctx(a: &NixStr, b: &NixStr) -> Option<Rc<Vec<Rc<str>>>> {
    match (&a.ctx, &b.ctx) {
        (None, None) => None,
        (Some(x), None) => Some(x.clone()),
        (None, Some(y)) => Some(y.clone()),
        (Some(x), Some(y)) => {
            let mut v: Vec<Rc<str>> = x.iter().cloned().collect();
            v.extend(y.iter().cloned());
            Some(Rc::new(v))
        }
    }
}

/// `a // b`: a merge of two sorted entry lists, `b` winning.
pub(crate) fn update(a: &Rc<Attrs>, b: &Rc<Attrs>) -> Rc<Attrs> {
    if b.entries.is_empty() {
        return a.clone();
    }
    if a.entries.is_empty() {
        return b.clone();
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.entries.len() && j < b.entries.len() {
        match a.entries[i].0.cmp(&b.entries[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a.entries[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b.entries[j].clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(b.entries[j].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out.extend(a.entries[i..].iter().cloned());
    out.extend(b.entries[j..].iter().cloned());
    Rc::new(Attrs { entries: out })
}

#[inline]
pub(crate) fn lookup_local(env: &Env, up: usize, idx: usize) -> V {
    let mut frame = env;
    for _ in 0..up {
        match &frame.parent {
            Some(p) => frame = p,
            None => return V::Null,
        }
    }
    frame.slots.borrow().get(idx).cloned().unwrap_or(V::Null)
}
