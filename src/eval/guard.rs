//! A pre-parse guard against syntax trees too deep for rnix.
//!
//! rnix bounds recursion for most nested constructs, but some (operator, application, selection and `!`
//! chains, nested lists) build trees as deep as the input is long: parsing them takes quadratic time, and
//! building or dropping the tree overflows the stack (100,000 nested `[` overflow even a 16 MiB stack).
//! So before parsing, a linear scan over rnix's tokens estimates the depth from above and rejects input
//! beyond a limit no hand-written file reaches.

use rnix::SyntaxKind::{self, *};

/// Highest depth estimate accepted. rnix itself stops at 512 nested expressions; the estimate counts
/// tokens, so it is generous to real code (a 1,000-token operator chain is still accepted).
pub(crate) const MAX_DEPTH_ESTIMATE: usize = 2048;

struct Group {
    base: usize,
    run: usize,
    /// Constructs whose body nests inside them (`with`, `assert`, `then`, `else`, `let … in`), until the
    /// binding or element they are part of ends.
    prefix: usize,
    /// `;` tokens that end a `with` or `assert` rather than a binding.
    pending_semis: usize,
    /// Opened by `let`, closed by `in`.
    is_let: bool,
    /// Inside `[ … ]`, juxtaposed items are siblings, not applications: only `.` chains nest.
    list: bool,
    /// Inside a string, literal parts don't nest.
    string: bool,
}

/// Longest run of path characters (`a-zA-Z0-9/_.+-`) accepted outside strings and comments: rnix's
/// tokenizer looks ahead over the whole run at every token that starts inside it, which is quadratic
/// (100,000 `-` take minutes). No hand-written path or identifier comes near this length.
pub(crate) const MAX_CODE_RUN: usize = 4096;

