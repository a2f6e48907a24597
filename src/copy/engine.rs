//! The copy engine: plan once, read each NAR once into the cache, fan out to every target.
//!
//! Layer: `copy`. See the module docs of [`super`] for the design; this file is the orchestration
//! (tasks, retries, cancellation, events and the final report).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use tokio::sync::{Mutex, Notify, mpsc, oneshot, watch};

use crate::daemon::{self, Op};
use crate::store::{SecretKey, StorePath, ValidPathInfo};

use super::cache::NarCache;
use super::endpoint::{Client, Connection, Endpoint};
use super::schedule::{Next, Schedule};
use super::{Error, Result};

/// What to copy where, and how.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub source: Endpoint,
    pub targets: Vec<Endpoint>,
    /// The closures of these paths are copied.
    pub roots: Vec<StorePath>,
    pub cache: NarCache,
    /// Store sessions (`nix-daemon --stdio` channels) per target.
    pub sessions_per_target: usize,
    /// Daemon connections reading NARs from the source at once.
    pub source_sessions: usize,
    /// Sign every uploaded path with this key (needed when the target user isn't trusted).
    pub sign_key: Option<SecretKey>,
    /// Reconnects per target after a connection-level failure.
    pub max_retries: u32,
    /// First reconnect delay; doubles each time.
    pub retry_backoff: Duration,
    /// Set to `true` to stop: every target's uploads are dropped (nothing half-registered).
    pub cancel: watch::Receiver<bool>,
}

impl CopyOptions {
    /// Defaults: 4 sessions per target, 2 source sessions, 3 retries from 500 ms.
    pub fn new(
        source: Endpoint,
        targets: Vec<Endpoint>,
        roots: Vec<StorePath>,
        cache: NarCache,
    ) -> Self {
        let (_tx, cancel) = watch::channel(false);
        CopyOptions {
            source,
            targets,
            roots,
            cache,
            sessions_per_target: 4,
            source_sessions: 2,
            sign_key: None,
            max_retries: 3,
            retry_backoff: Duration::from_millis(500),
            cancel,
        }
    }
}

/// Progress, as it happens. Targets are named by [`Endpoint::name`].
#[derive(Debug, Clone)]
pub enum Event {
    /// The closure is known.
    Closure { paths: usize, nar_bytes: u64 },
    /// A target said what it lacks.
    Planned {
        target: String,
        paths: usize,
        nar_bytes: u64,
        present: usize,
    },
    /// A NAR was read from the source (or found in the cache) and is ready to send.
    Ready {
        path: StorePath,
        nar_bytes: u64,
        compressed_bytes: u64,
        from_cache: bool,
    },
    /// A batch of paths was registered on a target.
    Copied {
        target: String,
        paths: usize,
        nar_bytes: u64,
    },
    /// A connection-level failure; reconnecting after `delay`.
    Retrying {
        target: String,
        attempt: u32,
        delay: Duration,
        error: String,
    },
    /// A target finished (successfully or not).
    Finished(TargetReport),
}

/// The outcome for one target.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TargetReport {
    pub target: String,
    /// Paths of the closure the target already held when first asked.
    pub present: usize,
    /// Paths registered on the target by this copy.
    pub paths_copied: usize,
    /// Paths still missing at the end (non-zero only on failure).
    pub paths_missing: usize,
    pub nar_bytes: u64,
    /// Bytes written to the target's store sessions (protocol included).
    pub wire_bytes: u64,
    pub retries: u32,
    pub seconds: f64,
    pub error: Option<String>,
}

impl TargetReport {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Counters of the shared source side.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// NarFromPath calls on the source daemon.
    pub nar_from_path: u64,
    pub nar_bytes_read: u64,
    /// NARs found complete in the cache (not read from the source).
    pub cache_hits: u64,
    pub cache_hit_bytes: u64,
    /// Compressed size of every NAR made ready (read or found in the cache).
    pub compressed_bytes: u64,
    /// NAR bytes of every NAR made ready.
    pub ready_nar_bytes: u64,
}

/// The outcome of a whole copy.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopyReport {
    pub closure_paths: usize,
    pub closure_nar_bytes: u64,
    pub targets: Vec<TargetReport>,
    pub stats: Stats,
    pub seconds: f64,
}

