//! Remote commands and byte streams against a real sshd: exit codes, signals, stdout/stderr separation,
//! quoting, 64 MiB of binary data each way without corruption, and concurrent streams on one connection.

#![allow(clippy::unwrap_used)]

#[path = "common/sshd.rs"]
mod sshd;

use std::io::Write;
use std::sync::Arc;

use ferry::ssh::{ExecEvent, ExitStatus, SshSession, quote_command};
use sha2::{Digest, Sha256};
use sshd::Sshd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connect(sshd: &Sshd) -> SshSession {
    SshSession::connect(&sshd.target(), &sshd.options())
        .await
        .unwrap()
}

async fn run(session: &SshSession, cmd: &str) -> ferry::ssh::Output {
    session
        .exec(cmd)
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap()
}

fn random_file(dir: &std::path::Path, size: usize) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join(format!("random-{size}"));
    let mut f = std::fs::File::create(&path).unwrap();
    let mut data = vec![0u8; size];
    // Pseudo-random bytes covering every byte value, including NUL and \r\n (no text conversion anywhere).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    f.write_all(&data).unwrap();
    let digest = Sha256::digest(&data).to_vec();
    (path, digest)
}

#[tokio::test]
async fn exit_codes_signals_and_stderr() {
    let sshd = Sshd::start();
    let s = connect(&sshd).await;
    for code in [0u32, 1, 3, 255] {
        let out = run(&s, &format!("exit {code}")).await;
        assert_eq!(out.status, ExitStatus::Code(code));
    }
    let out = run(&s, "echo out; echo err >&2; exit 4").await;
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status, ExitStatus::Code(4));

    let out = run(&s, "kill -KILL $$").await;
    assert!(
        matches!(&out.status, ExitStatus::Signal { name, .. } if name == "KILL"),
        "{out:?}"
    );
    assert_eq!(out.status.shell_code(), 137);
}

#[tokio::test]
async fn signal_over_the_channel() {
    // sshd only delivers signals to non-root sessions ("session signalling requires privilege separation").
    sshd::ensure_test_user();
    let sshd = Sshd::start();
    let target =
        ferry::ssh::Target::parse(&format!("{}@127.0.0.1:{}", sshd::TEST_USER, sshd.port)).unwrap();
    let s = SshSession::connect(&target, &sshd.options()).await.unwrap();
    // A signal sent over the channel (OpenSSH >= 7.9 delivers it to the command).
    let mut p = s.exec("exec sleep 30").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    p.signal(russh::Sig::TERM).await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(ExecEvent::Exit(st)) = p.next_event().await.unwrap() {
                return st;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "signalled command must end: {}",
            std::fs::read_to_string(sshd.path("sshd.log")).unwrap()
        )
    });
    assert!(
        matches!(&status, ExitStatus::Signal { name, .. } if name == "TERM"),
        "{status:?}"
    );
}

#[tokio::test]
async fn words_are_quoted_for_the_remote_shell() {
    let sshd = Sshd::start();
    let s = connect(&sshd).await;
    let words = [
        "printf", "%s|\n", "a b", "it's", "$HOME", "*", "", "x;y", "\"q\"", "ü",
    ];
    let out = run(&s, &quote_command(&words)).await;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "a b|\nit's|\n$HOME|\n*|\n|\nx;y|\n\"q\"|\nü|\n"
    );
}

#[tokio::test]
async fn large_binary_output_is_streamed_intact() {
    let sshd = Sshd::start();
    let s = connect(&sshd).await;
    let (path, digest) = random_file(sshd.dir.path(), 64 << 20);
    let mut p = s
        .exec(&quote_command(&["cat", path.to_str().unwrap()]))
        .await
        .unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0usize;
    let mut chunks = 0usize;
    let status = loop {
        match p.next_event().await.unwrap() {
            Some(ExecEvent::Stdout(d)) => {
                total += d.len();
                chunks += 1;
                hasher.update(&d);
            }
            Some(ExecEvent::Stderr(e)) => panic!("stderr: {}", String::from_utf8_lossy(&e)),
            Some(ExecEvent::Exit(st)) => break st,
            None => panic!("no exit event"),
        }
    };
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(total, 64 << 20);
    assert!(chunks > 100, "output must arrive streamed, in pieces");
    assert_eq!(hasher.finalize().to_vec(), digest);
}

