//! The diagnostic renderer: rustc-style human output (`severity[code]: message`, `--> file:line:col`, the
//! source line with the span underlined, secondary labels, notes and help) and JSON for tools and editors.
//! Colour only when asked for (and never when `NO_COLOR` is set).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::syntax::{Diagnostic, Severity, SourceFile};

/// Whether to colour output written to stdout/stderr: a terminal, and no `NO_COLOR`.
pub fn want_color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// True when stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// True when stderr is a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Files read for snippets, cached. Literal secrets (key texts, password-like options) are masked with `*`
/// as the file is loaded, so that no snippet ever shows key contents.
#[derive(Default)]
pub struct Sources {
    files: HashMap<PathBuf, Option<SourceFile>>,
}

/// `text` with the contents of the string literals at `ranges` replaced by `*`, char for char (columns stay
/// right); quotes and interpolations are kept.
fn mask(text: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let inside = ranges
            .iter()
            .any(|r| r.start < i && i + c.len_utf8() < r.end);
        if inside && !matches!(c, '"' | '\'' | '\n' | '\r' | '\t') {
            out.push('*');
        } else {
            out.push(c);
        }
    }
    out
}

impl Sources {
    pub fn get(&mut self, path: &Path) -> Option<&SourceFile> {
        self.files
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                std::fs::read_to_string(path).ok().map(|t| {
                    let secrets = crate::network::lint::secret_ranges(&t);
                    SourceFile::new(path, mask(&t, &secrets))
                })
            })
            .as_ref()
    }
}

