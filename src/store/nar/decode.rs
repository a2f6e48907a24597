//! The validating NAR decoder: a sans-I/O state machine ([`Decoder`]) under three front ends:
//! [`NarValidator`] (push: feed chunks as they arrive from a socket), [`NarReader`] (pull: events
//! from any `Read`, used for unpacking) and [`ValidatingReader`] (a `Read` pass-through that checks
//! the bytes flowing through it). All three hash and count on the fly, never buffer more than one
//! token (at most [`MAX_TARGET_LEN`] bytes), and never read past the end of the archive.
//!
//! Layer: store (pure, sync).

use std::io::Read;

use sha2::Digest as _;

use super::wire::padding;
use super::{MAX_DEPTH, MAX_NAME_LEN, MAX_TARGET_LEN, NarError, NarSummary};
use crate::store::Hash;

/// Longest keyword token (`nix-archive-1` is 13 bytes); longer tokens where a keyword is expected
/// are rejected before they are read.
const MAX_KEYWORD_LEN: u64 = 16;

/// What the archive holds, in order. Borrowed data is valid until the next call.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A directory starts (the root, or the node of the last [`Event::Entry`]).
    Directory,
    /// A directory entry; its node follows.
    Entry { name: &'a [u8] },
    /// The current directory ends.
    DirectoryEnd,
    /// A regular file starts; `size` bytes of [`Event::Data`] follow, then [`Event::FileEnd`].
    Regular { executable: bool, size: u64 },
    /// A chunk of the current file's contents.
    Data(&'a [u8]),
    /// The current file's contents are complete.
    FileEnd,
    /// A symlink.
    Symlink { target: &'a [u8] },
}

/// The next token the grammar allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Magic,
    NodeOpen,
    TypeKw,
    TypeValue,
    ExecOrContents,
    ExecEmpty,
    ContentsKw,
    Contents,
    TargetKw,
    Target,
    NodeClose,
    EntryOrClose,
    EntryOpen,
    NameKw,
    Name,
    NodeKw,
    EntryClose,
    Done,
}

impl Expect {
    fn describe(self) -> &'static str {
        match self {
            Expect::Magic => "'nix-archive-1'",
            Expect::NodeOpen | Expect::EntryOpen => "'('",
            Expect::TypeKw => "'type'",
            Expect::TypeValue => "'regular', 'symlink' or 'directory'",
            Expect::ExecOrContents => "'executable' or 'contents'",
            Expect::ExecEmpty => "''",
            Expect::ContentsKw => "'contents'",
            Expect::Contents => "file contents",
            Expect::TargetKw => "'target'",
            Expect::Target => "a symlink target",
            Expect::NodeClose | Expect::EntryClose => "')'",
            Expect::EntryOrClose => "'entry' or ')'",
            Expect::NameKw => "'name'",
            Expect::Name => "an entry name",
            Expect::NodeKw => "'node'",
            Expect::Done => "the end of the archive",
        }
    }
}

/// Where we are inside the current token.
#[derive(Clone, Copy, Debug)]
enum Tok {
    /// Reading the 8-byte length.
    Len { have: usize },
    /// Collecting `len` bytes into `tokbuf`.
    Body { len: usize },
    /// Streaming file contents.
    Data { remaining: u64, pad: usize },
    /// Checking `need` more padding bytes.
    Pad { need: usize },
}

/// An event whose borrowed parts are described by position, so that the state machine can be
/// driven in a loop without holding a borrow (see [`Decoder::resolve`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum RawEvent {
    Directory,
    Entry,
    DirectoryEnd,
    Regular {
        executable: bool,
        size: u64,
    },
    /// `input[start..start + len]` of the slice given to `advance`.
    Data {
        start: usize,
        len: usize,
    },
    FileEnd,
    Symlink,
}

/// The sans-I/O state machine. It consumes bytes and yields at most one event per call.
#[derive(Debug)]
pub(crate) struct Decoder {
    expect: Expect,
    tok: Tok,
    lenbuf: [u8; 8],
    tokbuf: Vec<u8>,
    /// Offset of the current token's length field, for error messages.
    tok_offset: u64,
    /// Last entry name of each open directory (empty before the first entry: every valid name sorts after it).
    dirs: Vec<Vec<u8>>,
    executable: bool,
    offset: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            expect: Expect::Magic,
            tok: Tok::Len { have: 0 },
            lenbuf: [0; 8],
            tokbuf: Vec::new(),
            tok_offset: 0,
            dirs: Vec::new(),
            executable: false,
            offset: 0,
        }
    }
}

