//! Unpacking a NAR into a new directory tree. Every file is created relative to an open
//! directory descriptor with `*at` calls, `O_NOFOLLOW` and `O_EXCL`: names are validated by the
//! decoder (no `/`, `.`, `..`), nothing existing is overwritten, and no symlink is followed, so
//! nothing is ever written outside the target.
//!
//! Layer: store (pure, sync). Uses rustix for the `*at` calls.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::decode::{Event, NarReader};
use super::{NarError, NarSummary};

/// Unpack the NAR read from `reader` to `target`, which must not exist (its parent must).
/// Returns the archive's size and sha256. `reader` must hold just the archive: trailing bytes are an error.
/// On error, what was created so far stays (inside `target` only); the caller removes it.
pub fn unpack<R: Read>(reader: R, target: &Path) -> Result<NarSummary, NarError> {
    let mut nar = NarReader::new(reader);
    let summary = unpack_reader(&mut nar, target)?;
    nar.expect_eof()?;
    Ok(summary)
}

/// Unpack from an already positioned [`NarReader`], leaving its stream right after the archive.
pub fn unpack_reader<R: Read>(
    nar: &mut NarReader<R>,
    target: &Path,
) -> Result<NarSummary, NarError> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let root_name = target.file_name().ok_or_else(|| NarError::Io {
        op: "unpacking to",
        path: target.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "target has no file name"),
    })?;
    let parent_fd = rustix::fs::open(
        parent,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| NarError::io("opening directory", parent, e.into()))?;

    // Open directories, innermost last; the parent of the root is the bottom.
    let mut dirs: Vec<OwnedFd> = vec![parent_fd];
    // Path of the node being created, for messages; `name` is its last component.
    let mut path: PathBuf = target.to_owned();
    let mut name: Vec<u8> = root_name.as_bytes().to_vec();
    let mut file: Option<File> = None;

    while let Some(ev) = nar.next()? {
        // `dirs` always holds at least the parent; the decoder guarantees balanced events.
        let Some(dir) = dirs.last() else { break };
        match ev {
            Event::Directory => {
                rustix::fs::mkdirat(dir, name.as_slice(), Mode::from_raw_mode(0o755))
                    .map_err(|e| create_error("mkdir", &path, e))?;
                let fd = rustix::fs::openat(
                    dir,
                    name.as_slice(),
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| NarError::io("opening directory", &path, e.into()))?;
                dirs.push(fd);
            }
            Event::Entry { name: n } => {
                name.clear();
                name.extend_from_slice(n);
                path.push(std::ffi::OsStr::from_bytes(n));
            }
            Event::Regular { executable, .. } => {
                let mode = if executable { 0o755 } else { 0o644 };
                let fd = rustix::fs::openat(
                    dir,
                    name.as_slice(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(mode),
                )
                .map_err(|e| create_error("creating", &path, e))?;
                file = Some(File::from(fd));
            }
            Event::Data(data) => {
                if let Some(f) = &mut file {
                    f.write_all(data)
                        .map_err(|e| NarError::io("writing", &path, e))?;
                }
            }
            Event::FileEnd => {
                file = None;
                pop_entry(&mut path, dirs.len());
            }
            Event::Symlink { target } => {
                rustix::fs::symlinkat(target, dir, name.as_slice())
                    .map_err(|e| create_error("creating symlink", &path, e))?;
                pop_entry(&mut path, dirs.len());
            }
            Event::DirectoryEnd => {
                dirs.pop();
                pop_entry(&mut path, dirs.len());
            }
        }
    }
    nar.summary()
}

/// After a node inside a directory is complete, `path` goes back to that directory.
fn pop_entry(path: &mut PathBuf, open_dirs: usize) {
    // With only the parent of the root open, the node was the root itself.
    if open_dirs > 1 {
        path.pop();
    }
}

fn create_error(op: &'static str, path: &Path, e: rustix::io::Errno) -> NarError {
    if e == rustix::io::Errno::EXIST {
        NarError::Exists {
            path: path.to_owned(),
        }
    } else {
        NarError::io(op, path, e.into())
    }
}
