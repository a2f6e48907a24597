//! Runtime values, thunks and environments.
//!
//! Everything is reference-counted and cheap to clone. Cycles (a `rec` set whose thunks capture their own
//! frame) leak; a discovery evaluator is short-lived, so that is cheaper than a collector.

use std::cell::RefCell;
use std::rc::Rc;

use super::Pos;
use super::compile::{Expr, LambdaDef};

/// An interned attribute or variable name.
pub(crate) type Sym = Rc<str>;

/// A string with its (minimal) context: the store paths it refers to.
#[derive(Clone, Debug)]
pub(crate) struct NixStr {
    pub s: Rc<str>,
    pub ctx: Option<Rc<Vec<Rc<str>>>>,
}

impl NixStr {
    pub fn plain(s: impl Into<Rc<str>>) -> NixStr {
        NixStr {
            s: s.into(),
            ctx: None,
        }
    }
}

/// A value in weak head normal form, or a thunk.
#[derive(Clone, Debug)]
pub(crate) enum V {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(NixStr),
    /// An absolute, canonical path.
    Path(Rc<str>),
    Attrs(Rc<Attrs>),
    List(Rc<NixList>),
    Lambda(Rc<Closure>),
    /// A builtin, possibly partially applied.
    PrimOp(Rc<PrimApp>),
    Thunk(Rc<RefCell<Thunk>>),
}

impl V {
    pub fn str(s: impl Into<Rc<str>>) -> V {
        V::Str(NixStr::plain(s))
    }

    pub fn thunk(t: Thunk) -> V {
        V::Thunk(Rc::new(RefCell::new(t)))
    }

    /// `builtins.typeOf`'s name; thunks must be forced first.
    pub fn type_name(&self) -> &'static str {
        match self {
            V::Null => "null",
            V::Bool(_) => "bool",
            V::Int(_) => "int",
            V::Float(_) => "float",
            V::Str(_) => "string",
            V::Path(_) => "path",
            V::Attrs(_) => "set",
            V::List(_) => "list",
            V::Lambda(_) | V::PrimOp(_) => "lambda",
            V::Thunk(_) => "thunk",
        }
    }

    /// Nix's wording in type errors: "a set", "an integer", ….
    pub fn show_type(&self) -> &'static str {
        match self {
            V::Null => "null",
            V::Bool(_) => "a Boolean",
            V::Int(_) => "an integer",
            V::Float(_) => "a float",
            V::Str(_) => "a string",
            V::Path(_) => "a path",
            V::Attrs(_) => "a set",
            V::List(_) => "a list",
            V::Lambda(_) => "a function",
            V::PrimOp(p) => {
                if p.args.is_empty() {
                    "a built-in function"
                } else {
                    "a partially applied built-in function"
                }
            }
            V::Thunk(_) => "a thunk",
        }
    }
}

/// An attribute set: sorted by name, with the position where each attribute was defined.
#[derive(Debug, Default)]
pub(crate) struct Attrs {
    pub entries: Vec<(Sym, V, Option<Pos>)>,
}