/// Returns the byte offset of the first code run longer than [`MAX_CODE_RUN`], if any. A linear scan that
/// knows just enough of the lexical syntax (strings, escapes, interpolation, comments) to skip strings.
pub(crate) fn long_run_at(src: &str) -> Option<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Ctx {
        Code { braces: usize },
        DStr,
        IStr,
    }
    let b = src.as_bytes();
    let mut stack = vec![Ctx::Code { braces: 0 }];
    let mut run = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        let c = b[i];
        let Some(ctx) = stack.last_mut() else { break };
        match ctx {
            Ctx::Code { braces } => {
                if c.is_ascii_alphanumeric() || matches!(c, b'/' | b'_' | b'.' | b'+' | b'-') {
                    run += 1;
                    if run > MAX_CODE_RUN {
                        return Some(i);
                    }
                    // `//` and `/*` end nothing here: comments only start after a non-path char below.
                    i += 1;
                    continue;
                }
                run = 0;
                match c {
                    b'"' => stack.push(Ctx::DStr),
                    b'\'' if b.get(i + 1) == Some(&b'\'') => {
                        stack.push(Ctx::IStr);
                        i += 1;
                    }
                    b'#' => {
                        while i < b.len() && b[i] != b'\n' {
                            i += 1;
                        }
                    }
                    b'{' => *braces += 1,
                    b'}' => {
                        if *braces == 0 {
                            if stack.len() > 1 {
                                stack.pop();
                            }
                        } else {
                            *braces -= 1;
                        }
                    }
                    _ => {}
                }
                // `/*` comments: a `/` was counted as a path char, so check the pair here.
                if c == b'*' && i > 0 && b[i - 1] == b'/' {
                    i += 1;
                    while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            Ctx::DStr => {
                match c {
                    b'\\' => i += 1,
                    b'"' => {
                        stack.pop();
                    }
                    b'$' if b.get(i + 1) == Some(&b'{') => {
                        stack.push(Ctx::Code { braces: 0 });
                        i += 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            Ctx::IStr => {
                if c == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    match b.get(i + 2) {
                        Some(b'$') | Some(b'\'') => i += 3,
                        Some(b'\\') => i += 4,
                        _ => {
                            stack.pop();
                            i += 2;
                        }
                    }
                    continue;
                }
                if c == b'$' && b.get(i + 1) == Some(&b'{') {
                    stack.push(Ctx::Code { braces: 0 });
                    i += 1;
                }
                i += 1;
            }
        }
    }
    None
}

/// Returns the byte offset where the depth estimate first exceeds [`MAX_DEPTH_ESTIMATE`], if it does.
pub(crate) fn too_deep_at(src: &str) -> Option<usize> {
    let mut groups = vec![new_group(0, false, false, false)];
    let mut off = 0usize;
    for (kind, text) in rnix::tokenize(src) {
        let here = off;
        off += text.len();
        match kind {
            TOKEN_WHITESPACE | TOKEN_COMMENT | TOKEN_STRING_CONTENT => continue,
            TOKEN_L_PAREN | TOKEN_L_BRACK | TOKEN_L_BRACE | TOKEN_INTERPOL_START
            | TOKEN_STRING_START => {
                let base = top(&groups).map(|g| depth(g) + 1).unwrap_or(1);
                groups.push(new_group(
                    base,
                    kind == TOKEN_L_BRACK,
                    kind == TOKEN_STRING_START,
                    false,
                ));
            }
            TOKEN_LET => {
                let base = top(&groups).map(|g| depth(g) + 1).unwrap_or(1);
                groups.push(new_group(base, false, false, true));
            }
            TOKEN_IN => {
                if groups.len() > 1 && groups.last().is_some_and(|g| g.is_let) {
                    groups.pop();
                }
                if let Some(g) = groups.last_mut() {
                    g.prefix += 1;
                    g.run = 0;
                }
            }
            TOKEN_WITH | TOKEN_ASSERT => {
                if let Some(g) = groups.last_mut() {
                    g.prefix += 1;
                    g.pending_semis += 1;
                }
            }
            TOKEN_THEN | TOKEN_ELSE => {
                if let Some(g) = groups.last_mut() {
                    g.prefix += 1;
                    g.run = 0;
                }
            }
            TOKEN_SEMICOLON => {
                if let Some(g) = groups.last_mut() {
                    if g.pending_semis > 0 {
                        g.pending_semis -= 1;
                    } else {
                        g.prefix = 0;
                    }
                    g.run = 0;
                }
            }
            TOKEN_R_PAREN | TOKEN_R_BRACK | TOKEN_R_BRACE | TOKEN_INTERPOL_END
            | TOKEN_STRING_END => {
                // A `let` left open by a syntax error closes with its enclosing bracket.
                while groups.len() > 1 && groups.last().is_some_and(|g| g.is_let) {
                    groups.pop();
                }
                if groups.len() > 1 {
                    groups.pop();
                }
                if let Some(g) = groups.last_mut() {
                    bump(g, kind);
                }
            }
            TOKEN_COMMA => {
                if let Some(g) = groups.last_mut() {
                    g.run = 0;
                    g.prefix = 0;
                }
            }
            TOKEN_ASSIGN => {
                if let Some(g) = groups.last_mut() {
                    g.run = 0;
                }
            }
            _ => {
                if let Some(g) = groups.last_mut() {
                    bump(g, kind);
                }
            }
        }
        if let Some(g) = top(&groups)
            && depth(g) > MAX_DEPTH_ESTIMATE
        {
            return Some(here);
        }
    }
    None
}

fn new_group(base: usize, list: bool, string: bool, is_let: bool) -> Group {
    Group {
        base,
        run: 0,
        prefix: 0,
        pending_semis: 0,
        is_let,
        list,
        string,
    }
}

fn depth(g: &Group) -> usize {
    g.base + g.prefix + g.run
}

fn top(groups: &[Group]) -> Option<&Group> {
    groups.last()
}

fn bump(g: &mut Group, kind: SyntaxKind) {
    if g.string {
        return;
    }
    if g.list && kind != TOKEN_DOT && kind != TOKEN_OR {
        g.run = 0;
    } else {
        g.run += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_code_and_rejects_chains() {
        assert_eq!(too_deep_at("{ a = [ 1 2 3 ]; b = x: x + 1; }"), None);
        let long_list = format!("[ {} ]", "1 ".repeat(20_000));
        assert_eq!(too_deep_at(&long_list), None);
        let attrs = format!(
            "{{ {} }}",
            (0..2_000)
                .map(|i| format!("a{i} = {i};"))
                .collect::<String>()
        );
        assert_eq!(too_deep_at(&attrs), None);
        let lets = format!(
            "{{ {} }}",
            (0..1_000)
                .map(|i| format!("a{i} = let x = {i}; in with x; x;"))
                .collect::<String>()
        );
        assert_eq!(too_deep_at(&lets), None);
        assert!(too_deep_at(&"let a = 1; in ".repeat(3_000)).is_some());
        assert!(too_deep_at(&"if a then b else ".repeat(3_000)).is_some());
        assert!(too_deep_at(&"with a; ".repeat(3_000)).is_some());
        assert!(too_deep_at(&"!".repeat(3_000)).is_some());
        assert_eq!(
            long_run_at(&format!(
                "\"{}\" + ''{}'' # {}\n",
                "-".repeat(9000),
                "a".repeat(9000),
                "+".repeat(9000)
            )),
            None
        );
        assert!(long_run_at(&"-".repeat(9000)).is_some());
        assert!(long_run_at(&format!("\"${{{}}}\"", "a.".repeat(5000))).is_some());
        assert!(too_deep_at(&vec!["1"; 3_000].join(" + ")).is_some());
        assert!(too_deep_at(&"[".repeat(3_000)).is_some());
        assert!(too_deep_at(&format!("a{}", ".b".repeat(3_000))).is_some());
        assert!(too_deep_at(&format!("f{}", " x".repeat(3_000))).is_some());
    }
}
