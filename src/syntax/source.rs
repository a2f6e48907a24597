//! Source text with a line index: converts rowan's byte offsets to 1-based lines and columns counted in
//! chars, so that a column is right for non-ASCII text (an `é` is one column, not two).

use std::path::{Path, PathBuf};

/// A 1-based line and a 1-based column counted in chars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LineCol {
    pub line: u32,
    pub col: u32,
}

/// A file's path and text, with the byte offset of each line start.
#[derive(Clone, Debug)]
pub struct SourceFile {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> SourceFile {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The position of byte `offset`. Offsets past the end clamp to the end; an offset inside a multi-byte
    /// char counts as that char.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..)
            .map(|rest| {
                rest.char_indices()
                    .take_while(|(i, _)| start + i < offset)
                    .count()
            })
            .unwrap_or(0);
        LineCol {
            line: u32::try_from(line + 1).unwrap_or(u32::MAX),
            col: u32::try_from(col + 1).unwrap_or(u32::MAX),
        }
    }

    /// The text of 1-based `line`, without its line break.
    pub fn line_text(&self, line: u32) -> &str {
        let Some(idx) = (line as usize).checked_sub(1) else {
            return "";
        };
        let Some(&start) = self.line_starts.get(idx) else {
            return "";
        };
        let end = self
            .line_starts
            .get(idx + 1)
            .copied()
            .unwrap_or(self.text.len());
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches(['\n', '\r'])
    }

    /// The number of lines (a final line break does not start another line).
    pub fn line_count(&self) -> u32 {
        let n = if self.text.ends_with('\n') {
            self.line_starts.len() - 1
        } else {
            self.line_starts.len()
        };
        u32::try_from(n.max(1)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ascii_positions() {
        let f = SourceFile::new("a.nix", "ab\ncd\n".into());
        assert_eq!(f.line_col(0), LineCol { line: 1, col: 1 });
        assert_eq!(f.line_col(2), LineCol { line: 1, col: 3 });
        assert_eq!(f.line_col(3), LineCol { line: 2, col: 1 });
        assert_eq!(f.line_col(100), LineCol { line: 3, col: 1 });
        assert_eq!(f.line_text(2), "cd");
        assert_eq!(f.line_count(), 2);
    }

    #[test]
    fn non_ascii_columns_count_chars() {
        // "é" is 2 bytes, "→" is 3 bytes, "🦀" is 4 bytes.
        let text = "x = \"é→🦀\"; y = 1;\n";
        let f = SourceFile::new("a.nix", text.to_string());
        let y = text.find('y').unwrap();
        assert_eq!(f.line_col(y), LineCol { line: 1, col: 12 });
        // Inside the crab: counts as the crab's column.
        let crab = text.find('🦀').unwrap();
        assert_eq!(f.line_col(crab + 2), f.line_col(crab + 1));
        assert_eq!(f.line_col(crab).col, 8);
    }

    #[test]
    fn crlf_lines() {
        let f = SourceFile::new("a.nix", "a\r\nb".into());
        assert_eq!(f.line_text(1), "a");
        assert_eq!(f.line_col(3), LineCol { line: 2, col: 1 });
    }
}