impl CopyReport {
    pub fn ok(&self) -> bool {
        self.targets.iter().all(TargetReport::ok)
    }

    /// NAR bytes the targets received beyond what was read from the source once.
    pub fn saved_by_dedup(&self) -> u64 {
        let sent: u64 = self.targets.iter().map(|t| t.nar_bytes).sum();
        sent.saturating_sub(self.stats.nar_bytes_read)
    }
}

#[derive(Default)]
struct Counters {
    nar_from_path: AtomicU64,
    nar_bytes_read: AtomicU64,
    cache_hits: AtomicU64,
    cache_hit_bytes: AtomicU64,
    compressed_bytes: AtomicU64,
    ready_nar_bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            nar_from_path: g(&self.nar_from_path),
            nar_bytes_read: g(&self.nar_bytes_read),
            cache_hits: g(&self.cache_hits),
            cache_hit_bytes: g(&self.cache_hit_bytes),
            compressed_bytes: g(&self.compressed_bytes),
            ready_nar_bytes: g(&self.ready_nar_bytes),
        }
    }
}

/// What every task shares.
struct Shared {
    /// The closure, references first; signed when a key was given.
    infos: Vec<ValidPathInfo>,
    index: HashMap<StorePath, usize>,
    cache: NarCache,
    /// Per path: made ready in the cache by this run. The lock makes one reader per path; the
    /// others wait for it.
    ready: Vec<Mutex<bool>>,
    source: Connection,
    source_name: String,
    source_pool: Mutex<Vec<Client>>,
    counters: Counters,
    events: Option<mpsc::UnboundedSender<Event>>,
    cancel: watch::Receiver<bool>,
    sessions_per_target: usize,
    max_retries: u32,
    retry_backoff: Duration,
}