impl Decoder {
    pub(crate) fn is_done(&self) -> bool {
        self.expect == Expect::Done
    }

    /// False when a step is pending that consumes no input (the end of an empty file).
    pub(crate) fn needs_input(&self) -> bool {
        !matches!(self.tok, Tok::Pad { need: 0 })
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// How many bytes can be consumed without any risk of passing the end of the archive.
    /// Reading at most this much from a shared stream never swallows the next message.
    pub(crate) fn max_read(&self) -> usize {
        if self.is_done() {
            return 0;
        }
        match self.tok {
            Tok::Len { have } => 8 - have,
            Tok::Body { len } => len - self.tokbuf.len() + padding(len as u64),
            Tok::Data { remaining, pad } => usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .saturating_add(pad),
            // Only an empty file's contents leave a zero-length step pending; the node's ")" follows.
            Tok::Pad { need: 0 } => 8,
            Tok::Pad { need } => need,
        }
    }

    /// The borrowed view of `raw`, which `advance` returned for `input`.
    pub(crate) fn resolve<'a>(&'a self, raw: RawEvent, input: &'a [u8]) -> Event<'a> {
        match raw {
            RawEvent::Directory => Event::Directory,
            RawEvent::Entry => Event::Entry { name: &self.tokbuf },
            RawEvent::DirectoryEnd => Event::DirectoryEnd,
            RawEvent::Regular { executable, size } => Event::Regular { executable, size },
            RawEvent::Data { start, len } => Event::Data(&input[start..start + len]),
            RawEvent::FileEnd => Event::FileEnd,
            RawEvent::Symlink => Event::Symlink {
                target: &self.tokbuf,
            },
        }
    }

    /// Consume a prefix of `input`. Returns how much was consumed and at most one event. Consumes
    /// nothing once the archive is complete, so the caller sees where it ended.
    pub(crate) fn advance(&mut self, input: &[u8]) -> Result<(usize, Option<RawEvent>), NarError> {
        // An empty file's contents end without consuming anything.
        if matches!(self.tok, Tok::Pad { need: 0 }) {
            if let Some(ev) = self.maybe_token_done()? {
                return Ok((0, Some(ev)));
            }
        }
        let mut pos = 0;
        while pos < input.len() && !self.is_done() {
            let rest = &input[pos..];
            match self.tok {
                Tok::Len { have } => {
                    if have == 0 {
                        self.tok_offset = self.offset;
                    }
                    let n = (8 - have).min(rest.len());
                    self.lenbuf[have..have + n].copy_from_slice(&rest[..n]);
                    pos += n;
                    self.offset += n as u64;
                    if have + n < 8 {
                        self.tok = Tok::Len { have: have + n };
                        continue;
                    }
                    let len = u64::from_le_bytes(self.lenbuf);
                    if let Some(ev) = self.start_token(len)? {
                        return Ok((pos, Some(ev)));
                    }
                }
                Tok::Body { len } => {
                    let n = (len - self.tokbuf.len()).min(rest.len());
                    self.tokbuf.extend_from_slice(&rest[..n]);
                    pos += n;
                    self.offset += n as u64;
                    if self.tokbuf.len() == len {
                        self.tok = Tok::Pad {
                            need: padding(len as u64),
                        };
                        if let Some(ev) = self.maybe_token_done()? {
                            return Ok((pos, Some(ev)));
                        }
                    }
                }
                Tok::Data { remaining, pad } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    let start = pos;
                    pos += n;
                    self.offset += n as u64;
                    let remaining = remaining - n as u64;
                    self.tok = if remaining == 0 {
                        Tok::Pad { need: pad }
                    } else {
                        Tok::Data { remaining, pad }
                    };
                    return Ok((pos, Some(RawEvent::Data { start, len: n })));
                }
                Tok::Pad { need } => {
                    let n = need.min(rest.len());
                    if let Some(i) = rest[..n].iter().position(|&b| b != 0) {
                        return Err(NarError::NonZeroPadding {
                            offset: self.offset + i as u64,
                        });
                    }
                    pos += n;
                    self.offset += n as u64;
                    self.tok = Tok::Pad { need: need - n };
                    if let Some(ev) = self.maybe_token_done()? {
                        return Ok((pos, Some(ev)));
                    }
                }
            }
        }
        Ok((pos, None))
    }

