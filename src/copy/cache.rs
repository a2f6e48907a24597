//! The on-disk NAR cache: each NAR compressed once with zstd, keyed by blake3 of its narHash.
//!
//! Layer: `copy`. Uses `daemon` to read NARs and `store` for hashes; no SSH, no scheduling.
//!
//! Format: one file per NAR, `<blake3(narHash as "sha256:nix32")>.nar.zst`, a sequence of
//! independent zstd frames of up to [`CHUNK`] bytes of NAR each. Frames are compressed in
//! parallel on rayon, and zstd stores an incompressible block raw, so random data grows by a few
//! bytes per 128 KiB block, never more. A file appears under its final name only once complete
//! (written to a temp name, then renamed), so a crash never leaves a truncated entry behind.
//! Reading one back checks size and sha256 against the narHash, and the last chunk is released
//! only after that check: a corrupt entry can never complete an upload; it is removed instead.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::store::{Hash, ValidPathInfo};

use super::endpoint::Client;
use super::{Error, Result};

/// NAR bytes per zstd frame.
pub const CHUNK: usize = 1 << 20;
/// Frames being compressed at once per NAR (bounds memory: about 2 × this × CHUNK).
const IN_FLIGHT: usize = 4;
/// Decompressed bytes handed to an uploader at a time.
const READ_CHUNK: usize = 256 * 1024;

/// A directory of compressed NARs.
#[derive(Debug, Clone)]
pub struct NarCache {
    dir: PathBuf,
    level: i32,
}

/// What filling one entry cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filled {
    pub nar_bytes: u64,
    pub compressed_bytes: u64,
}

