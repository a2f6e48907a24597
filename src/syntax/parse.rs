//! Parsing with rnix: the tree plus parse errors turned into [`Diagnostic`]s with byte ranges.

use std::path::Path;

use rnix::{ParseError, SyntaxKind};

use super::codes::Code;
use super::diagnostic::Diagnostic;

/// A parsed file: its rnix root and the diagnostics of its parse errors. The tree is `!Send`.
pub struct ParsedFile {
    pub root: rnix::Root,
    pub errors: Vec<Diagnostic>,
}

/// Deepest bracket nesting handed to rnix. rnix 0.15 parses nested lists without its recursion limit,
/// recursing once per level (a stack overflow at 100,000 levels) in time quadratic in the depth (8,000
/// levels take seconds), so deeper input is rejected before parsing. Real files nest a few dozen levels.
pub const MAX_NESTING: usize = 512;

/// The byte offset where bracket nesting first exceeds [`MAX_NESTING`], found in one linear pass over the
/// tokens.
pub fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut offset = 0usize;
    for (kind, tok) in rnix::tokenize(text) {
        match kind {
            SyntaxKind::TOKEN_L_BRACK
            | SyntaxKind::TOKEN_L_BRACE
            | SyntaxKind::TOKEN_L_PAREN
            | SyntaxKind::TOKEN_INTERPOL_START => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(offset);
                }
            }
            SyntaxKind::TOKEN_R_BRACK
            | SyntaxKind::TOKEN_R_BRACE
            | SyntaxKind::TOKEN_R_PAREN
            | SyntaxKind::TOKEN_INTERPOL_END => depth = depth.saturating_sub(1),
            _ => {}
        }
        offset += tok.len();
    }
    None
}

/// Parses `text` (from `path`, used in diagnostics). Never fails: a broken file gives a partial tree, and a
/// file nested deeper than [`MAX_NESTING`] gives an empty tree and one error.
pub fn parse_file(path: &Path, text: &str) -> ParsedFile {
    if let Some(at) = too_deep(text) {
        return ParsedFile {
            root: rnix::Root::parse("").tree(),
            errors: vec![
                Diagnostic::new(
                    Code::ParseError,
                    format!("the expression is nested too deeply (more than {MAX_NESTING} levels)"),
                )
                .at(path, Some(at..at + 1)),
            ],
        };
    }
    let parse = rnix::Root::parse(text);
    // End of file: on the last character, so that the snippet shows the last line rather than an empty one.
    let end = text.trim_end_matches(['\n', '\r']).len();
    let mut errors: Vec<Diagnostic> = Vec::new();
    for e in parse.errors() {
        let eof = matches!(
            e,
            ParseError::UnexpectedEOF | ParseError::UnexpectedEOFWanted(_)
        );
        // After the first error, "unexpected end of file" is almost always a consequence of it.
        if eof && !errors.is_empty() {
            continue;
        }
        let (range, message) = describe(e, end);
        errors.push(Diagnostic::new(Code::ParseError, message).at(path, Some(range)));
    }
    ParsedFile {
        root: parse.tree(),
        errors,
    }
}

fn describe(e: &ParseError, end: usize) -> (std::ops::Range<usize>, String) {
    let r = |range: rnix::TextRange| usize::from(range.start())..usize::from(range.end());
    match e {
        ParseError::Unexpected(range) => (r(*range), "unexpected input".into()),
        ParseError::UnexpectedExtra(range) => {
            (r(*range), "unexpected input after the expression".into())
        }
        ParseError::UnexpectedWanted(got, range, wanted) => (
            r(*range),
            format!(
                "unexpected {}, expected {}",
                kind_name(*got),
                one_of(wanted)
            ),
        ),
        ParseError::UnexpectedDoubleBind(range) => (r(*range), "a pattern is bound twice".into()),
        ParseError::UnexpectedEOF => (end..end, "unexpected end of file".into()),
        ParseError::UnexpectedEOFWanted(wanted) => (
            end..end,
            format!("unexpected end of file, expected {}", one_of(wanted)),
        ),
        ParseError::DuplicatedArgs(range, name) => (
            r(*range),
            format!("duplicate formal function argument `{name}`"),
        ),
        ParseError::RecursionLimitExceeded => (0..0, "the expression is nested too deeply".into()),
        _ => (0..0, e.to_string()),
    }
}

fn one_of(kinds: &[SyntaxKind]) -> String {
    let names: Vec<String> = kinds.iter().map(|k| kind_name(*k)).collect();
    match names.len() {
        0 => "something else".into(),
        1 => names[0].clone(),
        _ => format!("one of {}", names.join(", ")),
    }
}

/// How a token kind reads in a message.
pub fn kind_name(kind: SyntaxKind) -> String {
    use SyntaxKind::*;
    let s = match kind {
        TOKEN_SEMICOLON => "`;`",
        TOKEN_COLON => "`:`",
        TOKEN_COMMA => "`,`",
        TOKEN_DOT => "`.`",
        TOKEN_ASSIGN => "`=`",
        TOKEN_L_BRACE => "`{`",
        TOKEN_R_BRACE => "`}`",
        TOKEN_L_BRACK => "`[`",
        TOKEN_R_BRACK => "`]`",
        TOKEN_L_PAREN => "`(`",
        TOKEN_R_PAREN => "`)`",
        TOKEN_IN => "`in`",
        TOKEN_THEN => "`then`",
        TOKEN_ELSE => "`else`",
        TOKEN_IDENT => "an identifier",
        TOKEN_STRING_START => "a string",
        TOKEN_STRING_END => "the end of a string",
        TOKEN_INTERPOL_END => "`}`",
        TOKEN_AT => "`@`",
        TOKEN_QUESTION => "`?`",
        TOKEN_ELLIPSIS => "`...`",
        other => {
            return format!("{other:?}")
                .trim_start_matches("TOKEN_")
                .trim_start_matches("NODE_")
                .to_lowercase();
        }
    };
    s.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reports_missing_semicolon_with_a_range() {
        let text = "{ a = 1 }";
        let parsed = parse_file(Path::new("x.nix"), text);
        assert!(!parsed.errors.is_empty());
        let d = &parsed.errors[0];
        assert_eq!(d.code, Code::ParseError);
        assert!(d.range.is_some());
    }

    #[test]
    fn deep_nesting_is_rejected_quickly() {
        let n = 100_000;
        let text = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let t = std::time::Instant::now();
        let parsed = parse_file(Path::new("x.nix"), &text);
        assert_eq!(parsed.errors.len(), 1);
        assert!(parsed.errors[0].message.contains("nested too deeply"));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(too_deep(&format!("{}{}", "[".repeat(100), "]".repeat(100))).is_none());
    }

    #[test]
    fn clean_file_has_no_errors() {
        let parsed = parse_file(Path::new("x.nix"), "{ a = 1; }");
        assert!(parsed.errors.is_empty());
    }
}
