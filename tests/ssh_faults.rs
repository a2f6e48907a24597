//! Faults give clear, typed errors within the timeout and never hang, while another session on a healthy
//! host keeps working: a closed port, an unroutable address, a listener that never speaks, a connection
//! killed mid-stream, and a connection that stalls mid-stream (keepalives unanswered).

#![allow(clippy::unwrap_used)]

#[path = "common/sshd.rs"]
mod sshd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::ssh::{ConnectOptions, Error, ExecEvent, SshSession, Target, quote_command};
use sshd::{Fault, FaultProxy, SilentListener, Sshd};
use tokio::io::AsyncReadExt;

fn target(port: u16) -> Target {
    Target::parse(&format!("root@127.0.0.1:{port}")).unwrap()
}

/// Options for reaching `sshd` through another port (the proxy): its host key recorded under that port.
fn options_via(sshd: &Sshd, port: u16) -> ConnectOptions {
    let mut o = sshd.options();
    std::fs::write(
        &o.ferry_known_hosts,
        format!(
            "{}[127.0.0.1]:{port} {}\n",
            sshd.known_hosts_line(),
            sshd.host_key
        ),
    )
    .unwrap();
    o.connect_timeout = Duration::from_secs(3);
    o.keepalive_interval = Duration::from_secs(1);
    o.keepalive_max = 2;
    o
}

/// A healthy session that keeps running commands while `fut` runs; returns how many succeeded.
async fn alongside<F: std::future::Future>(healthy: Arc<SshSession>, fut: F) -> (F::Output, usize) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let worker = tokio::spawn(async move {
        let mut ok = 0;
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            let out = healthy
                .exec("echo alive")
                .await
                .unwrap()
                .wait_with_output()
                .await
                .unwrap();
            assert_eq!(out.stdout, b"alive\n");
            ok += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ok
    });
    let out = fut.await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    (out, worker.await.unwrap())
}

#[tokio::test]
async fn down_host_refused_and_stalled_listener_time_out() {
    let sshd = Sshd::start();
    let healthy = Arc::new(
        SshSession::connect(&sshd.target(), &sshd.options())
            .await
            .unwrap(),
    );
    let mut opts = sshd.options();
    opts.connect_timeout = Duration::from_secs(2);

    let (results, ok) = alongside(healthy, async {
        // Closed port: refused at once.
        let t = Instant::now();
        let closed = SshSession::connect(&target(sshd::free_port()), &opts).await;
        let refused_after = t.elapsed();

        // A listener that accepts and never answers: the handshake times out.
        let silent = SilentListener::start();
        let t = Instant::now();
        let stalled = SshSession::connect(&target(silent.port), &opts).await;
        let stalled_after = t.elapsed();

        // An address nobody answers for (TEST-NET-1): unreachable or timed out, within the limit.
        let t = Instant::now();
        let nowhere =
            SshSession::connect(&Target::parse("root@192.0.2.1:22").unwrap(), &opts).await;
        let nowhere_after = t.elapsed();
        (
            (closed, refused_after),
            (stalled, stalled_after),
            (nowhere, nowhere_after),
        )
    })
    .await;
    let ((closed, refused_after), (stalled, stalled_after), (nowhere, nowhere_after)) = results;

    let e = closed.unwrap_err();
    assert!(matches!(e, Error::ConnectionRefused { .. }), "{e}");
    assert!(e.to_string().contains("connection refused"), "{e}");
    assert!(refused_after < Duration::from_secs(1), "{refused_after:?}");

    let e = stalled.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                stage: "SSH handshake",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("within 2s"), "{e}");
    assert!(stalled_after < Duration::from_secs(3), "{stalled_after:?}");

    let e = nowhere.unwrap_err();
    assert!(e.is_connectivity(), "{e}");
    assert!(nowhere_after < Duration::from_secs(3), "{nowhere_after:?}");

    assert!(ok > 0, "the healthy session must keep working");
}

#[tokio::test]
async fn connection_killed_mid_stream() {
    let sshd = Sshd::start();
    let healthy = Arc::new(
        SshSession::connect(&sshd.target(), &sshd.options())
            .await
            .unwrap(),
    );
    let big = sshd.path("big");
    std::fs::write(&big, vec![7u8; 32 << 20]).unwrap();
    let cat = quote_command(&["cat", big.to_str().unwrap()]);
    // The proxy cuts the connection after 2 MiB went to the client.
    let proxy = FaultProxy::start(sshd.port, 2 << 20, Fault::Cut);
    let opts = options_via(&sshd, proxy.port);
    let session = SshSession::connect(&target(proxy.port), &opts)
        .await
        .unwrap();

    let (result, ok) = alongside(healthy, async {
        let t = Instant::now();
        let mut p = session.exec(&cat).await.unwrap();
        let mut got = 0usize;
        let err = loop {
            match p.next_event().await {
                Ok(Some(ExecEvent::Stdout(d))) => got += d.len(),
                Ok(Some(ev)) => panic!("unexpected {ev:?} after {got} bytes"),
                Ok(None) => panic!("ended without error"),
                Err(e) => break e,
            }
        };
        (err, got, t.elapsed())
    })
    .await;
    let (err, got, after) = result;
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err}");
    assert!(got < 32 << 20, "got everything ({got}) despite the cut");
    assert!(after < Duration::from_secs(5), "{after:?}");
    assert!(ok > 0);
    // The session knows it is dead; new work fails at once with the same kind of error.
    assert!(session.is_closed());
    let e = session.exec("true").await.unwrap_err();
    assert!(matches!(e, Error::ConnectionLost { .. }), "{e}");

    // The same through a byte stream: a truncated stream is an error, never a clean EOF.
    let session = SshSession::connect(&target(proxy.port), &opts)
        .await
        .unwrap();
    let mut stream = session.open_stream(&cat).await.unwrap();
    let mut buf = Vec::new();
    let e = stream.read_to_end(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted, "{e}");
    assert!(e.to_string().contains("lost mid-stream"), "{e}");
}

#[tokio::test]
async fn connection_stalled_mid_stream() {
    let sshd = Sshd::start();
    let healthy = Arc::new(
        SshSession::connect(&sshd.target(), &sshd.options())
            .await
            .unwrap(),
    );
    let big = sshd.path("big");
    std::fs::write(&big, vec![7u8; 32 << 20]).unwrap();
    // The proxy stops forwarding (both ways) after 2 MiB but keeps the sockets open.
    let proxy = FaultProxy::start(sshd.port, 2 << 20, Fault::Stall);
    let opts = options_via(&sshd, proxy.port);
    let session = SshSession::connect(&target(proxy.port), &opts)
        .await
        .unwrap();
    let cat = quote_command(&["cat", big.to_str().unwrap()]);

    let (result, ok) = alongside(healthy, async {
        let t = Instant::now();
        let mut stream = session.open_stream(&cat).await.unwrap();
        let mut buf = Vec::new();
        // Keepalive every 1 s, 2 unanswered allowed: the stall is detected in ~3 s.
        let r = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buf)).await;
        (r, t.elapsed())
    })
    .await;
    let (r, after) = result;
    let e = r.expect("a stalled connection must not hang").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted, "{e}");
    assert!(e.to_string().contains("keepalive"), "{e}");
    assert!(after < Duration::from_secs(8), "{after:?}");
    assert!(ok > 0);
}
