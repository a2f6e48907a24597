//! The tokio client: drives the pure core over any `AsyncRead` + `AsyncWrite` pair (the local
//! unix socket, or a channel the ssh layer hands over).
//!
//! Layer: `daemon` (tokio shell). Must not know about ssh or anything above `store`.
//!
//! # Cancellation and failure contract
//!
//! Every operation marks the connection *poisoned* when it starts and clears the mark only once
//! the reply has been read completely (or the daemon reported an error and the stream is known to
//! be in sync). If the future of an operation is dropped half-way (a timeout, a `select!`), or an
//! I/O, protocol or upload-source error happens in the middle, the connection stays poisoned and
//! every later call fails with [`Error::Poisoned`]: drop it and open a new one. A daemon error
//! reported while the daemon was still reading the arguments makes the daemon close the
//! connection; the next call then fails with [`Error::Disconnected`] or [`Error::Io`].
//!
//! The client itself has no timeouts: a daemon that dies gives EOF, which is reported at once.
//! Wrap calls in `tokio::time::timeout` where a hung (alive but silent) peer must be bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::UnboundedSender;

use crate::store::nar::NarValidator;
use crate::store::{Hash, NarError, StorePath, ValidPathInfo};

use super::framed::FramedWriter;
use super::handshake::{self, ServerInfo, Trust};
use super::op::Op;
use super::proto::{
    self, BasicDerivation, BuildMode, BuildResult, ClientSettings, ContentAddressMethod,
    DerivedPath, KeyedBuildResult, Missing,
};
use super::stderr::{self, Progress, StderrMsg};
use super::version::ProtocolVersion;
use super::wire::{DResult, DecodeError, Decoder, Encoder, FRAME_SIZE};
use super::{DaemonError, Error, Result};

/// Where the local daemon listens unless `NIX_DAEMON_SOCKET_PATH` says otherwise.
pub const DEFAULT_SOCKET: &str = "/nix/var/nix/daemon-socket/socket";

/// The local daemon socket: `NIX_DAEMON_SOCKET_PATH`, or [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    match std::env::var_os("NIX_DAEMON_SOCKET_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// A client on the local unix socket.
pub type LocalClient = DaemonClient<OwnedReadHalf, OwnedWriteHalf>;

/// How long to wait, after a write failed, for the error the daemon may have sent before it
/// closed the connection.
const ERROR_GRACE: Duration = Duration::from_secs(2);

const READ_CHUNK: usize = 64 * 1024;

/// The read side: a buffer in front of the stream, and the stderr loop.
struct Reader<R> {
    io: R,
    buf: Vec<u8>,
    start: usize,
    version: ProtocolVersion,
    progress: Option<UnboundedSender<Progress>>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Read more bytes into the buffer; EOF is an error (the daemon never closes mid-reply).
    async fn fill(&mut self, op: Op) -> Result<()> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let n = self
            .io
            .read_buf(&mut self.buf)
            .await
            .map_err(|source| Error::Io { op, source })?;
        if n == 0 {
            return Err(Error::Disconnected { op });
        }
        Ok(())
    }

    /// Decode one value, reading more until the decoder has enough.
    async fn decode<T>(
        &mut self,
        op: Op,
        mut f: impl FnMut(&mut Decoder<'_>) -> DResult<T>,
    ) -> Result<T> {
        loop {
            let mut d = Decoder::new(self.buffered());
            match f(&mut d) {
                Ok(v) => {
                    self.start += d.position();
                    return Ok(v);
                }
                Err(DecodeError::Incomplete) => self.fill(op).await?,
                Err(DecodeError::Invalid(message)) => {
                    return Err(Error::Protocol { op, message });
                }
            }
        }
    }

    /// Process stderr messages until `STDERR_LAST` (Ok) or `STDERR_ERROR` (a [`DaemonError`]).
    async fn stderr_loop(&mut self, op: Op) -> Result<()> {
        let v = self.version;
        loop {
            match self.decode(op, |d| stderr::decode(d, v)).await? {
                StderrMsg::Last => return Ok(()),
                StderrMsg::Error(e) => return Err(DaemonError::from_remote(op, e).into()),
                StderrMsg::Next(line) => {
                    tracing::info!(target: "ferry::daemon", %op, "{}", stderr::strip_ansi(line.trim_end()));
                }
                StderrMsg::Progress(p) => {
                    if let Progress::Result { fields, .. } = &p {
                        tracing::trace!(target: "ferry::daemon", %op, ?fields, "result");
                    }
                    if let Some(tx) = &self.progress {
                        // A closed receiver only means nobody watches progress any more.
                        let _ = tx.send(p);
                    }
                }
                StderrMsg::Read(_) | StderrMsg::Write(_) => {
                    return Err(Error::Protocol {
                        op,
                        message: "the daemon asked for a data transfer (STDERR_READ/WRITE) that \
                                  ferry never requests"
                            .into(),
                    });
                }
            }
        }
    }

    /// Copy the NAR of `info` (exactly narSize raw bytes) to `sink`, validating its structure
    /// and checking its hash on the way.
    async fn copy_nar<S>(&mut self, op: Op, info: &ValidPathInfo, sink: &mut S) -> Result<()>
    where
        S: AsyncWrite + Unpin + ?Sized,
    {
        let mut check = NarCheck::new(info);
        let mut left = info.nar_size;
        while left > 0 {
            if self.buffered().is_empty() {
                self.fill(op).await?;
            }
            let avail = self.buffered();
            let n = avail.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = &avail[..n];
            check.feed(op, chunk)?;
            sink.write_all(chunk)
                .await
                .map_err(|source| Error::Sink { op, source })?;
            self.start += n;
            left -= n as u64;
        }
        sink.flush()
            .await
            .map_err(|source| Error::Sink { op, source })?;
        check.finish(op)
    }
}