impl Shared {
    fn emit(&self, e: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// Make the NAR of path `i` ready in the cache: found there, or read once from the source.
    /// An entry found corrupt is removed, so it is read again here (the flag alone is not enough).
    async fn ensure_ready(&self, i: usize) -> Result<()> {
        let mut ready = self.ready[i].lock().await;
        if *ready && self.cache.lookup(&self.infos[i].nar_hash).is_some() {
            return Ok(());
        }
        self.fill(i).await?;
        *ready = true;
        Ok(())
    }

    async fn fill(&self, i: usize) -> Result<()> {
        let info = &self.infos[i];
        if let Some(compressed) = self.cache.lookup(&info.nar_hash) {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            self.counters
                .cache_hit_bytes
                .fetch_add(info.nar_size, Ordering::Relaxed);
            self.made_ready(info, compressed, true);
            return Ok(());
        }
        let pooled = self.source_pool.lock().await.pop();
        let mut client = match pooled {
            Some(c) => c,
            None => self.source.open_client().await?,
        };
        self.counters.nar_from_path.fetch_add(1, Ordering::Relaxed);
        let filled = self
            .cache
            .fill(&mut client, info, &self.source_name)
            .await?;
        self.counters
            .nar_bytes_read
            .fetch_add(filled.nar_bytes, Ordering::Relaxed);
        if !client.is_poisoned() {
            self.source_pool.lock().await.push(client);
        }
        self.made_ready(info, filled.compressed_bytes, false);
        Ok(())
    }

    fn made_ready(&self, info: &ValidPathInfo, compressed: u64, from_cache: bool) {
        self.counters
            .compressed_bytes
            .fetch_add(compressed, Ordering::Relaxed);
        self.counters
            .ready_nar_bytes
            .fetch_add(info.nar_size, Ordering::Relaxed);
        self.emit(Event::Ready {
            path: info.path.clone(),
            nar_bytes: info.nar_size,
            compressed_bytes: compressed,
            from_cache,
        });
    }

    async fn cancelled(&self) {
        let mut rx = self.cancel.clone();
        // An error means the sender is gone: nobody can cancel any more.
        if rx.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Copy the closures of `opts.roots` from `opts.source` to every target. Never fails as a whole
/// once the closure is known: per-target failures are in the report. Events go to `events`.
pub async fn copy(
    opts: CopyOptions,
    events: Option<mpsc::UnboundedSender<Event>>,
) -> Result<CopyReport> {
    let started = Instant::now();
    let source_name = opts.source.name();
    let source = opts.source.connect().await?;
    let mut client = source.open_client().await?;
    let mut infos = daemon::closure(&mut client, &opts.roots)
        .await
        .map_err(|e| Error::Daemon {
            host: source_name.clone(),
            source: Box::new(e),
        })?;
    if let Some(key) = &opts.sign_key {
        for info in &mut infos {
            let sig = key.sign_path_info(info).map_err(|e| Error::Sign {
                host: source_name.clone(),
                path: info.path.clone(),
                source: e,
            })?;
            info.sigs.insert(sig);
        }
    }
    let closure_nar_bytes = infos.iter().map(|i| i.nar_size).sum();
    let index = infos
        .iter()
        .enumerate()
        .map(|(i, info)| (info.path.clone(), i))
        .collect();
    let n = infos.len();
    let shared = Arc::new(Shared {
        ready: (0..n).map(|_| Mutex::new(false)).collect(),
        infos,
        index,
        cache: opts.cache.clone(),
        source,
        source_name,
        source_pool: Mutex::new(vec![client]),
        counters: Counters::default(),
        events,
        cancel: opts.cancel.clone(),
        sessions_per_target: opts.sessions_per_target.max(1),
        max_retries: opts.max_retries,
        retry_backoff: opts.retry_backoff,
    });
    shared.emit(Event::Closure {
        paths: n,
        nar_bytes: closure_nar_bytes,
    });

    // Every target starts at once; each reports what it lacks (or that it could not say).
    let mut plans = Vec::new();
    let mut handles = Vec::new();
    for endpoint in opts.targets.iter().cloned() {
        let (tx, rx) = oneshot::channel();
        plans.push(rx);
        let shared = shared.clone();
        handles.push(tokio::spawn(run_target(shared, endpoint, tx)));
    }
    let mut needed = BTreeSet::new();
    for rx in plans {
        if let Ok(Some(missing)) = rx.await {
            needed.extend(missing);
        }
    }
    // Read what anyone needs once, references first, a few at a time. Targets take what is
    // ready; one that got no plan (unreachable at first) fills what it needs when it gets there.
    let queue: Arc<Vec<usize>> = Arc::new(needed.into_iter().collect());
    let cursor = Arc::new(AtomicUsize::new(0));
    let mut prefetchers = Vec::new();
    for _ in 0..opts.source_sessions.max(1) {
        let (shared, queue, cursor) = (shared.clone(), queue.clone(), cursor.clone());
        prefetchers.push(tokio::spawn(async move {
            loop {
                let k = cursor.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = queue.get(k) else { break };
                tokio::select! {
                    // An error here is seen again (and reported) by the targets that need the path.
                    _ = shared.ensure_ready(i) => {}
                    _ = shared.cancelled() => break,
                }
            }
        }));
    }
    let mut targets = Vec::new();
    for (h, endpoint) in handles.into_iter().zip(&opts.targets) {
        let report = match h.await {
            Ok(r) => r,
            Err(e) => TargetReport {
                target: endpoint.name(),
                error: Some(format!("internal error: {e}")),
                ..TargetReport::default()
            },
        };
        targets.push(report);
    }
    for p in prefetchers {
        p.abort();
    }
    Ok(CopyReport {
        closure_paths: n,
        closure_nar_bytes,
        targets,
        stats: shared.counters.snapshot(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One target, from connecting to the end, with reconnects. Never panics, always reports.
async fn run_target(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    plan_tx: oneshot::Sender<Option<Vec<usize>>>,
) -> TargetReport {
    let started = Instant::now();
    let mut report = TargetReport {
        target: endpoint.name(),
        ..TargetReport::default()
    };
    let mut plan_tx = Some(plan_tx);
    let mut attempt = 0u32;
    loop {
        let r = tokio::select! {
            r = attempt_once(&shared, &endpoint, &mut report, &mut plan_tx, attempt) => r,
            _ = shared.cancelled() => Err(Error::Cancelled { host: report.target.clone() }),
        };
        if let Some(tx) = plan_tx.take() {
            // No plan from this target (it failed before saying what it lacks).
            let _ = tx.send(None);
        }
        match r {
            Ok(()) => {
                report.paths_missing = 0;
                break;
            }
            Err(e) if e.is_transient() && attempt < shared.max_retries => {
                let delay = shared.retry_backoff * 2u32.saturating_pow(attempt);
                attempt += 1;
                report.retries = attempt;
                shared.emit(Event::Retrying {
                    target: report.target.clone(),
                    attempt,
                    delay,
                    error: e.to_string(),
                });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shared.cancelled() => {
                        report.error = Some(Error::Cancelled { host: report.target.clone() }.to_string());
                        break;
                    }
                }
            }
            Err(e) => {
                report.error = Some(error_chain(&e));
                break;
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    shared.emit(Event::Finished(report.clone()));
    report
}

/// An error and its sources, joined with `: ` (repeats left out).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// One connection's worth of work: ask what is missing, then upload it over several sessions.
async fn attempt_once(
    shared: &Arc<Shared>,
    endpoint: &Endpoint,
    report: &mut TargetReport,
    plan_tx: &mut Option<oneshot::Sender<Option<Vec<usize>>>>,
    attempt: u32,
) -> Result<()> {
    let host = report.target.clone();
    let daemon_err = |source| Error::Daemon {
        host: host.clone(),
        source: Box::new(source),
    };
    let conn = check_send(endpoint.connect()).await?;
    let mut first = conn.open_client().await?;
    let all: BTreeSet<StorePath> = shared.infos.iter().map(|i| i.path.clone()).collect();
    let valid = first
        .query_valid_paths(&all, false)
        .await
        .map_err(daemon_err)?;
    let missing: Vec<usize> = (0..shared.infos.len())
        .filter(|&i| !valid.contains(&shared.infos[i].path))
        .collect();
    let nar_bytes: u64 = missing.iter().map(|&i| shared.infos[i].nar_size).sum();
    if attempt == 0 {
        report.present = valid.len();
    }
    report.paths_missing = missing.len();
    if let Some(tx) = plan_tx.take() {
        let _ = tx.send(Some(missing.clone()));
    }
    shared.emit(Event::Planned {
        target: host.clone(),
        paths: missing.len(),
        nar_bytes,
        present: valid.len(),
    });
    if missing.is_empty() {
        return Ok(());
    }
    // Local indices: position in `missing`, which is in reference order.
    let local: HashMap<usize, usize> = missing.iter().enumerate().map(|(l, &g)| (g, l)).collect();
    let refs = missing
        .iter()
        .map(|&g| {
            shared.infos[g]
                .references
                .iter()
                .filter_map(|r| shared.index.get(r).and_then(|gi| local.get(gi)).copied())
                .collect()
        })
        .collect();
    let sizes = missing.iter().map(|&g| shared.infos[g].nar_size).collect();
    let sessions = shared.sessions_per_target.min(missing.len()).max(1);
    let (max_paths, max_bytes) = Schedule::limits(missing.len(), nar_bytes, sessions);
    let schedule = std::sync::Mutex::new(Schedule::new(refs, sizes, max_paths, max_bytes));
    let notify = Notify::new();
    let copied = AtomicUsize::new(0);
    let copied_bytes = AtomicU64::new(0);

    let mut clients = vec![first];
    for _ in 1..sessions {
        clients.push(conn.open_client().await?);
    }
    let job = Job {
        shared,
        host: &host,
        missing: &missing,
        schedule: &schedule,
        notify: &notify,
        copied: &copied,
        copied_bytes: &copied_bytes,
    };
    let r = futures::future::try_join_all(clients.into_iter().map(|c| job.work(c))).await;
    report.paths_copied += copied.load(Ordering::Relaxed);
    report.nar_bytes += copied_bytes.load(Ordering::Relaxed);
    report.paths_missing = missing.len() - copied.load(Ordering::Relaxed);
    report.wire_bytes += conn.bytes_written();
    r?;
    conn.close().await;
    Ok(())
}

/// What the sessions of one target share during an attempt.
#[derive(Clone, Copy)]
struct Job<'a> {
    shared: &'a Arc<Shared>,
    host: &'a String,
    missing: &'a [usize],
    schedule: &'a std::sync::Mutex<Schedule>,
    notify: &'a Notify,
    copied: &'a AtomicUsize,
    copied_bytes: &'a AtomicU64,
}

impl Job<'_> {
    /// One session: take batches until none is left.
    async fn work(self, mut client: Client) -> Result<()> {
        loop {
            let next = {
                let mut s = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
                match s.next_batch() {
                    Next::Wait => Err(self.notify.notified()),
                    other => Ok(other),
                }
            };
            let batch = match next {
                Err(notified) => {
                    notified.await;
                    continue;
                }
                Ok(Next::Finished) => return Ok(()),
                Ok(Next::Wait) => continue,
                Ok(Next::Batch(b)) => b,
            };
            let r = check_send(upload_batch(
                self.shared,
                &mut client,
                self.host,
                self.missing,
                &batch,
            ))
            .await;
            self.schedule
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .complete(&batch, r.is_ok());
            self.notify.notify_waiters();
            r?;
            let bytes: u64 = batch
                .iter()
                .map(|&l| self.shared.infos[self.missing[l]].nar_size)
                .sum();
            self.copied.fetch_add(batch.len(), Ordering::Relaxed);
            self.copied_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.shared.emit(Event::Copied {
                target: self.host.clone(),
                paths: batch.len(),
                nar_bytes: bytes,
            });
        }
    }
}

/// A NAR writer for AddMultipleToStore whose futures are `Send` (an `async` closure's are not
/// provably so), so that targets can run as spawned tasks.
type NarFuture<'b> =
    std::pin::Pin<Box<dyn std::future::Future<Output = daemon::Result<()>> + Send + 'b>>;

fn nar_writer<F>(f: F) -> F
where
    F: for<'b, 'c> FnMut(
        &ValidPathInfo,
        &'b mut (dyn AsyncWrite + Unpin + Send + 'c),
    ) -> NarFuture<'b>,
{
    f
}

/// Upload one batch with AddMultipleToStore, each NAR streamed from the cache once ready.
async fn upload_batch(
    shared: &Arc<Shared>,
    client: &mut Client,
    host: &str,
    missing: &[usize],
    batch: &[usize],
) -> Result<()> {
    let infos: Vec<ValidPathInfo> = batch
        .iter()
        .map(|&l| shared.infos[missing[l]].clone())
        .collect();
    // The typed cause of a failure on our side (the daemon client only carries io errors).
    let ours: Arc<std::sync::Mutex<Option<Error>>> = Arc::default();
    let (shared_w, ours_w, host_w) = (shared.clone(), ours.clone(), host.to_string());
    let writer = nar_writer(move |info, sink| {
        let (shared, ours, host) = (shared_w.clone(), ours_w.clone(), host_w.clone());
        let path = info.path.clone();
        Box::pin(async move {
            let op = Op::AddMultipleToStore;
            let step = async {
                let i = *shared.index.get(&path).ok_or_else(|| Error::Failed {
                    host: host.clone(),
                    message: format!("{path} is not in the closure"),
                })?;
                shared.ensure_ready(i).await?;
                shared.cache.stream_to(&shared.infos[i], sink).await
            };
            match step.await {
                Ok(_) => Ok(()),
                Err(Error::Daemon { source, .. }) => Err(*source),
                Err(e) => {
                    let msg = e.to_string();
                    *ours.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    Err(daemon::Error::Source {
                        op,
                        source: std::io::Error::other(msg),
                    })
                }
            }
        })
    });
    let r = client
        .add_multiple_to_store(&infos, false, true, writer)
        .await;
    let ours = ours.lock().unwrap_or_else(|p| p.into_inner()).take();
    match (r, ours) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(e)) => Err(e),
        (Err(source), None) => Err(Error::Daemon {
            host: host.to_string(),
            source: Box::new(source),
        }),
    }
}

fn check_send<'a, T>(
    f: impl std::future::Future<Output = T> + Send + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>> {
    Box::pin(f)
}
