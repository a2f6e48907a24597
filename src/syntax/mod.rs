//! Syntax layer: rnix + rowan helpers and the [`Diagnostic`] data that lint, eval and parse errors share.
//!
//! Layer: `syntax` (pure, sync). It depends only on rnix, rowan and serde; it must not depend on the
//! evaluator, the network model, tokio or the CLI, and it never prints: the renderer lives in `cli/`.

pub mod codes;
pub mod diagnostic;
pub mod parse;
pub mod source;

pub use codes::Code;
pub use diagnostic::{Diagnostic, Label, Severity};
pub use parse::{ParsedFile, parse_file};
pub use source::{LineCol, SourceFile};