/// Validates a NAR as it streams past (structure, as the store's hardened decoder sees it) and
/// checks it ends exactly at narSize with the expected narHash. A daemon is trusted with our
/// store, but a remote one may be compromised, and a desynchronised stream must not be mistaken
/// for a NAR.
struct NarCheck {
    validator: NarValidator,
    path: StorePath,
    nar_hash: Hash,
}

impl NarCheck {
    fn new(info: &ValidPathInfo) -> Self {
        NarCheck {
            validator: NarValidator::new(),
            path: info.path.clone(),
            nar_hash: info.nar_hash.clone(),
        }
    }

    fn feed(&mut self, op: Op, chunk: &[u8]) -> Result<()> {
        let used = self
            .validator
            .feed(chunk)
            .map_err(|source| self.err(op, source))?;
        if used < chunk.len() {
            let offset = self.validator.size();
            return Err(self.err(op, NarError::TrailingData { offset }));
        }
        Ok(())
    }

    fn err(&self, op: Op, source: NarError) -> Error {
        Error::Nar {
            op,
            path: self.path.clone(),
            source,
        }
    }

    fn finish(self, op: Op) -> Result<()> {
        let NarCheck {
            validator,
            path,
            nar_hash,
        } = self;
        let summary = validator.finish().map_err(|source| Error::Nar {
            op,
            path: path.clone(),
            source,
        })?;
        if summary.nar_hash == nar_hash {
            Ok(())
        } else {
            Err(Error::NarMismatch { op, path })
        }
    }
}

/// A connection to a Nix daemon. See the module docs for the cancellation contract.
pub struct DaemonClient<R, W> {
    rd: Reader<R>,
    wr: W,
    info: ServerInfo,
    poisoned: bool,
}

impl LocalClient {
    /// Connect to the local daemon ([`socket_path`]) and handshake.
    pub async fn connect_local() -> Result<Self> {
        Self::connect_unix(&socket_path()).await
    }

    /// Connect to a daemon socket and handshake.
    pub async fn connect_unix(path: &Path) -> Result<Self> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| Error::Connect {
                path: path.to_owned(),
                source,
            })?;
        let (r, w) = stream.into_split();
        Self::handshake(r, w, &ClientSettings::default()).await
    }
}

impl<S> DaemonClient<tokio::io::ReadHalf<S>, tokio::io::WriteHalf<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Handshake over one bidirectional stream (e.g. an ssh channel running `nix-daemon --stdio`).
    pub async fn from_stream(stream: S, settings: &ClientSettings) -> Result<Self> {
        let (r, w) = tokio::io::split(stream);
        Self::handshake(r, w, settings).await
    }
}

