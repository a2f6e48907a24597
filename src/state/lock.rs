//! Per-deployment locks, so that two ferry processes never work on the same deployment at once. Part of the
//! state layer; sync.
//!
//! SQLite transactions keep each write atomic, but a command such as a deploy reads the state, works for
//! minutes, then writes: two of them interleaved would record a mix. So a command that changes a deployment
//! first takes an exclusive `flock` on `<state file>.locks/<uuid>`. The kernel drops the lock when the process
//! dies, so a crashed ferry never leaves a stale lock behind. The holder writes its pid and command into the
//! file, so that the waiter can say who it waits for.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

use super::error::{Error, Result};

/// A held deployment lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DeploymentLock {
    file: File,
    path: PathBuf,
}

impl DeploymentLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DeploymentLock {
    fn drop(&mut self) {
        // Clear the holder note before unlocking; errors only mean a stale note, which the next holder rewrites.
        let _ = self.file.set_len(0);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

/// The directory that holds the lock files of the state file `state`.
pub fn lock_dir(state: &Path) -> PathBuf {
    let mut name = state
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".locks");
    state.with_file_name(name)
}

/// Take the lock of deployment `uuid` (shown as `name`), waiting up to `timeout`. `holder` describes this process
/// (pid and command) for whoever waits next.
pub fn acquire(
    state: &Path,
    uuid: &str,
    name: &str,
    holder: &str,
    timeout: Duration,
) -> Result<DeploymentLock> {
    let dir = lock_dir(state);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| Error::Io {
            op: "create lock directory",
            path: dir.clone(),
            source,
        })?;
    let path = dir.join(uuid);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|source| Error::Io {
            op: "open lock file",
            path: path.clone(),
            source,
        })?;

    let start = Instant::now();
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {
                if start.elapsed() >= timeout {
                    let mut note = String::new();
                    let _ = file.seek(SeekFrom::Start(0));
                    let _ = file.read_to_string(&mut note);
                    let note = note.trim();
                    return Err(Error::Locked {
                        name: name.to_owned(),
                        holder: if note.is_empty() {
                            "unknown holder".to_owned()
                        } else {
                            note.to_owned()
                        },
                        waited: timeout,
                    });
                }
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(Error::Io {
                    op: "lock",
                    path,
                    source: e.into(),
                });
            }
        }
    }

    let write_note = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(holder.as_bytes())?;
        file.flush()
    };
    write_note(&mut file).map_err(|source| Error::Io {
        op: "write lock file",
        path: path.clone(),
        source,
    })?;
    Ok(DeploymentLock { file, path })
}