    /// A token's length is known: check it against what the grammar allows, before buffering.
    fn start_token(&mut self, len: u64) -> Result<Option<RawEvent>, NarError> {
        let offset = self.tok_offset;
        if self.expect == Expect::Contents {
            self.tok = if len == 0 {
                Tok::Pad { need: 0 }
            } else {
                Tok::Data {
                    remaining: len,
                    pad: padding(len),
                }
            };
            return Ok(Some(RawEvent::Regular {
                executable: self.executable,
                size: len,
            }));
        }
        let max = match self.expect {
            Expect::Name => MAX_NAME_LEN as u64,
            Expect::Target => MAX_TARGET_LEN as u64,
            _ => MAX_KEYWORD_LEN,
        };
        if len > max {
            return Err(match self.expect {
                Expect::Name => NarError::NameTooLong { offset, len },
                Expect::Target => NarError::TargetTooLong { offset, len },
                Expect::Magic => NarError::BadMagic,
                e => NarError::UnexpectedToken {
                    offset,
                    expected: e.describe(),
                    found: format!("a {len}-byte token"),
                },
            });
        }
        // `len <= MAX_TARGET_LEN`, so the conversion is exact and the reservation bounded.
        let len = len as usize;
        self.tokbuf.clear();
        self.tokbuf.reserve(len);
        if len == 0 {
            self.tok = Tok::Pad { need: 0 };
            return self.maybe_token_done();
        }
        self.tok = Tok::Body { len };
        Ok(None)
    }

    /// If the current token (body and padding) is complete, act on it.
    fn maybe_token_done(&mut self) -> Result<Option<RawEvent>, NarError> {
        if !matches!(self.tok, Tok::Pad { need: 0 }) {
            return Ok(None);
        }
        self.tok = Tok::Len { have: 0 };
        if self.expect == Expect::Contents {
            self.expect = Expect::NodeClose;
            return Ok(Some(RawEvent::FileEnd));
        }
        self.on_token()
    }

    /// A complete token in `tokbuf`: move the grammar forward.
    fn on_token(&mut self) -> Result<Option<RawEvent>, NarError> {
        let offset = self.tok_offset;
        let tok: &[u8] = &self.tokbuf;
        let mut event = None;
        let next = match (self.expect, tok) {
            (Expect::Magic, b"nix-archive-1") => Expect::NodeOpen,
            (Expect::Magic, _) => return Err(NarError::BadMagic),
            (Expect::NodeOpen, b"(") => Expect::TypeKw,
            (Expect::TypeKw, b"type") => Expect::TypeValue,
            (Expect::TypeValue, b"regular") => {
                self.executable = false;
                Expect::ExecOrContents
            }
            (Expect::TypeValue, b"symlink") => Expect::TargetKw,
            (Expect::TypeValue, b"directory") => {
                if self.dirs.len() >= MAX_DEPTH {
                    return Err(NarError::TooDeep { offset });
                }
                self.dirs.push(Vec::new());
                event = Some(RawEvent::Directory);
                Expect::EntryOrClose
            }
            (Expect::ExecOrContents, b"executable") => {
                self.executable = true;
                Expect::ExecEmpty
            }
            (Expect::ExecOrContents, b"contents") | (Expect::ContentsKw, b"contents") => {
                Expect::Contents
            }
            (Expect::ExecEmpty, b"") => Expect::ContentsKw,
            (Expect::TargetKw, b"target") => Expect::Target,
            (Expect::Target, target) => {
                if target.is_empty() {
                    return Err(NarError::BadTarget {
                        offset,
                        reason: "empty",
                    });
                }
                if target.contains(&0) {
                    return Err(NarError::BadTarget {
                        offset,
                        reason: "contains NUL",
                    });
                }
                event = Some(RawEvent::Symlink);
                Expect::NodeClose
            }
            (Expect::NodeClose, b")") => self.node_done(),
            (Expect::EntryOrClose, b"entry") => Expect::EntryOpen,
            (Expect::EntryOrClose, b")") => {
                self.dirs.pop();
                event = Some(RawEvent::DirectoryEnd);
                self.node_done()
            }
            (Expect::EntryOpen, b"(") => Expect::NameKw,
            (Expect::NameKw, b"name") => Expect::Name,
            (Expect::Name, name) => {
                check_name(name, offset)?;
                // Names are only expected inside a directory, so `dirs` is not empty.
                if let Some(prev) = self.dirs.last_mut() {
                    if name <= prev.as_slice() {
                        return Err(NarError::NotSorted {
                            offset,
                            prev: String::from_utf8_lossy(prev).into_owned(),
                            name: String::from_utf8_lossy(name).into_owned(),
                        });
                    }
                    prev.clear();
                    prev.extend_from_slice(name);
                }
                event = Some(RawEvent::Entry);
                Expect::NodeKw
            }
            (Expect::NodeKw, b"node") => Expect::NodeOpen,
            (Expect::EntryClose, b")") => Expect::EntryOrClose,
            (expect, found) => {
                return Err(NarError::UnexpectedToken {
                    offset,
                    expected: expect.describe(),
                    found: format!("{:?}", String::from_utf8_lossy(found)),
                });
            }
        };
        self.expect = next;
        Ok(event)
    }