impl<R, W> DaemonClient<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// Handshake over a read and a write half, then send `settings` with SetOptions.
    ///
    /// The hello and SetOptions go out in a single write (SetOptions' layout is the same for every
    /// version ferry supports), so a connection costs one round trip.
    pub async fn handshake(r: R, mut w: W, settings: &ClientSettings) -> Result<Self> {
        let op = Op::Handshake;
        let client = ProtocolVersion::CLIENT;
        let mut out = Encoder::new();
        out.raw(&handshake::client_hello(client));
        proto::begin(&mut out, Op::SetOptions);
        proto::put_settings(&mut out, settings, ProtocolVersion::MINIMUM);
        let mut rd = Reader {
            io: r,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            version: ProtocolVersion::MINIMUM,
            progress: None,
        };
        let write = async {
            w.write_all(out.as_slice()).await?;
            w.flush().await
        };
        let read = async {
            let (daemon, negotiated) = rd
                .decode(op, |d| handshake::decode_server_version(d, client))
                .await?;
            rd.version = negotiated;
            let info = rd
                .decode(op, |d| handshake::decode_server_info(d, daemon, negotiated))
                .await?;
            rd.stderr_loop(op).await?;
            rd.stderr_loop(Op::SetOptions).await?;
            Ok::<_, Error>(info)
        };
        let (wres, rres) = tokio::join!(write, read);
        let info = match (wres, rres) {
            (_, Ok(info)) => info,
            (_, Err(e @ Error::Daemon(_))) => return Err(e),
            (Err(source), Err(_)) => return Err(Error::Io { op, source }),
            (Ok(()), Err(e)) => return Err(e),
        };
        tracing::debug!(
            target: "ferry::daemon",
            daemon = %info.daemon_version,
            negotiated = %info.negotiated,
            nix = info.nix_version.as_deref().unwrap_or("?"),
            trust = ?info.trust,
            "connected"
        );
        Ok(DaemonClient {
            rd,
            wr: w,
            info,
            poisoned: false,
        })
    }

    /// What the daemon said in the handshake.
    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// The negotiated protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.info.negotiated
    }

    /// Whether the daemon said it trusts us (only known from 1.35 on).
    pub fn trust(&self) -> Trust {
        self.info.trust
    }

    /// True once an operation was cancelled or failed mid-stream; see the module docs.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Send activities and results to `tx` (build logs, progress). Logs go to `tracing`.
    pub fn set_progress(&mut self, tx: UnboundedSender<Progress>) {
        self.rd.progress = Some(tx);
    }

    fn begin(&mut self, op: Op) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let needed = op.since();
        if !self.version().has(needed) {
            return Err(Error::Unsupported {
                op,
                needed,
                negotiated: self.version(),
            });
        }
        self.poisoned = true;
        Ok(())
    }

    /// Clear the poison mark if the stream is known to be in sync after `r`.
    fn settle<T>(&mut self, r: Result<T>) -> Result<T> {
        if matches!(r, Ok(_) | Err(Error::Daemon(_))) {
            self.poisoned = false;
        }
        r
    }

    fn request(&self, op: Op) -> Encoder {
        let mut e = Encoder::new();
        proto::begin(&mut e, op);
        e
    }

    /// Write a request. If the write fails because the daemon hung up, report the error it sent
    /// before hanging up, if any.
    async fn send(&mut self, op: Op, bytes: &[u8]) -> Result<()> {
        let res = async {
            self.wr.write_all(bytes).await?;
            self.wr.flush().await
        }
        .await;
        match res {
            Ok(()) => Ok(()),
            Err(source) => Err(self.error_after_write_failure(op, source).await),
        }
    }

    async fn error_after_write_failure(&mut self, op: Op, source: io::Error) -> Error {
        match tokio::time::timeout(ERROR_GRACE, self.rd.stderr_loop(op)).await {
            Ok(Err(e @ Error::Daemon(_))) => e,
            _ => Error::Io { op, source },
        }
    }

    /// One request, the stderr loop, one reply.
    async fn call<T>(
        &mut self,
        op: Op,
        req: Encoder,
        reply: impl FnMut(&mut Decoder<'_>) -> DResult<T>,
    ) -> Result<T> {
        self.begin(op)?;
        let r = async {
            self.send(op, req.as_slice()).await?;
            self.rd.stderr_loop(op).await?;
            self.rd.decode(op, reply).await
        }
        .await;
        self.settle(r)
    }

    /// Send `n` requests in one write and read the `n` replies in order, concurrently, so that
    /// neither side's socket buffer can fill up and deadlock.
    async fn pipeline<T>(
        &mut self,
        op: Op,
        reqs: Encoder,
        n: usize,
        mut reply: impl FnMut(usize, &mut Decoder<'_>) -> DResult<T>,
    ) -> Result<Vec<T>> {
        self.begin(op)?;
        let Self { rd, wr, .. } = self;
        let write = async {
            wr.write_all(reqs.as_slice()).await?;
            wr.flush().await
        };
        let read = async {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                rd.stderr_loop(op).await?;
                out.push(rd.decode(op, |d| reply(i, d)).await?);
            }
            Ok::<_, Error>(out)
        };
        let (wres, rres) = tokio::join!(write, read);
        let r = match (wres, rres) {
            (_, Ok(v)) => Ok(v),
            (Err(source), Err(e)) if !matches!(e, Error::Daemon(_)) => {
                Err(Error::Io { op, source })
            }
            (_, Err(e)) => Err(e),
        };
        // A daemon error part-way leaves later replies unread: only a full read is in sync.
        if r.is_ok() {
            self.poisoned = false;
        }
        r
    }

    /// Upload: run `writer` (which sends the request and its framed data) while reading the
    /// stderr channel, so that the daemon's messages cannot block it and its error is seen at
    /// once.
    async fn upload<'s, F>(rd: &mut Reader<R>, op: Op, writer: F) -> Result<()>
    where
        F: Future<Output = Result<()>> + 's,
    {
        tokio::pin!(writer);
        let reader = rd.stderr_loop(op);
        tokio::pin!(reader);
        let mut written = false;
        loop {
            tokio::select! {
                w = &mut writer, if !written => match w {
                    Ok(()) => written = true,
                    Err(Error::Io { source, .. }) => {
                        // The daemon may have hung up after reporting why.
                        return match tokio::time::timeout(ERROR_GRACE, &mut reader).await {
                            Ok(Err(e @ Error::Daemon(_))) => Err(e),
                            _ => Err(Error::Io { op, source }),
                        };
                    }
                    Err(e) => return Err(e),
                },
                r = &mut reader => {
                    return match r {
                        Ok(()) if !written => Err(Error::Protocol {
                            op,
                            message: "the daemon finished before the upload did".into(),
                        }),
                        other => other,
                    };
                }
            }
        }
    }

    // ---------------------------------------------------------------- queries

    /// IsValidPath.
    pub async fn is_valid_path(&mut self, path: &StorePath) -> Result<bool> {
        let op = Op::IsValidPath;
        let mut e = self.request(op);
        proto::put_path(&mut e, path);
        self.call(op, e, |d| d.bool()).await
    }

    /// QueryValidPaths: the subset of `paths` that is valid. With `substitute`, the daemon first
    /// tries to substitute the missing ones (≥1.27; ignored before).
    pub async fn query_valid_paths(
        &mut self,
        paths: &BTreeSet<StorePath>,
        substitute: bool,
    ) -> Result<BTreeSet<StorePath>> {
        let op = Op::QueryValidPaths;
        let mut e = self.request(op);
        proto::put_paths(&mut e, paths);
        if self.version().has(ProtocolVersion::QUERY_VALID_SUBSTITUTE) {
            e.bool(substitute);
        }
        self.call(op, e, proto::get_paths).await
    }

    /// QueryPathInfo: `None` if the path is not valid.
    pub async fn query_path_info(&mut self, path: &StorePath) -> Result<Option<ValidPathInfo>> {
        let op = Op::QueryPathInfo;
        let v = self.version();
        let mut e = self.request(op);
        proto::put_path(&mut e, path);
        self.call(op, e, |d| proto::get_query_path_info_reply(d, path, v))
            .await
    }

    /// QueryPathInfo for many paths, pipelined on this connection (one round trip).
    pub async fn query_path_infos(
        &mut self,
        paths: &[StorePath],
    ) -> Result<Vec<Option<ValidPathInfo>>> {
        let op = Op::QueryPathInfo;
        let v = self.version();
        let mut e = Encoder::new();
        for p in paths {
            proto::begin(&mut e, op);
            proto::put_path(&mut e, p);
        }
        self.pipeline(op, e, paths.len(), |i, d| {
            proto::get_query_path_info_reply(d, &paths[i], v)
        })
        .await
    }

    /// QueryMissing: what building `targets` would build, substitute, or cannot know.
    pub async fn query_missing(&mut self, targets: &[DerivedPath]) -> Result<Missing> {
        let op = Op::QueryMissing;
        let v = self.version();
        let mut e = self.request(op);
        proto::put_derived_paths(&mut e, targets, v);
        self.call(op, e, proto::get_missing).await
    }

    /// QueryDerivationOutputMap: output name → path (`None` for unknown floating outputs).
    pub async fn query_derivation_output_map(
        &mut self,
        drv: &StorePath,
    ) -> Result<BTreeMap<String, Option<StorePath>>> {
        let op = Op::QueryDerivationOutputMap;
        let mut e = self.request(op);
        proto::put_path(&mut e, drv);
        self.call(op, e, proto::get_output_map).await
    }

    // ---------------------------------------------------------------- small mutations

    async fn path_op(&mut self, op: Op, path: &StorePath) -> Result<()> {
        let mut e = self.request(op);
        proto::put_path(&mut e, path);
        self.call(op, e, proto::get_ok).await
    }

    /// AddTempRoot: keep `path` alive for as long as this connection lives.
    pub async fn add_temp_root(&mut self, path: &StorePath) -> Result<()> {
        self.path_op(Op::AddTempRoot, path).await
    }

    /// EnsurePath: make `path` valid, substituting it if needed.
    pub async fn ensure_path(&mut self, path: &StorePath) -> Result<()> {
        self.path_op(Op::EnsurePath, path).await
    }

    /// AddSignatures (trusted clients only).
    pub async fn add_signatures(&mut self, path: &StorePath, sigs: &[String]) -> Result<()> {
        let op = Op::AddSignatures;
        let mut e = self.request(op);
        proto::put_path(&mut e, path);
        e.strs(sigs);
        self.call(op, e, proto::get_ok).await
    }

    /// SetOptions (already sent once by the handshake).
    pub async fn set_options(&mut self, settings: &ClientSettings) -> Result<()> {
        let op = Op::SetOptions;
        let v = self.version();
        let mut e = self.request(op);
        proto::put_settings(&mut e, settings, v);
        self.call(op, e, |_| Ok(())).await
    }

    // ---------------------------------------------------------------- builds

    /// BuildPaths: fails with a [`DaemonError`] if any build fails.
    pub async fn build_paths(&mut self, targets: &[DerivedPath], mode: BuildMode) -> Result<()> {
        let op = Op::BuildPaths;
        let v = self.version();
        let mut e = self.request(op);
        proto::put_derived_paths(&mut e, targets, v);
        if v.has(ProtocolVersion::BUILD_MODE) {
            e.u64(mode as u64);
        }
        self.call(op, e, proto::get_ok).await
    }

    /// BuildPathsWithResults (≥1.34): one result per target.
    pub async fn build_paths_with_results(
        &mut self,
        targets: &[DerivedPath],
        mode: BuildMode,
    ) -> Result<Vec<KeyedBuildResult>> {
        let op = Op::BuildPathsWithResults;
        let v = self.version();
        let mut e = self.request(op);
        proto::put_derived_paths(&mut e, targets, v);
        e.u64(mode as u64);
        self.call(op, e, |d| proto::get_keyed_build_results(d, v))
            .await
    }

    /// BuildDerivation: build a derivation sent inline (remote-builder style). Input-addressed
    /// derivations need a trusted client.
    pub async fn build_derivation(
        &mut self,
        drv_path: &StorePath,
        drv: &BasicDerivation,
        mode: BuildMode,
    ) -> Result<BuildResult> {
        let op = Op::BuildDerivation;
        let v = self.version();
        let mut e = self.request(op);
        proto::put_path(&mut e, drv_path);
        proto::put_basic_derivation(&mut e, drv);
        e.u64(mode as u64);
        self.call(op, e, |d| proto::get_build_result(d, v)).await
    }

    // ---------------------------------------------------------------- NARs out

    /// NarFromPath for a path whose info is known: stream its NAR into `sink`, checking size and
    /// sha256 against `info`. Memory use is one read buffer, whatever the NAR size.
    pub async fn nar_from_path_with_info<S>(
        &mut self,
        info: &ValidPathInfo,
        sink: &mut S,
    ) -> Result<()>
    where
        S: AsyncWrite + Unpin + ?Sized,
    {
        let op = Op::NarFromPath;
        self.begin(op)?;
        let mut e = self.request(op);
        proto::put_path(&mut e, &info.path);
        let r = async {
            self.send(op, e.as_slice()).await?;
            self.rd.stderr_loop(op).await?;
            self.rd.copy_nar(op, info, sink).await
        }
        .await;
        // A hash mismatch still consumed exactly narSize bytes: the stream is in sync.
        if matches!(
            r,
            Ok(()) | Err(Error::Daemon(_)) | Err(Error::NarMismatch { .. })
        ) {
            self.poisoned = false;
        }
        r
    }

    /// NarFromPath: QueryPathInfo, then the NAR streamed into `sink` (checked against the info).
    /// Returns the path's info; fails with [`Error::InvalidPath`] if the path is not valid.
    ///
    /// The two requests are not pipelined on purpose: a daemon asked for the NAR of an invalid
    /// path has already sent `STDERR_LAST` when it notices, and then drops the connection. When
    /// the info is known (e.g. from [`super::closure()`]), use [`Self::nar_from_path_with_info`].
    pub async fn nar_from_path<S>(
        &mut self,
        path: &StorePath,
        sink: &mut S,
    ) -> Result<ValidPathInfo>
    where
        S: AsyncWrite + Unpin + ?Sized,
    {
        let info = self.info_for_nar(path).await?;
        self.nar_from_path_with_info(&info, sink).await?;
        Ok(info)
    }

    /// NarFromPath as an `AsyncRead` of exactly the NAR's bytes. The hash is checked when the
    /// last byte is read (a mismatch is an `InvalidData` read error). Dropping the reader early
    /// poisons the connection.
    pub async fn nar_reader(&mut self, path: &StorePath) -> Result<NarReader<'_, R, W>> {
        let info = self.info_for_nar(path).await?;
        self.nar_reader_with_info(info).await
    }

    /// [`Self::nar_reader`] for a path whose info is known.
    pub async fn nar_reader_with_info(
        &mut self,
        info: ValidPathInfo,
    ) -> Result<NarReader<'_, R, W>> {
        let op = Op::NarFromPath;
        self.begin(op)?;
        let mut e = self.request(op);
        proto::put_path(&mut e, &info.path);
        let r = async {
            self.send(op, e.as_slice()).await?;
            self.rd.stderr_loop(op).await
        }
        .await;
        if let Err(e) = r {
            if matches!(e, Error::Daemon(_)) {
                self.poisoned = false;
            }
            return Err(e);
        }
        Ok(NarReader {
            left: info.nar_size,
            check: Some(NarCheck::new(&info)),
            info,
            client: self,
        })
    }

    async fn info_for_nar(&mut self, path: &StorePath) -> Result<ValidPathInfo> {
        self.query_path_info(path)
            .await?
            .ok_or_else(|| Error::InvalidPath {
                op: Op::NarFromPath,
                path: path.clone(),
            })
    }

    // ---------------------------------------------------------------- NARs in

    /// AddToStoreNar (≥1.23): upload one path, its NAR streamed from `nar` in frames. The
    /// references must already be valid on the daemon. Untrusted clients need `info.sigs` to hold
    /// a signature the daemon trusts (`dont_check_sigs` is ignored for them).
    pub async fn add_to_store_nar<N>(
        &mut self,
        info: &ValidPathInfo,
        nar: &mut N,
        repair: bool,
        dont_check_sigs: bool,
    ) -> Result<()>
    where
        N: AsyncRead + Unpin + ?Sized,
    {
        let op = Op::AddToStoreNar;
        self.begin(op)?;
        let mut e = self.request(op);
        proto::put_path_info(&mut e, info);
        e.bool(repair).bool(dont_check_sigs);
        let Self { rd, wr, .. } = self;
        let expected = info.nar_size;
        let writer = async move {
            wr.write_all(e.as_slice())
                .await
                .map_err(|source| Error::Io { op, source })?;
            let mut fw = FramedWriter::new(wr);
            let n = copy_into_frames(op, nar, &mut fw).await?;
            if n != expected {
                return Err(Error::Invalid {
                    op,
                    message: format!(
                        "NAR of {} has {n} bytes, but its narSize is {expected}",
                        info.path
                    ),
                });
            }
            fw.finish()
                .await
                .map_err(|source| Error::Io { op, source })?;
            Ok(())
        };
        let r = Self::upload(rd, op, writer).await;
        self.settle_upload(r)
    }

    fn settle_upload(&mut self, r: Result<()>) -> Result<()> {
        // After a daemon error mid-upload we stopped sending frames: only success is in sync.
        if r.is_ok() {
            self.poisoned = false;
        }
        r
    }

    /// AddMultipleToStore (≥1.32): upload many paths in one framed stream, each path's info
    /// followed by its NAR, which `nar_for` writes into the sink it is given (for example with
    /// another client's [`Self::nar_from_path_with_info`]). `infos` must be in dependency order,
    /// references first.
    ///
    /// **Only send paths the daemon is known not to have** (ask with [`Self::query_valid_paths`]):
    /// on Nix < 2.18 (including 2.8) an already-valid path is skipped without consuming its NAR,
    /// the stream desynchronises and the daemon fails with `not an absolute path:
    /// 'nix-archive-1'` (Nix issue #6253). For the same reason never run two uploads that may
    /// carry the same path to one daemon at the same time. [`Self::add_to_store_nar`] is the safe
    /// one-path fallback.
    pub async fn add_multiple_to_store<F>(
        &mut self,
        infos: &[ValidPathInfo],
        repair: bool,
        dont_check_sigs: bool,
        mut nar_for: F,
    ) -> Result<()>
    where
        F: AsyncFnMut(&ValidPathInfo, &mut (dyn AsyncWrite + Unpin + Send)) -> Result<()>,
    {
        let op = Op::AddMultipleToStore;
        self.begin(op)?;
        let mut e = self.request(op);
        e.bool(repair).bool(dont_check_sigs);
        let Self { rd, wr, .. } = self;
        let writer = async move {
            wr.write_all(e.as_slice())
                .await
                .map_err(|source| Error::Io { op, source })?;
            let mut fw = FramedWriter::new(wr);
            let io = |source| Error::Io { op, source };
            let mut head = Encoder::new();
            head.u64(infos.len() as u64);
            fw.write_all(head.as_slice()).await.map_err(io)?;
            for info in infos {
                head.clear();
                proto::put_path_info(&mut head, info);
                fw.write_all(head.as_slice()).await.map_err(io)?;
                let before = fw.bytes_written();
                // A sink error here is a write to *this* connection failing: report it as ours,
                // so that the daemon's own error (if it sent one) is looked for.
                nar_for(info, &mut fw).await.map_err(|e| match e {
                    Error::Sink { source, .. } => Error::Io { op, source },
                    e => e,
                })?;
                let n = fw.bytes_written() - before;
                if n != info.nar_size {
                    return Err(Error::Invalid {
                        op,
                        message: format!(
                            "NAR of {} has {n} bytes, but its narSize is {}",
                            info.path, info.nar_size
                        ),
                    });
                }
            }
            fw.finish().await.map_err(io)?;
            Ok(())
        };
        let r = Self::upload(rd, op, writer).await;
        self.settle_upload(r)
    }

    /// AddToStore (≥1.25): add content-addressed data (a flat file, a NAR or text) and return
    /// the resulting path's info.
    pub async fn add_to_store<N>(
        &mut self,
        name: &str,
        method: ContentAddressMethod,
        references: &BTreeSet<StorePath>,
        repair: bool,
        data: &mut N,
    ) -> Result<ValidPathInfo>
    where
        N: AsyncRead + Unpin + ?Sized,
    {
        let op = Op::AddToStore;
        if !self.version().has(ProtocolVersion::NEW_ADD_TO_STORE) {
            return Err(Error::Unsupported {
                op,
                needed: ProtocolVersion::NEW_ADD_TO_STORE,
                negotiated: self.version(),
            });
        }
        self.begin(op)?;
        let v = self.version();
        let mut e = self.request(op);
        e.str(name).str(&method.to_wire());
        proto::put_paths(&mut e, references);
        e.bool(repair);
        let Self { rd, wr, .. } = self;
        let writer = async move {
            wr.write_all(e.as_slice())
                .await
                .map_err(|source| Error::Io { op, source })?;
            let mut fw = FramedWriter::new(wr);
            copy_into_frames(op, data, &mut fw).await?;
            fw.finish()
                .await
                .map_err(|source| Error::Io { op, source })?;
            Ok(())
        };
        let r = async {
            Self::upload(rd, op, writer).await?;
            rd.decode(op, |d| proto::get_path_info(d, v)).await
        }
        .await;
        if r.is_ok() {
            self.poisoned = false;
        }
        r
    }

    /// Add a text file (like `builtins.toFile`): AddToStore with `text:sha256` from 1.25 on,
    /// the obsolete AddTextToStore before.
    pub async fn add_text_to_store(
        &mut self,
        name: &str,
        text: &[u8],
        references: &BTreeSet<StorePath>,
    ) -> Result<StorePath> {
        if self.version().has(ProtocolVersion::NEW_ADD_TO_STORE) {
            let mut data = text;
            let info = self
                .add_to_store(
                    name,
                    ContentAddressMethod::Text,
                    references,
                    false,
                    &mut data,
                )
                .await?;
            return Ok(info.path);
        }
        let op = Op::AddTextToStore;
        let mut e = self.request(op);
        e.str(name).bytes(text);
        proto::put_paths(&mut e, references);
        self.call(op, e, proto::get_path).await
    }
}