impl NarCache {
    /// `$FERRY_CACHE_DIR`, else `$XDG_CACHE_HOME/ferry/nar`, else `~/.cache/ferry/nar`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("FERRY_CACHE_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| crate::ssh::config::home_dir().map(|h| h.join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("ferry/nar")
    }

    /// A cache in `dir` (created if missing), compressing at zstd `level`.
    pub fn open(dir: &Path, level: i32) -> Result<NarCache> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Cache {
            op: "create",
            path: dir.to_owned(),
            source,
        })?;
        Ok(NarCache {
            dir: dir.to_owned(),
            level,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a NAR with this narHash.
    pub fn entry(&self, nar_hash: &Hash) -> PathBuf {
        let key = blake3::hash(nar_hash.to_typed_nix32().as_bytes());
        self.dir.join(format!("{}.nar.zst", key.to_hex()))
    }

    /// The compressed size of a complete entry, if there is one.
    pub fn lookup(&self, nar_hash: &Hash) -> Option<u64> {
        std::fs::metadata(self.entry(nar_hash))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Read the NAR of `info` from `client` (NarFromPath, checked against narSize and narHash as
    /// it streams), compress it and store it.
    /// `host` names the source in errors.
    pub async fn fill(
        &self,
        client: &mut Client,
        info: &ValidPathInfo,
        host: &str,
    ) -> Result<Filled> {
        let final_path = self.entry(&info.nar_hash);
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let io_err = |op, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Cache { op, path, source }
        };
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(io_err("create", &tmp))?;
        let (mut pipe_w, pipe_r) = tokio::io::duplex(CHUNK);
        let level = self.level;
        let reader = async move {
            let r = client.nar_from_path_with_info(info, &mut pipe_w).await;
            // Closing the pipe ends the compressor's input, also on error.
            let _ = pipe_w.shutdown().await;
            r
        };
        let writer = compress_into(pipe_r, file, level, &tmp);
        let (read, written) = tokio::join!(reader, writer);
        let result = match (read, written) {
            (Err(source), _) => Err(Error::Daemon {
                host: host.to_string(),
                source: Box::new(source),
            }),
            (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(compressed_bytes)) => Ok(Filled {
                nar_bytes: info.nar_size,
                compressed_bytes,
            }),
        };
        match result {
            Ok(f) => {
                tokio::fs::rename(&tmp, &final_path)
                    .await
                    .map_err(io_err("rename", &final_path))?;
                Ok(f)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// Stream the NAR of `info` from the cache into `sink`, decompressing on a blocking thread.
    /// Fails with [`Error::CacheCorrupt`] (and removes the entry) if it does not match narSize
    /// and narHash; in that case the last chunk is never written. A failing `sink` is reported
    /// as [`Error::Daemon`] with [`crate::daemon::Error::Sink`] (and no host).
    pub async fn stream_to<S>(&self, info: &ValidPathInfo, sink: &mut S) -> Result<u64>
    where
        S: AsyncWrite + Unpin + ?Sized,
    {
        let path = self.entry(&info.nar_hash);
        let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>>>(4);
        let expected = info.clone();
        let blocking_path = path.clone();
        let worker =
            tokio::task::spawn_blocking(move || decompress_checked(&blocking_path, &expected, &tx));
        let mut total = 0u64;
        let mut failure = None;
        while let Some(msg) = rx.recv().await {
            match msg {
                Ok(chunk) => {
                    if let Err(source) = sink.write_all(&chunk).await {
                        // The destination failed, not the cache: reported as the daemon
                        // client's sink error, which it attributes to its own connection.
                        failure = Some(Error::Daemon {
                            host: String::new(),
                            source: Box::new(crate::daemon::Error::Sink {
                                op: crate::daemon::Op::AddMultipleToStore,
                                source,
                            }),
                        });
                        break;
                    }
                    total += chunk.len() as u64;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Dropping the receiver stops the worker at its next send.
        drop(rx);
        let _ = worker.await;
        match failure {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }
}

/// Read NAR bytes from `input` in [`CHUNK`]s, compress each on rayon into its own zstd frame and
/// append the frames to `file` in order. Returns the compressed size.
async fn compress_into(
    mut input: tokio::io::DuplexStream,
    mut file: tokio::fs::File,
    level: i32,
    path: &Path,
) -> Result<u64> {
    let io_err = |op| {
        let path = path.to_owned();
        move |source| Error::Cache { op, path, source }
    };
    let mut pending: VecDeque<oneshot::Receiver<std::io::Result<Vec<u8>>>> = VecDeque::new();
    let mut written = 0u64;
    let mut eof = false;
    while !eof || !pending.is_empty() {
        if !eof && pending.len() < IN_FLIGHT {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                let n = input
                    .read(&mut chunk[filled..])
                    .await
                    .map_err(io_err("read"))?;
                if n == 0 {
                    eof = true;
                    break;
                }
                filled += n;
            }
            chunk.truncate(filled);
            if !chunk.is_empty() {
                let (tx, rx) = oneshot::channel();
                rayon::spawn(move || {
                    let _ = tx.send(zstd::bulk::compress(&chunk, level));
                });
                pending.push_back(rx);
            }
            continue;
        }
        if let Some(rx) = pending.pop_front() {
            let frame = rx
                .await
                .map_err(|_| std::io::Error::other("compressor thread vanished"))
                .and_then(|r| r)
                .map_err(io_err("compress"))?;
            file.write_all(&frame).await.map_err(io_err("write"))?;
            written += frame.len() as u64;
        }
    }
    file.flush().await.map_err(io_err("write"))?;
    Ok(written)
}

/// Decompress an entry and send it in chunks, holding back the last one until size and sha256
/// are checked. Runs on a blocking thread.
fn decompress_checked(path: &Path, info: &ValidPathInfo, tx: &mpsc::Sender<Result<Vec<u8>>>) {
    let cache_err = |op, source| Error::Cache {
        op,
        path: path.to_owned(),
        source,
    };
    let corrupt = || {
        let _ = std::fs::remove_file(path);
        Error::CacheCorrupt {
            path: info.path.clone(),
        }
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(cache_err("open", e)));
            return;
        }
    };
    let mut decoder = match zstd::stream::read::Decoder::new(file) {
        Ok(d) => d,
        Err(e) => {
            let _ = tx.blocking_send(Err(cache_err("open", e)));
            return;
        }
    };
    let mut hasher = sha2::Sha256::default();
    let mut held: Option<Vec<u8>> = None;
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut filled = 0;
        let mut eof = false;
        while filled < READ_CHUNK {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    let _ = tx.blocking_send(Err(corrupt()));
                    return;
                }
            }
        }
        buf.truncate(filled);
        total += filled as u64;
        if total > info.nar_size {
            let _ = tx.blocking_send(Err(corrupt()));
            return;
        }
        sha2::Digest::update(&mut hasher, &buf);
        if !buf.is_empty()
            && let Some(prev) = held.replace(buf)
            && tx.blocking_send(Ok(prev)).is_err()
        {
            return;
        }
        if eof {
            break;
        }
    }
    let digest: [u8; 32] = sha2::Digest::finalize(hasher).into();
    if total != info.nar_size || Hash::from_sha256(digest) != info.nar_hash {
        let _ = tx.blocking_send(Err(corrupt()));
        return;
    }
    if let Some(last) = held {
        let _ = tx.blocking_send(Ok(last));
    }
}