    /// A node is complete: the archive ends at the root, otherwise its entry closes.
    fn node_done(&self) -> Expect {
        if self.dirs.is_empty() {
            Expect::Done
        } else {
            Expect::EntryClose
        }
    }
}

fn check_name(name: &[u8], offset: u64) -> Result<(), NarError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name == b"." || name == b".." {
        "'.' or '..'"
    } else if name.contains(&b'/') {
        "contains '/'"
    } else if name.contains(&0) {
        "contains NUL"
    } else {
        return Ok(());
    };
    Err(NarError::BadName {
        offset,
        name: String::from_utf8_lossy(name).into_owned(),
        reason,
    })
}

/// Push-style validation of a NAR flowing past: feed it chunks as they arrive; it checks the
/// grammar, counts and hashes, and says where the archive ends.
///
/// ```
/// # use ferry::store::nar::{NarValidator, dump_path};
/// # let dir = tempfile::tempdir().unwrap();
/// # std::fs::write(dir.path().join("f"), b"hi").unwrap();
/// # let mut nar = Vec::new();
/// # dump_path(&dir.path().join("f"), &mut nar).unwrap();
/// let mut v = NarValidator::new();
/// let mut rest: &[u8] = &nar;
/// while !v.is_done() {
///     // Any chunking works; `max_read` bounds reads from a stream that continues after the NAR.
///     let chunk = &rest[..rest.len().min(v.max_read()).min(7)];
///     let used = v.feed(chunk).unwrap();
///     rest = &rest[used..];
/// }
/// let summary = v.finish().unwrap();
/// assert_eq!(summary.size, nar.len() as u64);
/// ```
#[derive(Debug, Default)]
pub struct NarValidator {
    decoder: Decoder,
    hasher: sha2::Sha256,
}

impl NarValidator {
    /// A validator at the start of an archive.
    pub fn new() -> NarValidator {
        NarValidator::default()
    }

    /// Validate and hash a prefix of `chunk`; returns how many bytes belong to the archive. Less
    /// than `chunk.len()` means the archive ended and the rest belongs to whatever follows.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<usize, NarError> {
        let mut pos = 0;
        while pos < chunk.len() && !self.decoder.is_done() {
            let (n, _) = self.decoder.advance(&chunk[pos..])?;
            pos += n;
        }
        self.hasher.update(&chunk[..pos]);
        Ok(pos)
    }

    /// Whether the archive is complete.
    pub fn is_done(&self) -> bool {
        self.decoder.is_done()
    }

    /// Bytes consumed so far.
    pub fn size(&self) -> u64 {
        self.decoder.offset()
    }

    /// The most bytes the next `feed` can take without passing the end of the archive (0 when
    /// done): read at most this much from a stream that carries more after the NAR.
    pub fn max_read(&self) -> usize {
        self.decoder.max_read()
    }

    /// Size and sha256; an error if the archive is incomplete.
    pub fn finish(self) -> Result<NarSummary, NarError> {
        if !self.decoder.is_done() {
            return Err(NarError::Truncated {
                offset: self.decoder.offset(),
            });
        }
        Ok(summary(self.decoder.offset(), self.hasher))
    }
}

fn summary(size: u64, hasher: sha2::Sha256) -> NarSummary {
    let digest: [u8; 32] = hasher.finalize().into();
    NarSummary {
        size,
        nar_hash: Hash::from_sha256(digest),
    }
}

