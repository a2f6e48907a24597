//! The NAR encoder: serialises a filesystem tree exactly as `nix-store --dump` does (entries
//! sorted bytewise, `executable` before `contents`, only the owner-execute bit recorded), as a
//! `Read` that streams file contents through without buffering them.
//!
//! Layer: store (pure, sync). Reads the local filesystem with `std`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::NarError;
use super::wire::{padding, put_str};

/// A file whose contents are being streamed.
struct OpenFile {
    file: File,
    path: PathBuf,
    remaining: u64,
    pad: usize,
}

/// A directory whose entries are being emitted.
struct DirFrame {
    path: PathBuf,
    entries: std::vec::IntoIter<OsString>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Running,
    Done,
}

/// A NAR of a filesystem tree as a byte stream. Memory is bounded by one directory listing per
/// open level plus a small token buffer; file contents go straight into the caller's buffer.
pub struct NarEncoder {
    root: PathBuf,
    state: State,
    pending: Vec<u8>,
    pending_pos: usize,
    file: Option<OpenFile>,
    stack: Vec<DirFrame>,
}

impl NarEncoder {
    /// An encoder for the tree at `root` (which is not followed if it is a symlink).
    pub fn new(root: impl Into<PathBuf>) -> NarEncoder {
        NarEncoder {
            root: root.into(),
            state: State::Start,
            pending: Vec::with_capacity(1024),
            pending_pos: 0,
            file: None,
            stack: Vec::new(),
        }
    }

    /// Fill `buf` with the next bytes of the archive; 0 at the end.
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize, NarError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pending_pos < self.pending.len() {
                let n = (self.pending.len() - self.pending_pos).min(buf.len());
                buf[..n].copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
                self.pending_pos += n;
                return Ok(n);
            }
            self.pending.clear();
            self.pending_pos = 0;

            if let Some(f) = &mut self.file {
                if f.remaining > 0 {
                    let want = usize::try_from(f.remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let n = loop {
                        match f.file.read(&mut buf[..want]) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(NarError::io("reading", f.path.clone(), e)),
                        }
                    };
                    if n == 0 {
                        return Err(NarError::FileChanged {
                            path: f.path.clone(),
                        });
                    }
                    f.remaining -= n as u64;
                    return Ok(n);
                }
                let pad = f.pad;
                self.pending.extend_from_slice(&[0u8; 8][..pad]);
                put_str(&mut self.pending, b")");
                self.file = None;
                self.node_done();
                continue;
            }

            match self.state {
                State::Done => return Ok(0),
                State::Start => {
                    put_str(&mut self.pending, b"nix-archive-1");
                    self.state = State::Running;
                    let root = self.root.clone();
                    self.emit_node(root)?;
                }
                State::Running => {
                    let Some(frame) = self.stack.last_mut() else {
                        self.state = State::Done;
                        continue;
                    };
                    if let Some(name) = frame.entries.next() {
                        let path = frame.path.join(&name);
                        put_str(&mut self.pending, b"entry");
                        put_str(&mut self.pending, b"(");
                        put_str(&mut self.pending, b"name");
                        put_str(&mut self.pending, name.as_bytes());
                        put_str(&mut self.pending, b"node");
                        self.emit_node(path)?;
                    } else {
                        put_str(&mut self.pending, b")");
                        self.stack.pop();
                        self.node_done();
                    }
                }
            }
        }
    }

    /// After a node: close the directory entry that holds it, if any.
    fn node_done(&mut self) {
        if !self.stack.is_empty() {
            put_str(&mut self.pending, b")");
        }
    }

    fn emit_node(&mut self, path: PathBuf) -> Result<(), NarError> {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| NarError::io("lstat", &path, e))?;
        let ft = meta.file_type();
        put_str(&mut self.pending, b"(");
        put_str(&mut self.pending, b"type");
        if ft.is_file() {
            put_str(&mut self.pending, b"regular");
            if meta.mode() & 0o100 != 0 {
                put_str(&mut self.pending, b"executable");
                put_str(&mut self.pending, b"");
            }
            put_str(&mut self.pending, b"contents");
            let size = meta.len();
            self.pending.extend_from_slice(&size.to_le_bytes());
            // O_NOFOLLOW: if the file was swapped for a symlink since lstat, fail rather than follow it.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| NarError::io("opening", &path, e))?;
            self.file = Some(OpenFile {
                file,
                path,
                remaining: size,
                pad: padding(size),
            });
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(&path).map_err(|e| NarError::io("readlink", &path, e))?;
            put_str(&mut self.pending, b"symlink");
            put_str(&mut self.pending, b"target");
            put_str(&mut self.pending, target.as_os_str().as_bytes());
            put_str(&mut self.pending, b")");
            self.node_done();
        } else if ft.is_dir() {
            put_str(&mut self.pending, b"directory");
            let mut names = Vec::new();
            let rd = std::fs::read_dir(&path).map_err(|e| NarError::io("listing", &path, e))?;
            for entry in rd {
                let entry = entry.map_err(|e| NarError::io("listing", &path, e))?;
                names.push(entry.file_name());
            }
            // Bytewise order, as Nix's std::map<std::string> gives.
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            self.stack.push(DirFrame {
                path,
                entries: names.into_iter(),
            });
        } else {
            return Err(NarError::UnsupportedFileType { path });
        }
        Ok(())
    }
}

impl Read for NarEncoder {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_chunk(buf).map_err(std::io::Error::other)
    }
}

/// Write the NAR of the tree at `path` to `out`; returns its size. Same bytes as `nix-store --dump`.
pub fn dump_path<W: Write>(path: &Path, mut out: W) -> Result<u64, NarError> {
    let mut enc = NarEncoder::new(path);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        // Gather small tokens into one write instead of one write per token.
        let mut filled = 0;
        while filled < buf.len() {
            let n = enc.read_chunk(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        out.write_all(&buf[..filled]).map_err(NarError::Write)?;
        total += filled as u64;
    }
    out.flush().map_err(NarError::Write)?;
    Ok(total)
}
