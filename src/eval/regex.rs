//! POSIX extended regular expressions (what Nix's `builtins.match` and `builtins.split` use, via
//! `std::regex::extended`) translated to the `regex` crate's syntax.
//!
//! Known gaps, because the `regex` crate is an approximation of POSIX ERE:
//! - alternation is leftmost-first, not POSIX leftmost-longest (`match "(a|ab)(c|bcd)" "abcd"` may capture
//!   differently);
//! - back-references (`\1`) are not supported and give an error;
//! - collating elements and equivalence classes (`[[.a.]]`, `[[=a=]]`) are not supported.

use super::machine::err;
use super::{EvalErrorKind, IResult as Result};

/// Translates and compiles `pattern`; `anchored` for `match`, which must match the whole string.
pub(crate) fn compile(pattern: &str, anchored: bool) -> Result<regex::Regex> {
    let translated = translate(pattern)?;
    let full = if anchored {
        format!("(?s)\\A(?:{translated})\\z")
    } else {
        format!("(?s){translated}")
    };
    regex::RegexBuilder::new(&full)
        .size_limit(10 * 1024 * 1024)
        .build()
        .map_err(|e| {
            err(
                EvalErrorKind::Eval,
                format!("invalid regular expression '{pattern}': {e}"),
            )
        })
}

fn translate(p: &str) -> Result<String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                match chars.get(i + 1) {
                    Some(d) if d.is_ascii_digit() => {
                        return Err(err(
                            EvalErrorKind::NotImplemented,
                            format!(
                                "back-references are not supported in regular expression '{p}'"
                            ),
                        ));
                    }
                    Some(d) if d.is_ascii_alphanumeric() => {
                        // ERE has no `\d`-style classes: an escaped letter is the letter itself.
                        out.push_str(&regex::escape(&d.to_string()));
                    }
                    Some(d) => out.push_str(&regex::escape(&d.to_string())),
                    None => out.push_str("\\\\"),
                }
                i += 2;
            }
            '[' => {
                let (class, next) = bracket(&chars, i, p)?;
                out.push_str(&class);
                i = next;
            }
            '{' => {
                // A `{` that does not start a valid interval is literal.
                let rest: String = chars[i..].iter().collect();
                let valid = rest.find('}').is_some_and(|end| {
                    let inner = &rest[1..end];
                    !inner.is_empty()
                        && inner.chars().all(|c| c.is_ascii_digit() || c == ',')
                        && !inner.starts_with(',')
                });
                if valid && !out.is_empty() {
                    out.push('{');
                } else {
                    out.push_str("\\{");
                }
                i += 1;
            }
            '}' => {
                // Closing an interval we opened, or literal.
                if out.contains('{') && !out.ends_with("\\{") {
                    out.push('}');
                } else {
                    out.push_str("\\}");
                }
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Translates a bracket expression starting at `chars[start] == '['`; returns it and the index after it.
fn bracket(chars: &[char], start: usize, p: &str) -> Result<(String, usize)> {
    let mut out = String::from("[");
    let mut i = start + 1;
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(err(
                EvalErrorKind::Eval,
                format!("invalid regular expression '{p}': unbalanced '['"),
            ));
        };
        if c == ']' && !first {
            out.push(']');
            return Ok((out, i + 1));
        }
        first = false;
        if c == '[' && matches!(chars.get(i + 1), Some(':') | Some('=') | Some('.')) {
            let kind = chars[i + 1];
            // Find the closing `:]` / `=]` / `.]`.
            let mut j = i + 2;
            while j + 1 < chars.len() && !(chars[j] == kind && chars[j + 1] == ']') {
                j += 1;
            }
            if j + 1 >= chars.len() {
                return Err(err(
                    EvalErrorKind::Eval,
                    format!("invalid regular expression '{p}'"),
                ));
            }
            if kind != ':' {
                return Err(err(
                    EvalErrorKind::NotImplemented,
                    format!("collating elements are not supported in regular expression '{p}'"),
                ));
            }
            let name: String = chars[i + 2..j].iter().collect();
            out.push_str(&format!("[:{name}:]"));
            i = j + 2;
            continue;
        }
        match c {
            '\\' | '[' | '&' | '~' | '^' => {
                out.push('\\');
                out.push(c);
            }
            ']' => out.push_str("\\]"),
            '-' => {
                // A range dash stays; a leading or trailing dash is literal.
                let trailing = chars.get(i + 1) == Some(&']');
                if out.ends_with('[') || out.ends_with("[^") || trailing {
                    out.push_str("\\-");
                } else {
                    out.push('-');
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn translates_posix_classes_and_literals() {
        let re = compile("[[:alpha:]]+[]a\\-]x{2}", true).unwrap();
        assert!(re.is_match("ab]xx"));
        assert!(re.is_match("ab\\xx"));
        let re = compile("a{", true).unwrap();
        assert!(re.is_match("a{"));
    }
}
