//! Diagnostics as data: a stable code, a severity, a message, a byte range in a file, secondary labels,
//! notes and a help line. Libraries return these; one renderer in `cli/` prints them.

use std::ops::Range;
use std::path::PathBuf;

use super::codes::Code;

/// How bad a diagnostic is. Errors make `ferry lint` exit 1; warnings don't.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// A secondary position ("defined here").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub file: PathBuf,
    /// Byte offsets.
    pub range: Range<usize>,
    pub message: String,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// The file it is about; `None` for findings about the whole run (e.g. no network file given).
    pub file: Option<PathBuf>,
    /// Byte offsets into `file`; `None` when only the file is known.
    pub range: Option<Range<usize>>,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with the code's default severity.
    pub fn new(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            file: None,
            range: None,
            labels: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn at(mut self, file: impl Into<PathBuf>, range: Option<Range<usize>>) -> Diagnostic {
        self.file = Some(file.into());
        self.range = range;
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(
        mut self,
        file: PathBuf,
        range: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.labels.push(Label {
            file,
            range,
            message: message.into(),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}
