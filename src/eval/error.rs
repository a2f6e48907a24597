//! Evaluation errors: a kind, Nix's wording, the position and a short trace of positions.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// A source position: byte offsets plus a 1-based line and a 1-based column counted in chars.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub file: PathBuf,
    pub start: usize,
    pub end: usize,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// What went wrong, for callers that react differently (e.g. `tryEval`, lint rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalErrorKind {
    /// `throw`.
    Throw,
    /// `abort`.
    Abort,
    /// `assert` on a false condition.
    AssertionFailed,
    UndefinedVariable,
    /// A value of the wrong type, or a bad operand.
    TypeError,
    MissingAttribute,
    /// A thunk forced itself.
    InfiniteRecursion,
    /// The call depth or native stack budget ran out.
    TooDeep,
    /// `derivation`, fetchers and store writes: ferry discovers networks without a store.
    NotAvailableDuringDiscovery,
    /// A file could not be read.
    Io,
    /// A syntax error.
    Parse,
    /// An attribute defined twice, a bad argument to a builtin, division by zero, …
    Eval,
    /// A function called without a required argument or with an unexpected one.
    BadArgument,
    /// Part of the language this evaluator does not support yet.
    NotImplemented,
}

/// An evaluation error. `Display` prints `error: <message>` then `at <file>:<line>:<col>` and the trace.
#[derive(Clone, Debug)]
pub struct EvalError {
    pub kind: EvalErrorKind,
    pub message: String,
    pub span: Option<Span>,
    /// Innermost first, a few entries at most.
    pub trace: Vec<(String, Span)>,
    /// Position before it is resolved to a [`Span`] (when the error leaves the evaluator).
    pub(crate) pos: Option<super::Pos>,
    /// Unresolved positions, boxed to keep the error (and every `Result`) small.
    pub(crate) extra: Box<ErrorExtra>,
}

/// Positions an error carries until it leaves the evaluator.
#[derive(Clone, Debug, Default)]
pub(crate) struct ErrorExtra {
    /// A second position, e.g. the first definition of a duplicate attribute.
    pub secondary: Option<super::Pos>,
    pub trace_pos: Vec<(String, super::Pos)>,
}

impl EvalError {
    pub(crate) fn at(mut self: Box<Self>, pos: super::Pos) -> Box<EvalError> {
        if self.pos.is_none() {
            self.pos = Some(pos);
        }
        self
    }

    pub fn new(kind: EvalErrorKind, message: impl Into<String>) -> EvalError {
        EvalError {
            kind,
            message: message.into(),
            span: None,
            trace: Vec::new(),
            pos: None,
            extra: Box::default(),
        }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(span) = &self.span {
            write!(f, "\n       at {span}")?;
        }
        for (what, span) in &self.trace {
            write!(f, "\n       … {what}\n         at {span}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EvalError {}
