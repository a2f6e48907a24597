//! String literal decoding, following Nix 2.8's lexer: escapes in `"…"` strings, and the escape
//! tokens and indentation stripping of `''…''` strings.

/// Decodes the body of a `"…"` string part: `\n`, `\r`, `\t`, `\x` → `x`, and raw CR/CRLF → LF.
pub(crate) fn unescape_dquote(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            },
            '\r' => {
                out.push('\n');
                if it.peek() == Some(&'\n') {
                    it.next();
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// One `IND_STR` token of an indented string: its text, and whether it counts for indentation (escapes
/// and `$` don't).
#[derive(Debug)]
pub(crate) struct IndTok {
    pub text: String,
    pub has_indentation: bool,
}

/// Splits the raw text between `''` (or between interpolations) into Nix's `IND_STR` tokens.
pub(crate) fn tokenize_indented(raw: &str, out: &mut Vec<IndTok>) {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Rule A: ([^$']|\$[^{']|'[^'$])+ — the longest run.
        let mut j = i;
        loop {
            if j >= b.len() {
                break;
            }
            match b[j] {
                b'$' => {
                    if j + 1 < b.len() && b[j + 1] != b'{' && b[j + 1] != b'\'' {
                        j += 1 + utf8_len(b[j + 1]);
                    } else {
                        break;
                    }
                }
                b'\'' => {
                    if j + 1 < b.len() && b[j + 1] != b'\'' && b[j + 1] != b'$' {
                        j += 1 + utf8_len(b[j + 1]);
                    } else {
                        break;
                    }
                }
                c => j += utf8_len(c),
            }
        }
        let j = j.min(b.len());
        let rest = &raw[i..];
        // The fixed rules, with their lengths; flex takes the longest match, then the first rule.
        let fixed: Option<(usize, String)> = if rest.starts_with("''$") {
            Some((3, "$".into()))
        } else if rest.starts_with("'''") {
            Some((3, "''".into()))
        } else if let Some(after) = rest.strip_prefix("''\\") {
            match after.chars().next() {
                Some(c) => Some((3 + c.len_utf8(), unescape_dquote(&format!("\\{c}")))),
                None => Some((3, String::new())),
            }
        } else if rest.starts_with('$') {
            Some((1, "$".into()))
        } else if rest.starts_with('\'') {
            Some((1, "'".into()))
        } else {
            None
        };
        let run = j - i;
        match fixed {
            Some((len, text)) if len > run => {
                out.push(IndTok {
                    text,
                    has_indentation: false,
                });
                i += len;
            }
            _ if run > 0 => {
                out.push(IndTok {
                    text: raw[i..j].to_string(),
                    has_indentation: true,
                });
                i = j;
            }
            Some((len, text)) => {
                out.push(IndTok {
                    text,
                    has_indentation: false,
                });
                i += len;
            }
            None => {
                // Unreachable for well-formed input; skip a char rather than loop.
                i += utf8_len(b[i]);
            }
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xff => 4,
        _ => 1,
    }
}

/// A part of an indented string before stripping: a token or an interpolation (by index).
pub(crate) enum IndPart {
    Tok(IndTok),
    Interp(usize),
}

/// Nix 2.8's `stripIndentation`: returns literal strings and interpolation indices in order.
pub(crate) fn strip_indentation(parts: Vec<IndPart>) -> Vec<Result<String, usize>> {
    let mut at_start = true;
    let mut min_indent = usize::MAX;
    let mut cur_indent = 0usize;
    for p in &parts {
        match p {
            IndPart::Tok(t) if t.has_indentation => {
                for c in t.text.bytes() {
                    if at_start {
                        if c == b' ' {
                            cur_indent += 1;
                        } else if c == b'\n' {
                            cur_indent = 0;
                        } else {
                            at_start = false;
                            min_indent = min_indent.min(cur_indent);
                        }
                    } else if c == b'\n' {
                        at_start = true;
                        cur_indent = 0;
                    }
                }
            }
            _ => {
                if at_start {
                    at_start = false;
                    min_indent = min_indent.min(cur_indent);
                }
            }
        }
    }
    if min_indent == usize::MAX {
        min_indent = 1_000_000;
    }
    let mut out = Vec::with_capacity(parts.len());
    at_start = true;
    let mut cur_dropped = 0usize;
    let n = parts.len();
    for (k, p) in parts.into_iter().enumerate() {
        match p {
            IndPart::Interp(i) => {
                at_start = false;
                cur_dropped = 0;
                out.push(Err(i));
            }
            IndPart::Tok(t) => {
                let mut s2 = String::with_capacity(t.text.len());
                for c in t.text.chars() {
                    if at_start {
                        if c == ' ' {
                            if cur_dropped >= min_indent {
                                s2.push(c);
                            }
                            cur_dropped += 1;
                        } else if c == '\n' {
                            cur_dropped = 0;
                            s2.push(c);
                        } else {
                            at_start = false;
                            cur_dropped = 0;
                            s2.push(c);
                        }
                    } else {
                        s2.push(c);
                        if c == '\n' {
                            at_start = true;
                        }
                    }
                }
                if k + 1 == n
                    && let Some(p) = s2.rfind('\n')
                    && s2[p + 1..].bytes().all(|c| c == b' ')
                {
                    s2.truncate(p + 1);
                }
                out.push(Ok(s2));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ind(raw: &str) -> String {
        let mut toks = Vec::new();
        tokenize_indented(raw, &mut toks);
        strip_indentation(toks.into_iter().map(IndPart::Tok).collect())
            .into_iter()
            .map(|p| p.unwrap_or_default())
            .collect()
    }

    #[test]
    fn strips_common_indentation() {
        assert_eq!(ind("  a\n    b\n  "), "a\n  b\n");
        assert_eq!(ind("  ''$ ''' ''\\n x"), "$ '' \nx"); // checked against Nix 2.8
    }

    #[test]
    fn unescapes() {
        assert_eq!(unescape_dquote("a\\n\\\"\\$b\r\nc"), "a\n\"$b\nc");
    }
}
