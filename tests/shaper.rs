//! `ferry-shaper` measured against its configuration, on loopback: round-trip time (ping-pong through an
//! echo server), throughput (a sink server times the bytes it receives), a cap shared by two connections,
//! and latency paid once per pipe rather than once per chunk.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

struct Shaper {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Shaper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shaper(upstream: SocketAddr, rtt_ms: u32, mbit: u32) -> Shaper {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry-shaper"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream.to_string(),
        ])
        .args(["--rtt-ms", &rtt_ms.to_string(), "--mbit", &mbit.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap()
        .parse()
        .unwrap();
    Shaper { child, addr }
}

/// A server that runs `handle` on each connection, in a thread.
fn server(handle: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            thread::spawn(move || handle(conn));
        }
    });
    addr
}

fn echo(mut conn: TcpStream) {
    conn.set_nodelay(true).unwrap();
    let mut buf = [0u8; 65536];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads until EOF, then answers with the byte count after the first read and the time from the first
/// read to EOF (so the one-way delay and the connection setup do not count).
fn sink(mut conn: TcpStream) {
    let mut buf = vec![0u8; 1 << 20];
    let mut first: Option<(Instant, usize)> = None;
    let mut total = 0usize;
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if first.is_none() {
                    first = Some((Instant::now(), n));
                }
                total += n;
            }
        }
    }
    let (start, first_n) = first.unwrap_or((Instant::now(), 0));
    let nanos = start.elapsed().as_nanos() as u64;
    let mut reply = Vec::new();
    reply.extend_from_slice(&((total - first_n) as u64).to_le_bytes());
    reply.extend_from_slice(&nanos.to_le_bytes());
    let _ = conn.write_all(&reply);
}

/// Sends `len` bytes through `addr` to a sink; returns the rate the sink saw, in Mbit/s, and its duration.
fn send_to_sink(addr: SocketAddr, len: usize) -> (f64, Duration) {
    let mut conn = TcpStream::connect(addr).unwrap();
    let data = vec![0x5au8; len];
    conn.write_all(&data).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut reply = [0u8; 16];
    conn.read_exact(&mut reply).unwrap();
    let bytes = u64::from_le_bytes(reply[..8].try_into().unwrap());
    let nanos = u64::from_le_bytes(reply[8..].try_into().unwrap());
    let secs = nanos as f64 / 1e9;
    (bytes as f64 * 8.0 / secs / 1e6, Duration::from_nanos(nanos))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn round_trip_time_matches_configuration() {
    let upstream = server(echo);
    for rtt_ms in [20u64, 50] {
        let s = shaper(upstream, rtt_ms as u32, 0);
        let mut conn = TcpStream::connect(s.addr).unwrap();
        conn.set_nodelay(true).unwrap();
        let mut samples = Vec::new();
        let mut byte = [0u8; 1];
        for i in 0..25u8 {
            let t = Instant::now();
            conn.write_all(&[i]).unwrap();
            conn.read_exact(&mut byte).unwrap();
            assert_eq!(byte[0], i);
            // The first exchange also pays for the emulated handshake.
            if i > 0 {
                samples.push(t.elapsed());
            }
        }
        let m = median(samples);
        eprintln!("configured RTT {rtt_ms} ms, measured median {m:?}");
        assert!(
            m >= Duration::from_millis(rtt_ms),
            "RTT {m:?} below the configured {rtt_ms} ms"
        );
        assert!(
            m <= Duration::from_millis(rtt_ms + 8),
            "RTT {m:?} well above the configured {rtt_ms} ms"
        );
    }
}

#[test]
fn throughput_matches_the_cap() {
    let upstream = server(sink);
    for mbit in [20u32, 100] {
        let s = shaper(upstream, 20, mbit);
        // About 0.4 s of transfer at the cap.
        let len = (mbit as usize * 1_000_000 / 8) * 2 / 5;
        let (rate, took) = send_to_sink(s.addr, len);
        eprintln!("configured {mbit} Mbit/s, measured {rate:.1} Mbit/s over {took:?}");
        assert!(
            rate <= mbit as f64 * 1.05,
            "{rate:.1} Mbit/s exceeds the {mbit} Mbit/s cap"
        );
        assert!(
            rate >= mbit as f64 * 0.8,
            "{rate:.1} Mbit/s is far below the {mbit} Mbit/s cap"
        );
    }
}

#[test]
fn connections_share_the_cap() {
    let upstream = server(sink);
    let s = shaper(upstream, 10, 40);
    let addr = s.addr;
    let len = 40 * 1_000_000 / 8 / 5;
    let t = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|_| thread::spawn(move || send_to_sink(addr, len)))
        .collect();
    let rates: Vec<f64> = workers.into_iter().map(|w| w.join().unwrap().0).collect();
    let total_secs = t.elapsed().as_secs_f64();
    let total_mbit = (2 * len) as f64 * 8.0 / total_secs / 1e6;
    eprintln!("two connections: {rates:?} Mbit/s each, {total_mbit:.1} Mbit/s together (cap 40)");
    assert!(
        total_mbit <= 40.0 * 1.05,
        "together {total_mbit:.1} Mbit/s exceed the 40 Mbit/s cap"
    );
    for r in rates {
        assert!(
            r <= 40.0 * 0.75,
            "one connection got {r:.1} of 40 Mbit/s while another was sending"
        );
    }
}

#[test]
fn latency_is_paid_once_per_pipe_not_per_chunk() {
    let upstream = server(sink);
    // 100 ms RTT, no cap: 4 MiB is 256 chunks of 16 KiB. Serial delays would take 256 x 50 ms.
    let s = shaper(upstream, 100, 0);
    let t = Instant::now();
    let (_, spread) = send_to_sink(s.addr, 4 << 20);
    let total = t.elapsed();
    eprintln!("4 MiB at 100 ms RTT, no cap: first to last byte {spread:?}, total {total:?}");
    assert!(
        spread < Duration::from_millis(300),
        "bytes spread over {spread:?}: delays add up per chunk"
    );
    // Handshake (1 RTT) + data one way + reply one way = 2 RTT, plus slack.
    assert!(total < Duration::from_millis(600), "total {total:?}");
    assert!(
        total >= Duration::from_millis(200),
        "total {total:?} is below 2 RTT"
    );
}