/// Copy an upload source into frames; returns the byte count.
async fn copy_into_frames<N, W>(op: Op, src: &mut N, fw: &mut FramedWriter<'_, W>) -> Result<u64>
where
    N: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; FRAME_SIZE];
    let mut total = 0u64;
    loop {
        let n = src
            .read(&mut buf)
            .await
            .map_err(|source| Error::Source { op, source })?;
        if n == 0 {
            return Ok(total);
        }
        fw.write_all(&buf[..n])
            .await
            .map_err(|source| Error::Io { op, source })?;
        total += n as u64;
    }
}

/// The NAR of one path as an `AsyncRead`; see [`DaemonClient::nar_reader`].
pub struct NarReader<'a, R, W> {
    client: &'a mut DaemonClient<R, W>,
    info: ValidPathInfo,
    left: u64,
    check: Option<NarCheck>,
}

impl<R, W> NarReader<'_, R, W> {
    /// The info of the path being read (narSize, narHash, references…).
    pub fn info(&self) -> &ValidPathInfo {
        &self.info
    }
}

impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for NarReader<'_, R, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(Ok(()));
        }
        let rd = &mut this.client.rd;
        if rd.start == rd.buf.len() {
            // Refill the connection's buffer (no unsafe needed, unlike reading into `out`).
            rd.buf.clear();
            rd.start = 0;
            rd.buf.resize(READ_CHUNK, 0);
            let mut rb = ReadBuf::new(&mut rd.buf);
            let polled = Pin::new(&mut rd.io).poll_read(cx, &mut rb);
            let got = rb.filled().len();
            rd.buf.truncate(got);
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if got == 0 => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the Nix daemon closed the connection in the NAR of {}",
                            this.info.path
                        ),
                    )));
                }
                Poll::Ready(Ok(())) => {}
            }
        }
        let want = usize::try_from(this.left)
            .unwrap_or(usize::MAX)
            .min(out.remaining())
            .min(rd.buf.len() - rd.start);
        let chunk = &rd.buf[rd.start..rd.start + want];
        let op = Op::NarFromPath;
        let invalid = |e: Error| io::Error::new(io::ErrorKind::InvalidData, e);
        if let Some(check) = this.check.as_mut() {
            check.feed(op, chunk).map_err(invalid)?;
        }
        out.put_slice(chunk);
        rd.start += want;
        this.left -= want as u64;
        if this.left == 0 {
            if let Some(check) = this.check.take() {
                check.finish(op).map_err(invalid)?;
            }
            this.client.poisoned = false;
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn nar_of(contents: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, contents).unwrap();
        let mut out = Vec::new();
        crate::store::nar::dump_path(&f, &mut out).unwrap();
        out
    }

    fn info_for(nar: &[u8]) -> ValidPathInfo {
        ValidPathInfo::new(
            StorePath::from_base_name("dcgxgfrhy8mb76rg8f1djpw23cl3fzmx-a").unwrap(),
            Hash::sha256_of(nar),
            nar.len() as u64,
        )
    }

    #[test]
    fn nar_check_accepts_the_real_thing_in_any_chunking() {
        let nar = nar_of(b"hello\n");
        assert_eq!(nar.len(), 120);
        for step in [1, 7, 8, 120] {
            let mut c = NarCheck::new(&info_for(&nar));
            for chunk in nar.chunks(step) {
                c.feed(Op::NarFromPath, chunk).unwrap();
            }
            c.finish(Op::NarFromPath).unwrap();
        }
    }

    #[test]
    fn nar_check_rejects_garbage_trailing_data_truncation_and_wrong_hashes() {
        let nar = nar_of(b"hello\n");
        let op = Op::NarFromPath;
        let mut c = NarCheck::new(&info_for(&nar));
        assert!(matches!(c.feed(op, &[0xff; 120]), Err(Error::Nar { .. })));

        let mut long = nar.clone();
        long.extend_from_slice(&[0; 8]);
        let mut c = NarCheck::new(&info_for(&long));
        assert!(matches!(
            c.feed(op, &long),
            Err(Error::Nar {
                source: NarError::TrailingData { .. },
                ..
            })
        ));

        let mut c = NarCheck::new(&info_for(&nar));
        c.feed(op, &nar[..64]).unwrap();
        assert!(matches!(
            c.finish(op),
            Err(Error::Nar {
                source: NarError::Truncated { .. },
                ..
            })
        ));

        let mut info = info_for(&nar);
        info.nar_hash = Hash::sha256_of(b"something else");
        let mut c = NarCheck::new(&info);
        c.feed(op, &nar).unwrap();
        assert!(matches!(c.finish(op), Err(Error::NarMismatch { .. })));
    }
}
