//! `ferry-shaper`: a TCP proxy that makes a loopback connection behave like a WAN link, for the test fleet's
//! shaped mode (`dev/fleet up N --shaped RTT_MS:MBIT`, see `docs/test-fleet.md`).
//!
//! Layer: a development tool, outside the library's layers; it uses no `ferry` module and nothing uses it
//! but `dev/fleet` and the tests. `tc netem` is not available on our machines, so latency is added here.
//!
//! Model: each direction is a pipe, a FIFO link of a fixed rate followed by a fixed one-way delay (RTT/2).
//! A chunk read at time `t` starts serialising when the link is free (`start = max(t, free_at)`), occupies
//! it for `len / rate`, and is written to the other side `one_way` after its last byte left the link. Chunks
//! are timestamped when read and delivered by a separate writer, so latency is paid once per chunk in
//! parallel (a pipe), never serially per chunk. The rate is shared by every connection through this proxy
//! (one link per host and direction, like a NIC), and each connection's queue is bounded (the link's
//! bandwidth-delay product plus a router buffer), so a fast sender is held back by TCP flow control rather
//! than buffered without limit. A new connection waits one RTT before it reaches the upstream, the cost of
//! a TCP handshake on a real link.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, sleep, sleep_until};

/// Command line of `ferry-shaper`.
#[derive(Parser, Debug)]
#[command(about = "TCP proxy adding latency and a bandwidth cap (ferry's test fleet)")]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:30001.
    #[arg(long)]
    listen: SocketAddr,
    /// Address to forward to, e.g. the host's sshd at 127.0.0.1:30000.
    #[arg(long)]
    upstream: SocketAddr,
    /// Round-trip time to add, in milliseconds (half of it each way).
    #[arg(long, default_value_t = 0.0)]
    rtt_ms: f64,
    /// Bandwidth cap per direction in Mbit/s, shared by all connections; 0 means unlimited.
    #[arg(long, default_value_t = 0.0)]
    mbit: f64,
    /// Largest chunk read at once, in bytes: the granularity of the model.
    #[arg(long, default_value_t = 16 * 1024)]
    chunk: usize,
    /// Queue bound per connection and direction in bytes; default: twice the bandwidth-delay product plus
    /// 64 KiB (16 MiB when the rate is unlimited).
    #[arg(long)]
    queue_bytes: Option<usize>,
    /// A free-form label (dev/fleet passes the host's directory, to find its own processes again).
    #[arg(long)]
    tag: Option<String>,
}

/// One direction of the emulated link: a shared serialiser followed by a fixed delay.
struct Link {
    /// Bytes per second, or `None` for an unlimited rate.
    rate: Option<f64>,
    one_way: Duration,
    /// When the serialiser is next free.
    free_at: Mutex<Instant>,
}