impl Attrs {
    /// Builds a set from possibly unsorted entries; on duplicates the last one wins.
    pub fn from_unsorted(mut entries: Vec<(Sym, V, Option<Pos>)>) -> Attrs {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        // Keep the last of equal names: dedup keeps the first, so reverse around it.
        entries.reverse();
        entries.dedup_by(|a, b| a.0 == b.0);
        entries.reverse();
        Attrs { entries }
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.entries.binary_search_by(|e| (*e.0).cmp(name)).ok()
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.find(name).map(|i| &self.entries[i].1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A lambda and the environment it closes over.
#[derive(Debug)]
pub(crate) struct Closure {
    pub def: Rc<LambdaDef>,
    pub env: Env,
}

/// A builtin with the arguments applied so far.
#[derive(Debug)]
pub(crate) struct PrimApp {
    pub op: &'static super::builtins::PrimOp,
    pub args: Vec<V>,
}

/// A suspended computation.
#[derive(Debug)]
pub(crate) enum Thunk {
    /// An expression in an environment.
    Expr(Rc<Expr>, Env),
    /// `f x`, built by builtins such as `map`.
    Apply(V, V),
    /// Being forced right now: forcing it again is infinite recursion.
    Blackhole,
    Done(V),
}

/// A frame of variables. `with` frames hold the namespace instead of slots.
#[derive(Debug)]
pub(crate) struct EnvFrame {
    pub slots: RefCell<Vec<V>>,
    pub with: Option<V>,
    pub parent: Option<Env>,
}

pub(crate) type Env = Rc<EnvFrame>;

pub(crate) fn new_env(slots: Vec<V>, parent: Option<Env>) -> Env {
    Rc::new(EnvFrame {
        slots: RefCell::new(slots),
        with: None,
        parent,
    })
}

pub(crate) fn with_env(ns: V, parent: Env) -> Env {
    Rc::new(EnvFrame {
        slots: RefCell::new(Vec::new()),
        with: Some(ns),
        parent: Some(parent),
    })
}

/// A list's elements. A newtype so that dropping a deeply nested list cannot recurse.
#[derive(Debug, Default)]
pub(crate) struct NixList(pub Vec<V>);

impl NixList {
    pub fn new(items: Vec<V>) -> NixList {
        NixList(items)
    }
}

impl std::ops::Deref for NixList {
    type Target = Vec<V>;
    fn deref(&self) -> &Vec<V> {
        &self.0
    }
}

// Dropping nested values: a million nested sets or lists (easy to build with `foldl'`) would otherwise
// overflow the stack through recursive `Drop`. Each container hands its children to a work list; a child
// that is uniquely owned is emptied into the list before it is dropped, so drops never nest.

impl Drop for Attrs {
    fn drop(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        dispose(self.entries.drain(..).map(|(_, v, _)| v).collect());
    }
}

impl Drop for NixList {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        dispose(std::mem::take(&mut self.0));
    }
}

impl Drop for EnvFrame {
    fn drop(&mut self) {
        let mut stack: Vec<V> = std::mem::take(self.slots.get_mut());
        if let Some(w) = self.with.take() {
            stack.push(w);
        }
        let mut envs: Vec<Env> = self.parent.take().into_iter().collect();
        if stack.is_empty() && envs.is_empty() {
            return;
        }
        dispose_all(&mut stack, &mut envs);
    }
}

fn dispose(mut stack: Vec<V>) {
    let mut envs = Vec::new();
    dispose_all(&mut stack, &mut envs);
}

/// Empties uniquely owned containers into the work lists, so that dropping them does not recurse.
fn dispose_all(stack: &mut Vec<V>, envs: &mut Vec<Env>) {
    loop {
        if let Some(v) = stack.pop() {
            match v {
                V::Attrs(mut rc) => {
                    if let Some(a) = Rc::get_mut(&mut rc) {
                        stack.extend(a.entries.drain(..).map(|(_, v, _)| v));
                    }
                }
                V::List(mut rc) => {
                    if let Some(l) = Rc::get_mut(&mut rc) {
                        stack.append(&mut l.0);
                    }
                }
                V::Thunk(rc) if Rc::strong_count(&rc) == 1 => {
                    let mut t = rc.borrow_mut();
                    match &mut *t {
                        Thunk::Done(x) => stack.push(std::mem::replace(x, V::Null)),
                        Thunk::Apply(f, x) => {
                            stack.push(std::mem::replace(f, V::Null));
                            stack.push(std::mem::replace(x, V::Null));
                        }
                        Thunk::Expr(_, env) => {
                            if let Some(frame) = Rc::get_mut(env) {
                                empty_frame(frame, stack, envs);
                            }
                        }
                        Thunk::Blackhole => {}
                    }
                }
                V::Lambda(mut rc) => {
                    if let Some(c) = Rc::get_mut(&mut rc)
                        && let Some(frame) = Rc::get_mut(&mut c.env)
                    {
                        empty_frame(frame, stack, envs);
                    }
                }
                V::PrimOp(mut rc) => {
                    if let Some(p) = Rc::get_mut(&mut rc) {
                        stack.append(&mut p.args);
                    }
                }
                _ => {}
            }
        } else if let Some(mut env) = envs.pop() {
            if let Some(frame) = Rc::get_mut(&mut env) {
                empty_frame(frame, stack, envs);
            }
        } else {
            break;
        }
    }
}

fn empty_frame(frame: &mut EnvFrame, stack: &mut Vec<V>, envs: &mut Vec<Env>) {
    stack.append(frame.slots.get_mut());
    if let Some(w) = frame.with.take() {
        stack.push(w);
    }
    if let Some(p) = frame.parent.take() {
        envs.push(p);
    }
}
