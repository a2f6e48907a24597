//! ferry's ssh layer against OpenSSH, side by side in one run, on a throwaway sshd on 127.0.0.1.
//!
//! Run (as root, like the tests): `cargo bench --bench ssh`
//! Knobs: `FERRY_BENCH_COMMANDS` (default 100), `FERRY_BENCH_MIB` (default 512).
//!
//! 1. Latency: N sequential `true` over one persistent ferry connection, vs N runs of `ssh host true`
//!    (a full OpenSSH connection each: no ControlMaster). Target: ferry ≥ 10x faster.
//! 2. Throughput: M MiB through one channel into `cat > /dev/null`, vs `ssh host 'cat > /dev/null' < file`.
//!    Target: ferry within 1.5x of OpenSSH. Reported per cipher, with the cipher each side negotiated.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/sshd.rs"]
mod sshd;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry::ssh::{ConnectOptions, SshSession, Target};
use sshd::Sshd;
use tokio::io::AsyncWriteExt;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// OpenSSH client arguments for the throwaway server: no user config, no agent, no connection sharing.
fn openssh(sshd: &Sshd, known_hosts: &std::path::Path, cipher: Option<&str>) -> Command {
    openssh_as(sshd, known_hosts, cipher, "root")
}

/// [`openssh`] as another remote user.
fn openssh_as(
    sshd: &Sshd,
    known_hosts: &std::path::Path,
    cipher: Option<&str>,
    user: &str,
) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-i"])
        .arg(&sshd.client_key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "ControlMaster=no", "-o", "ControlPath=none"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-p"])
        .arg(sshd.port.to_string());
    if let Some(cipher) = cipher {
        c.args(["-c", cipher]);
    }
    c.arg(format!("{user}@127.0.0.1"))
        .env_remove("SSH_AUTH_SOCK");
    c
}

/// The cipher OpenSSH negotiates (from `ssh -v`).
fn openssh_cipher(sshd: &Sshd, kh: &std::path::Path, cipher: Option<&str>) -> String {
    let out = openssh(sshd, kh, cipher)
        .arg("-v")
        .arg("true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.split("client->server cipher: ").nth(1))
        .map(|c| c.split_whitespace().next().unwrap_or_default().to_string())
        .unwrap_or_else(|| "?".into())
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

async fn ferry_throughput(sshd: &Sshd, opts: &ConnectOptions, data: &[u8]) -> (Duration, String) {
    let session = SshSession::connect(&sshd.target(), opts).await.unwrap();
    let cipher = session.info().cipher.clone();
    let t = Instant::now();
    let mut stream = session.open_stream("cat > /dev/null").await.unwrap();
    for chunk in data.chunks(1 << 20) {
        stream.write_all(chunk).await.unwrap();
    }
    stream.shutdown().await.unwrap();
    let status = stream.wait_exit().await;
    let elapsed = t.elapsed();
    assert_eq!(status, Some(ferry::ssh::ExitStatus::Code(0)));
    (elapsed, cipher)
}

fn openssh_throughput(
    sshd: &Sshd,
    kh: &std::path::Path,
    file: &std::path::Path,
    cipher: Option<&str>,
) -> Duration {
    let t = Instant::now();
    let st = openssh(sshd, kh, cipher)
        .arg("cat > /dev/null")
        .stdin(std::fs::File::open(file).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    t.elapsed()
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`) just checks it builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_usize("FERRY_BENCH_COMMANDS", 100);
    let mib = env_usize("FERRY_BENCH_MIB", 512);
    let sshd = Sshd::start();
    let opts = sshd.options();
    let kh = opts.ferry_known_hosts.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();

    println!(
        "ssh bench: OpenSSH sshd on 127.0.0.1:{}, {}",
        sshd.port,
        String::from_utf8_lossy(&Command::new("ssh").arg("-V").output().unwrap().stderr).trim()
    );

    // 1. Latency. Both sides run the commands as the plain test user (login shell /bin/sh): root's
    // ~/.bashrc on the project's machines runs `pyenv init`, which bash sources for every command sshd
    // starts and which costs ~100 ms per command for both tools; that measures the machine's dotfiles,
    // not the transport.
    sshd::ensure_test_user();
    let user_target =
        Target::parse(&format!("{}@127.0.0.1:{}", sshd::TEST_USER, sshd.port)).unwrap();
    let ferry_cmds = rt.block_on(async {
        let session = SshSession::connect(&user_target, &opts).await.unwrap();
        // One warm-up command, not counted.
        session
            .exec("true")
            .await
            .unwrap()
            .wait_with_output()
            .await
            .unwrap();
        let t = Instant::now();
        for _ in 0..n {
            let out = session
                .exec("true")
                .await
                .unwrap()
                .wait_with_output()
                .await
                .unwrap();
            assert!(out.status.success());
        }
        t.elapsed()
    });
    let t = Instant::now();
    for _ in 0..n {
        let st = openssh_as(&sshd, &kh, None, sshd::TEST_USER)
            .arg("true")
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    let openssh_cmds = t.elapsed();
    println!();
    println!("{n} sequential `true` (as {}):", sshd::TEST_USER);
    println!(
        "  ferry (one connection) {:>9.1} ms  ({:.2} ms/command)",
        ferry_cmds.as_secs_f64() * 1e3,
        ferry_cmds.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "  OpenSSH ssh host true  {:>9.1} ms  ({:.2} ms/command)",
        openssh_cmds.as_secs_f64() * 1e3,
        openssh_cmds.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "  ratio: ferry is {:.1}x faster (target >= 10x)",
        openssh_cmds.as_secs_f64() / ferry_cmds.as_secs_f64()
    );

    // 2. Throughput, per cipher.
    let file = sshd.path("bench-data");
    let data: Vec<u8> = (0..mib << 20)
        .map(|i| (i as u32).wrapping_mul(2654435761) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    println!();
    println!("{mib} MiB through one channel into `cat > /dev/null`:");
    for cipher in [
        None,
        Some("aes256-gcm@openssh.com"),
        Some("chacha20-poly1305@openssh.com"),
        Some("aes128-ctr"),
    ] {
        let mut o = opts.clone();
        if let Some(c) = cipher {
            o.ciphers = vec![c.to_string()];
        }
        let (ferry_t, ferry_cipher) = rt.block_on(ferry_throughput(&sshd, &o, &data));
        let ossh_t = openssh_throughput(&sshd, &kh, &file, cipher);
        let ossh_cipher = openssh_cipher(&sshd, &kh, cipher);
        println!(
            "  {:<32} ferry {:>7.1} MiB/s [{}]   OpenSSH {:>7.1} MiB/s [{}]   ferry/OpenSSH time = {:.2}x (target <= 1.5x)",
            cipher.unwrap_or("(defaults)"),
            mib_per_s(data.len(), ferry_t),
            ferry_cipher,
            mib_per_s(data.len(), ossh_t),
            ossh_cipher,
            ferry_t.as_secs_f64() / ossh_t.as_secs_f64(),
        );
    }
}