/// A path as shown to the user: relative to the current directory when below it.
pub fn display_path(p: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(rel) = p.strip_prefix(&cwd) {
            return rel.display().to_string();
        }
    }
    p.display().to_string()
}

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn severity(&self, sev: Severity, s: &str) -> String {
        match sev {
            Severity::Error => self.paint("1;31", s),
            Severity::Warning => self.paint("1;33", s),
            Severity::Note => self.paint("1;36", s),
        }
    }
    fn gutter(&self, s: &str) -> String {
        self.paint("1;34", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// What to underline, and how.
struct Mark<'a> {
    range: &'a std::ops::Range<usize>,
    /// `^` for the primary span, `-` for labels.
    marker: char,
    label: &'a str,
    sev: Severity,
}

/// One underlined snippet.
fn snippet(out: &mut String, st: &Style, src: &SourceFile, width: usize, mark: &Mark<'_>) {
    let Mark {
        range,
        marker,
        label,
        sev,
    } = *mark;
    let start = src.line_col(range.start);
    let end = src.line_col(range.end.max(range.start));
    let full = src.line_text(start.line);
    let pad = " ".repeat(width);
    let line_chars = full.chars().count();
    let from = (start.col as usize).saturating_sub(1);
    let to = if end.line == start.line {
        (end.col as usize).saturating_sub(1)
    } else {
        line_chars
    };
    // Very long lines (generated or minified files): show a window around the span.
    const WINDOW: usize = 160;
    let (skip, take) = if line_chars > WINDOW {
        let skip = from.saturating_sub(40);
        (skip, WINDOW)
    } else {
        (0, line_chars)
    };
    let shown: String = full.chars().skip(skip).take(take).collect();
    let ellipsis_before = if skip > 0 { "…" } else { "" };
    let ellipsis_after = if skip + take < line_chars { "…" } else { "" };
    let _ = writeln!(out, "{pad} {}", st.gutter("|"));
    let _ = writeln!(
        out,
        "{} {} {ellipsis_before}{shown}{ellipsis_after}",
        st.gutter(&format!("{:>width$}", start.line)),
        st.gutter("|")
    );
    let from = from - skip + ellipsis_before.chars().count();
    let to = (to.saturating_sub(skip) + ellipsis_before.chars().count())
        .min(take + ellipsis_before.chars().count());
    let len = to.saturating_sub(from).max(1);
    // Keep tabs so the marker lines up under the source.
    let lead: String = format!("{ellipsis_before}{shown}")
        .chars()
        .take(from)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let marks: String = std::iter::repeat_n(marker, len).collect();
    let marks = if marker == '^' {
        st.severity(sev, &marks)
    } else {
        st.gutter(&marks)
    };
    let label = if label.is_empty() {
        String::new()
    } else {
        format!(" {label}")
    };
    let _ = writeln!(out, "{pad} {} {lead}{marks}{label}", st.gutter("|"));
}

/// Renders diagnostics rustc-style.
pub fn render_human(diags: &[Diagnostic], sources: &mut Sources, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    for d in diags {
        let head = format!("{}[{}]", d.severity.as_str(), d.code.as_str());
        let _ = writeln!(
            out,
            "{}{}",
            st.severity(d.severity, &head),
            st.bold(&format!(": {}", d.message))
        );
        // Width of the line-number gutter.
        let mut width = 1;
        let mut lines = Vec::new();
        if let (Some(f), Some(r)) = (&d.file, &d.range) {
            if let Some(src) = sources.get(f) {
                lines.push(src.line_col(r.start).line);
            }
        }
        for l in &d.labels {
            if let Some(src) = sources.get(&l.file) {
                lines.push(src.line_col(l.range.start).line);
            }
        }
        if let Some(max) = lines.iter().max() {
            width = max.to_string().len();
        }
        let pad = " ".repeat(width);
        match (&d.file, &d.range) {
            (Some(f), Some(r)) => match sources.get(f).cloned() {
                Some(src) => {
                    let lc = src.line_col(r.start);
                    let _ = writeln!(
                        out,
                        "{pad}{} {}:{}:{}",
                        st.gutter("-->"),
                        display_path(f),
                        lc.line,
                        lc.col
                    );
                    snippet(
                        &mut out,
                        &st,
                        &src,
                        width,
                        &Mark {
                            range: r,
                            marker: '^',
                            label: "",
                            sev: d.severity,
                        },
                    );
                }
                None => {
                    let _ = writeln!(out, "{pad}{} {}", st.gutter("-->"), display_path(f));
                }
            },
            (Some(f), None) => {
                let _ = writeln!(out, "{pad}{} {}", st.gutter("-->"), display_path(f));
            }
            _ => {}
        }
        for l in &d.labels {
            let Some(src) = sources.get(&l.file).cloned() else {
                continue;
            };
            if d.file.as_ref() != Some(&l.file) {
                let lc = src.line_col(l.range.start);
                let _ = writeln!(
                    out,
                    "{pad}{} {}:{}:{}",
                    st.gutter(":::"),
                    display_path(&l.file),
                    lc.line,
                    lc.col
                );
            }
            let mark = Mark {
                range: &l.range,
                marker: '-',
                label: &l.message,
                sev: d.severity,
            };
            snippet(&mut out, &st, &src, width, &mark);
        }
        if !d.notes.is_empty() || d.help.is_some() {
            let _ = writeln!(out, "{pad} {}", st.gutter("|"));
        }
        for n in &d.notes {
            let _ = writeln!(out, "{pad} {} {}: {n}", st.gutter("="), st.bold("note"));
        }
        if let Some(h) = &d.help {
            let _ = writeln!(out, "{pad} {} {}: {h}", st.gutter("="), st.bold("help"));
        }
        out.push('\n');
    }
    out
}

/// A one-line count: "2 errors, 1 warning".
pub fn summary(diags: &[Diagnostic]) -> String {
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

/// Diagnostics as JSON: `{"diagnostics": [...], "errors": n, "warnings": n}`, with byte ranges and 1-based
/// line/column (columns in chars).
pub fn render_json(diags: &[Diagnostic], sources: &mut Sources) -> serde_json::Value {
    use serde_json::json;
    let pos = |sources: &mut Sources, f: &Path, off: usize| {
        sources
            .get(f)
            .map(|s| {
                let lc = s.line_col(off);
                json!({ "line": lc.line, "column": lc.col })
            })
            .unwrap_or(serde_json::Value::Null)
    };
    let items: Vec<serde_json::Value> = diags
        .iter()
        .map(|d| {
            let (start, end) = match (&d.file, &d.range) {
                (Some(f), Some(r)) => (pos(sources, f, r.start), pos(sources, f, r.end)),
                _ => (serde_json::Value::Null, serde_json::Value::Null),
            };
            let labels: Vec<serde_json::Value> = d
                .labels
                .iter()
                .map(|l| {
                    json!({
                        "file": display_path(&l.file),
                        "range": { "start": l.range.start, "end": l.range.end },
                        "start": pos(sources, &l.file, l.range.start),
                        "message": l.message,
                    })
                })
                .collect();
            json!({
                "code": d.code.as_str(),
                "name": d.code.name(),
                "severity": d.severity,
                "message": d.message,
                "file": d.file.as_ref().map(|f| display_path(f)),
                "range": d.range.as_ref().map(|r| json!({ "start": r.start, "end": r.end })),
                "start": start,
                "end": end,
                "labels": labels,
                "notes": d.notes,
                "help": d.help,
            })
        })
        .collect();
    json!({
        "diagnostics": items,
        "errors": diags.iter().filter(|d| d.severity == Severity::Error).count(),
        "warnings": diags.iter().filter(|d| d.severity == Severity::Warning).count(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::syntax::Code;

    #[test]
    fn underlines_non_ascii_by_chars() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.nix");
        let text = "{ x = \"é→\"; bad = 1; }\n";
        std::fs::write(&f, text).unwrap();
        let start = text.find("bad").unwrap();
        let d = Diagnostic::new(Code::UnknownOption, "m").at(&f, Some(start..start + 3));
        let out = render_human(&[d], &mut Sources::default(), false);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].ends_with("a.nix:1:13"), "{out}");
        let src_line = lines[3];
        let mark_line = lines[4];
        let src_col = src_line.chars().position(|c| c == 'b').unwrap();
        let mark_col = mark_line.chars().position(|c| c == '^').unwrap();
        assert_eq!(src_col, mark_col, "{out}");
        assert_eq!(mark_line.matches('^').count(), 3);
    }

    #[test]
    fn no_color_codes_when_disabled() {
        let d = Diagnostic::new(Code::ParseError, "m");
        let out = render_human(&[d], &mut Sources::default(), false);
        assert!(!out.contains('\x1b'));
        let d = Diagnostic::new(Code::ParseError, "m");
        let out = render_human(&[d], &mut Sources::default(), true);
        assert!(out.contains('\x1b'));
    }
}
