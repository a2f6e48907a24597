//! The stderr channel: what the daemon sends between a request and its reply. Pure decoding.
//!
//! Layer: `daemon` (pure core). Must not depend on tokio.
//!
//! ```text
//! msg = STDERR_LAST                                             (reply payload follows)
//!     | STDERR_ERROR  ( ≥1.26: "Error" u64 level "Error" msg u64 0 u64 n n×(u64 0, hint)
//!                     | <1.26: msg u64 exitStatus )             (no reply payload follows)
//!     | STDERR_NEXT   msg                                       (a log line, with ANSI colours)
//!     | STDERR_START_ACTIVITY u64 id u64 level u64 type text fields u64 parent     (≥1.20)
//!     | STDERR_STOP_ACTIVITY  u64 id                                                (≥1.20)
//!     | STDERR_RESULT         u64 id u64 type fields                                (≥1.20)
//!     | STDERR_READ   u64 len    (daemon pulls data; only obsolete ops use it)
//!     | STDERR_WRITE  bytes      (daemon pushes data; only obsolete ops use it)
//! fields = u64 n ‖ n × (u64 0 ‖ u64 int | u64 1 ‖ string)
//! ```

use super::version::ProtocolVersion;
use super::wire::{DResult, Decoder, invalid};

pub const STDERR_NEXT: u64 = 0x6f6c_6d67;
pub const STDERR_READ: u64 = 0x6461_7461;
pub const STDERR_WRITE: u64 = 0x6461_7416;
pub const STDERR_LAST: u64 = 0x616c_7473;
pub const STDERR_ERROR: u64 = 0x6378_7470;
pub const STDERR_START_ACTIVITY: u64 = 0x5354_5254;
pub const STDERR_STOP_ACTIVITY: u64 = 0x5354_4f50;
pub const STDERR_RESULT: u64 = 0x5253_4c54;

/// Nix's verbosity levels (SetOptions, log lines, activities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verbosity {
    Error = 0,
    Warn = 1,
    Notice = 2,
    Info = 3,
    Talkative = 4,
    Chatty = 5,
    Debug = 6,
    Vomit = 7,
}

impl Verbosity {
    /// Levels above 7 do not exist; clamp rather than fail, since they only affect display.
    pub fn from_wire(v: u64) -> Self {
        match v {
            0 => Verbosity::Error,
            1 => Verbosity::Warn,
            2 => Verbosity::Notice,
            3 => Verbosity::Info,
            4 => Verbosity::Talkative,
            5 => Verbosity::Chatty,
            6 => Verbosity::Debug,
            _ => Verbosity::Vomit,
        }
    }
}

/// Activity kinds (`ActivityType` in Nix). Unknown values are kept, since newer daemons add more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityType {
    Unknown,
    CopyPath,
    FileTransfer,
    Realise,
    CopyPaths,
    Builds,
    Build,
    OptimiseStore,
    VerifyPaths,
    Substitute,
    QueryPathInfo,
    PostBuildHook,
    BuildWaiting,
    Other(u64),
}

impl ActivityType {
    pub fn from_wire(v: u64) -> Self {
        match v {
            0 => Self::Unknown,
            100 => Self::CopyPath,
            101 => Self::FileTransfer,
            102 => Self::Realise,
            103 => Self::CopyPaths,
            104 => Self::Builds,
            105 => Self::Build,
            106 => Self::OptimiseStore,
            107 => Self::VerifyPaths,
            108 => Self::Substitute,
            109 => Self::QueryPathInfo,
            110 => Self::PostBuildHook,
            111 => Self::BuildWaiting,
            v => Self::Other(v),
        }
    }
}

/// Result kinds (`ResultType` in Nix). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultType {
    FileLinked,
    BuildLogLine,
    UntrustedPath,
    CorruptedPath,
    SetPhase,
    Progress,
    SetExpected,
    PostBuildLogLine,
    Other(u64),
}

impl ResultType {
    pub fn from_wire(v: u64) -> Self {
        match v {
            100 => Self::FileLinked,
            101 => Self::BuildLogLine,
            102 => Self::UntrustedPath,
            103 => Self::CorruptedPath,
            104 => Self::SetPhase,
            105 => Self::Progress,
            106 => Self::SetExpected,
            107 => Self::PostBuildLogLine,
            v => Self::Other(v),
        }
    }
}

/// One field of an activity or result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Int(u64),
    String(String),
}

/// A progress event decoded from the stderr channel, handed to the caller's progress sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// An activity started. For builds, `fields` are `[drvPath, machine, curRound, nrRounds]`;
    /// for path copies `[path, srcUri, dstUri]`.
    Start {
        id: u64,
        level: Verbosity,
        kind: ActivityType,
        text: String,
        fields: Vec<Field>,
        parent: u64,
    },
    /// An activity ended.
    Stop { id: u64 },
    /// A result for an activity: build log lines (`[line]`), progress (`[done, expected,
    /// running, failed]`), phases, expectations.
    Result {
        id: u64,
        kind: ResultType,
        fields: Vec<Field>,
    },
}

/// An error reported by the daemon on the stderr channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The message as sent, with ANSI escapes.
    pub raw: String,
    /// Trace hints (≥1.26), outermost first, as sent.
    pub traces: Vec<String>,
    /// Exit status (only before 1.26; 100 means a build failure).
    pub exit_status: Option<u64>,
}

