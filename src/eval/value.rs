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
    List(Rc<Vec<V>>),
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