#[tokio::test]
async fn byte_stream_round_trips_64_mib_and_reports_exit() {
    let sshd = Sshd::start();
    let s = connect(&sshd).await;
    let (path, digest) = random_file(sshd.dir.path(), 64 << 20);
    let data = std::fs::read(&path).unwrap();
    // `cat` echoes everything back: both directions are checked at once.
    let stream = s.open_stream("cat").await.unwrap();
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
        hasher.update(&buf[..n]);
    }
    let w = writer.await.unwrap();
    assert_eq!(total, 64 << 20);
    assert_eq!(hasher.finalize().to_vec(), digest);
    let mut stream = r.unsplit(w);
    assert_eq!(stream.wait_exit().await, Some(ExitStatus::Code(0)));

    // stderr is kept for error messages and the exit status is available after EOF.
    let mut failing = s.open_stream("echo oops >&2; exit 7").await.unwrap();
    let mut out = Vec::new();
    failing.read_to_end(&mut out).await.unwrap();
    assert!(out.is_empty());
    assert_eq!(failing.wait_exit().await, Some(ExitStatus::Code(7)));
    assert!(
        failing.stderr_tail().contains("oops"),
        "{}",
        failing.stderr_tail()
    );
}

#[tokio::test]
async fn concurrent_streams_on_one_connection() {
    let sshd = Sshd::start();
    let s = Arc::new(connect(&sshd).await);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let data: Vec<u8> = (0..(2usize << 20))
                .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i))
                .collect();
            let expected = Sha256::digest(&data).to_vec();
            let stream = s.open_stream("cat").await.unwrap();
            let (mut r, mut w) = tokio::io::split(stream);
            let writer = tokio::spawn(async move {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            writer.await.unwrap();
            assert_eq!(Sha256::digest(&back).to_vec(), expected, "stream {i}");
        }));
    }
    // Meanwhile, plain commands on the same connection still work.
    for _ in 0..10 {
        assert!(run(&s, "true").await.status.success());
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn root_commands_run_directly_for_root() {
    let sshd = Sshd::start();
    let s = connect(&sshd).await;
    let out = s
        .exec_as_root("id -u", &ferry::ssh::Escalation::default(), None)
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"0\n");
}

#[tokio::test]
async fn sudo_password_is_sent_on_prompt_only() {
    sshd::ensure_test_user();
    let sshd = Sshd::start();
    let target =
        ferry::ssh::Target::parse(&format!("{}@127.0.0.1:{}", sshd::TEST_USER, sshd.port)).unwrap();
    let s = SshSession::connect(&target, &sshd.options()).await.unwrap();
    let esc = ferry::ssh::Escalation::default();
    let uid = String::from_utf8(run(&s, "id -u").await.stdout).unwrap();
    assert_ne!(uid.trim(), "0", "the test user must not be root");

    // With the password: root, and the command's own stdin is untouched by the password.
    let mut p = s
        .exec_as_root("id -u; cat", &esc, Some(sshd::TEST_USER_PASSWORD))
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut sent = false;
    let status = loop {
        match p.next_event().await.unwrap() {
            Some(ExecEvent::Stdout(d)) => {
                out.extend_from_slice(&d);
                if !sent && out.starts_with(b"0\n") {
                    p.write_stdin(b"payload").await.unwrap();
                    p.close_stdin().await.unwrap();
                    sent = true;
                }
            }
            Some(ExecEvent::Stderr(d)) => err.extend_from_slice(&d),
            Some(ExecEvent::Exit(st)) => break st,
            None => panic!("no exit"),
        }
    };
    assert_eq!(
        status,
        ExitStatus::Code(0),
        "stderr: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(out, b"0\npayload");
    assert!(
        !String::from_utf8_lossy(&err).contains("ferry-sudo"),
        "prompt must be stripped: {err:?}"
    );

    // A wrong password is reported as such, not retried forever.
    let p = s.exec_as_root("id -u", &esc, Some("wrong")).await.unwrap();
    let e = p.wait_with_output().await.unwrap_err();
    assert!(e.to_string().contains("sudo rejected the password"), "{e}");

    // No password: sudo -n fails at once instead of hanging on a prompt.
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        s.exec_as_root("id -u", &esc, None)
            .await
            .unwrap()
            .wait_with_output()
            .await
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn pty_mode_allocates_a_terminal_of_the_requested_size() {
    let sshd = Sshd::start();
    let s = connect(&sshd).await;
    let pty = ferry::ssh::PtyRequest {
        term: "xterm".into(),
        cols: 100,
        rows: 40,
    };
    let p = s
        .exec_pty(Some("tty; stty size; echo $TERM"), &pty)
        .await
        .unwrap();
    let out = p.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    // A PTY turns \n into \r\n, and stderr is merged into it.
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{text}");
    assert_eq!(lines[1], "40 100", "{text}");
    assert_eq!(lines[2], "xterm", "{text}");

    // Without a PTY there is no terminal.
    let out = run(&s, "tty").await;
    assert_eq!(out.stdout, b"not a tty\n");
}