/// Validate a whole NAR from `r`: the archive must be complete and nothing may follow it.
pub fn validate<R: Read>(mut r: R) -> Result<NarSummary, NarError> {
    let mut v = NarValidator::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = read_retrying(&mut r, &mut buf)?;
        if n == 0 {
            return v.finish();
        }
        let used = v.feed(&buf[..n])?;
        if used < n {
            return Err(NarError::TrailingData { offset: v.size() });
        }
    }
}

fn read_retrying<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, NarError> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(NarError::Read(e)),
        }
    }
}

/// A `Read` pass-through that validates, counts and hashes the NAR read through it, and
/// reports end-of-file exactly where the archive ends without reading further from `inner`.
/// Reads are bounded by the grammar, so wrap a raw socket or file in a `BufReader`.
#[derive(Debug)]
pub struct ValidatingReader<R> {
    inner: R,
    validator: NarValidator,
}

impl<R: Read> ValidatingReader<R> {
    pub fn new(inner: R) -> Self {
        ValidatingReader {
            inner,
            validator: NarValidator::new(),
        }
    }

    /// Size and hash once the whole archive has been read; an error if it is incomplete.
    pub fn finish(self) -> Result<(NarSummary, R), NarError> {
        Ok((self.validator.finish()?, self.inner))
    }
}

impl<R: Read> Read for ValidatingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.validator.is_done() || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(self.validator.max_read());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                NarError::Truncated {
                    offset: self.validator.size(),
                },
            ));
        }
        // `n <= max_read`, so all of it belongs to the archive.
        self.validator
            .feed(&buf[..n])
            .map_err(std::io::Error::other)?;
        Ok(n)
    }
}

/// Pull-style decoding: [`NarReader::next`] yields the archive's [`Event`]s, validating, counting
/// and hashing as it goes. It never reads past the end of the archive from `inner`, so a stream
/// that carries more data afterwards can be taken back with [`NarReader::into_inner`]. Reads are
/// bounded by the grammar: wrap an unbuffered source in a `BufReader`.
pub struct NarReader<R> {
    inner: R,
    decoder: Decoder,
    hasher: sha2::Sha256,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl<R: Read> NarReader<R> {
    pub fn new(inner: R) -> Self {
        NarReader {
            inner,
            decoder: Decoder::default(),
            hasher: sha2::Sha256::new(),
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The next event, or `None` once the archive is complete.
    #[allow(clippy::should_implement_trait)] // a lending iterator: events borrow the reader
    pub fn next(&mut self) -> Result<Option<Event<'_>>, NarError> {
        loop {
            if self.decoder.is_done() {
                return Ok(None);
            }
            if self.start == self.end && self.decoder.needs_input() {
                let want = self.buf.len().min(self.decoder.max_read());
                let n = read_retrying(&mut self.inner, &mut self.buf[..want])?;
                if n == 0 {
                    return Err(NarError::Truncated {
                        offset: self.decoder.offset(),
                    });
                }
                self.start = 0;
                self.end = n;
            }
            let at = self.start;
            let input = &self.buf[at..self.end];
            let (n, raw) = self.decoder.advance(input)?;
            self.hasher.update(&input[..n]);
            self.start += n;
            if let Some(raw) = raw {
                return Ok(Some(self.decoder.resolve(raw, &self.buf[at..at + n])));
            }
        }
    }

    /// Read to the end of the archive, discarding contents.
    pub fn skip_to_end(&mut self) -> Result<(), NarError> {
        while self.next()?.is_some() {}
        Ok(())
    }

    /// Size and sha256 of the archive; an error if it is not complete yet.
    pub fn summary(&self) -> Result<NarSummary, NarError> {
        if !self.decoder.is_done() {
            return Err(NarError::Truncated {
                offset: self.decoder.offset(),
            });
        }
        Ok(summary(self.decoder.offset(), self.hasher.clone()))
    }

    /// Check that `inner` has nothing after the archive (for whole-file archives).
    pub fn expect_eof(&mut self) -> Result<(), NarError> {
        let mut b = [0u8; 1];
        if self.start != self.end || read_retrying(&mut self.inner, &mut b)? != 0 {
            return Err(NarError::TrailingData {
                offset: self.decoder.offset(),
            });
        }
        Ok(())
    }

    /// The underlying stream, positioned right after the archive if it is complete.
    pub fn into_inner(self) -> R {
        self.inner
    }
}