impl Link {
    fn new(rate: Option<f64>, one_way: Duration) -> Self {
        Self {
            rate,
            one_way,
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the link for `len` bytes read now and returns when they must reach the other side.
    fn schedule(&self, len: usize) -> Instant {
        let now = Instant::now();
        let busy = match self.rate {
            Some(rate) => Duration::from_secs_f64(len as f64 / rate),
            None => Duration::ZERO,
        };
        // A poisoned lock only means another connection's task panicked; the instant inside is still valid.
        let mut free_at = self.free_at.lock().unwrap_or_else(PoisonError::into_inner);
        let start = (*free_at).max(now);
        *free_at = start + busy;
        *free_at + self.one_way
    }
}

/// What the reader hands to the writer of one direction.
enum Item {
    Data {
        at: Instant,
        bytes: Vec<u8>,
        _permit: OwnedSemaphorePermit,
    },
    Eof {
        at: Instant,
    },
}

#[derive(Clone)]
struct Shaping {
    up: Arc<Link>,
    down: Arc<Link>,
    rtt: Duration,
    chunk: usize,
    queue_bytes: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.rtt_ms.is_finite() && args.rtt_ms >= 0.0 && args.mbit.is_finite() && args.mbit >= 0.0)
    {
        eprintln!("ferry-shaper: --rtt-ms and --mbit must be non-negative numbers");
        return ExitCode::from(2);
    }
    if args.chunk == 0 || args.chunk > 1 << 20 {
        eprintln!("ferry-shaper: --chunk must be between 1 and 1048576");
        return ExitCode::from(2);
    }
    let rtt = Duration::from_secs_f64(args.rtt_ms / 1000.0);
    let one_way = rtt / 2;
    let rate = (args.mbit > 0.0).then(|| args.mbit * 1e6 / 8.0);
    let queue_bytes = args.queue_bytes.unwrap_or(match rate {
        Some(r) => (2.0 * r * rtt.as_secs_f64()) as usize + 64 * 1024,
        None => 16 << 20,
    });
    // Semaphore permits are u32; a chunk must fit in the queue or nothing would ever be read.
    let queue_bytes = queue_bytes.clamp(args.chunk, u32::MAX as usize);
    let shaping = Shaping {
        up: Arc::new(Link::new(rate, one_way)),
        down: Arc::new(Link::new(rate, one_way)),
        rtt,
        chunk: args.chunk,
        queue_bytes,
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ferry-shaper: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(args.listen);
    // The first line on stdout names the bound address (useful with port 0).
    println!("listening {local}");
    eprintln!(
        "ferry-shaper: {} -> {}, rtt {:?}, rate {}, queue {} bytes{}",
        local,
        args.upstream,
        rtt,
        rate.map_or("unlimited".to_string(), |r| format!(
            "{} Mbit/s",
            r * 8.0 / 1e6
        )),
        queue_bytes,
        args.tag
            .as_deref()
            .map(|t| format!(", tag {t}"))
            .unwrap_or_default()
    );
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                let shaping = shaping.clone();
                let upstream = args.upstream;
                tokio::spawn(async move {
                    if let Err(e) = serve(client, upstream, shaping).await {
                        eprintln!("ferry-shaper: connection from {peer}: {e}");
                    }
                });
            }
            Err(e) => {
                // Typically EMFILE; back off instead of spinning.
                eprintln!("ferry-shaper: accept: {e}");
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, shaping: Shaping) -> std::io::Result<()> {
    // The handshake of a real link costs one RTT before the server sees the connection.
    sleep(shaping.rtt).await;
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_rd, client_wr) = client.into_split();
    let (server_rd, server_wr) = server.into_split();
    let up = pump(client_rd, server_wr, shaping.up.clone(), &shaping);
    let down = pump(server_rd, client_wr, shaping.down.clone(), &shaping);
    let (a, b) = tokio::join!(up, down);
    a.and(b)
}

/// Moves one direction of a connection through `link`, preserving byte order.
async fn pump(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    link: Arc<Link>,
    s: &Shaping,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
    let budget = Arc::new(Semaphore::new(s.queue_bytes));
    let chunk = s.chunk;
    let reader = async move {
        loop {
            // Reserve room for a whole chunk before reading, give back what the read did not use.
            let Ok(mut permit) = budget.clone().acquire_many_owned(chunk as u32).await else {
                return;
            };
            let mut bytes = vec![0u8; chunk];
            // A reset peer ends this direction like an EOF; the writer then closes the other side.
            let n = rd.read(&mut bytes).await.unwrap_or_default();
            if n == 0 {
                let _ = tx.send(Item::Eof {
                    at: link.schedule(0),
                });
                return;
            }
            bytes.truncate(n);
            if n < chunk {
                drop(permit.split(chunk - n));
            }
            if tx
                .send(Item::Data {
                    at: link.schedule(n),
                    bytes,
                    _permit: permit,
                })
                .is_err()
            {
                return;
            }
        }
    };
    let writer = async move {
        while let Some(item) = rx.recv().await {
            match item {
                Item::Data { at, bytes, _permit } => {
                    sleep_until(at).await;
                    wr.write_all(&bytes).await?;
                }
                Item::Eof { at } => {
                    sleep_until(at).await;
                    wr.shutdown().await?;
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    let ((), result) = tokio::join!(reader, writer);
    result
}