/// One decoded stderr message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StderrMsg {
    Last,
    Error(RemoteError),
    Next(String),
    Progress(Progress),
    Read(u64),
    Write(Vec<u8>),
}

fn fields(d: &mut Decoder<'_>) -> DResult<Vec<Field>> {
    let n = d.count()?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        match d.u64()? {
            0 => v.push(Field::Int(d.u64()?)),
            1 => v.push(Field::String(d.lossy_string()?)),
            t => return invalid(format!("unknown activity field type {t}")),
        }
    }
    Ok(v)
}

fn error(d: &mut Decoder<'_>, version: ProtocolVersion) -> DResult<RemoteError> {
    if version.has(ProtocolVersion::ERROR_STRUCT) {
        let ty = d.lossy_string()?;
        if ty != "Error" {
            return invalid(format!("unexpected error type {ty:?}"));
        }
        let _level = d.u64()?;
        let _name = d.lossy_string()?;
        let raw = d.lossy_string()?;
        if d.u64()? != 0 {
            return invalid("error with a position (never sent by Nix)");
        }
        let n = d.count()?;
        let mut traces = Vec::with_capacity(n);
        for _ in 0..n {
            if d.u64()? != 0 {
                return invalid("error trace with a position (never sent by Nix)");
            }
            traces.push(d.lossy_string()?);
        }
        Ok(RemoteError {
            raw,
            traces,
            exit_status: None,
        })
    } else {
        let raw = d.lossy_string()?;
        let status = d.u64()?;
        Ok(RemoteError {
            raw,
            traces: Vec::new(),
            exit_status: Some(status),
        })
    }
}

/// Decode one stderr message.
pub fn decode(d: &mut Decoder<'_>, version: ProtocolVersion) -> DResult<StderrMsg> {
    let tag = d.u64()?;
    let activities = version.has(ProtocolVersion::ACTIVITIES);
    Ok(match tag {
        STDERR_LAST => StderrMsg::Last,
        STDERR_ERROR => StderrMsg::Error(error(d, version)?),
        STDERR_NEXT => StderrMsg::Next(d.lossy_string()?),
        STDERR_READ => StderrMsg::Read(d.u64()?),
        STDERR_WRITE => StderrMsg::Write(d.bytes()?.to_vec()),
        STDERR_START_ACTIVITY if activities => {
            let id = d.u64()?;
            let level = Verbosity::from_wire(d.u64()?);
            let kind = ActivityType::from_wire(d.u64()?);
            let text = d.lossy_string()?;
            let fields = fields(d)?;
            let parent = d.u64()?;
            StderrMsg::Progress(Progress::Start {
                id,
                level,
                kind,
                text,
                fields,
                parent,
            })
        }
        STDERR_STOP_ACTIVITY if activities => StderrMsg::Progress(Progress::Stop { id: d.u64()? }),
        STDERR_RESULT if activities => {
            let id = d.u64()?;
            let kind = ResultType::from_wire(d.u64()?);
            let fields = fields(d)?;
            StderrMsg::Progress(Progress::Result { id, kind, fields })
        }
        t => return invalid(format!("unknown stderr message tag {t:#x}")),
    })
}

/// Remove ANSI escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL|ST`, and lone `ESC x`),
/// which Nix puts around paths in its messages.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, then one final byte in 0x40..=0x7e.
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::wire::{DecodeError, Encoder};
    use super::*;

    const V134: ProtocolVersion = ProtocolVersion::new(1, 34);

    #[test]
    fn strips_nix_colours() {
        assert_eq!(
            strip_ansi("not an absolute path: '\x1b[35;1mnix-archive-1\x1b[0m'"),
            "not an absolute path: 'nix-archive-1'"
        );
        assert_eq!(strip_ansi("a\x1b]8;;http://x\x07b\x1b]8;;\x1b\\c"), "abc");
        assert_eq!(strip_ansi("plain"), "plain");
        assert_eq!(strip_ansi("trailing \x1b["), "trailing ");
    }

    #[test]
    fn decodes_the_verified_error_struct() {
        let mut e = Encoder::new();
        e.u64(STDERR_ERROR)
            .str("Error")
            .u64(0)
            .str("Error")
            .str("not an absolute path: '\x1b[35;1mnix-archive-1\x1b[0m'")
            .u64(0)
            .u64(1)
            .u64(0)
            .str("while doing X");
        let b = e.into_bytes();
        let mut d = Decoder::new(&b);
        let StderrMsg::Error(err) = decode(&mut d, V134).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(
            strip_ansi(&err.raw),
            "not an absolute path: 'nix-archive-1'"
        );
        assert_eq!(err.traces, vec!["while doing X".to_owned()]);
        d.finish().unwrap();
    }

    #[test]
    fn decodes_activities_only_when_negotiated() {
        let mut e = Encoder::new();
        e.u64(STDERR_START_ACTIVITY)
            .u64(7)
            .u64(3)
            .u64(105)
            .str("building x")
            .u64(2)
            .u64(1)
            .str("/nix/store/x.drv")
            .u64(0)
            .u64(1)
            .u64(0);
        let b = e.into_bytes();
        let msg = decode(&mut Decoder::new(&b), V134).unwrap();
        assert!(matches!(
            msg,
            StderrMsg::Progress(Progress::Start {
                id: 7,
                kind: ActivityType::Build,
                ..
            })
        ));
        assert!(matches!(
            decode(&mut Decoder::new(&b), ProtocolVersion::new(1, 19)),
            Err(DecodeError::Invalid(_))
        ));
    }
}
