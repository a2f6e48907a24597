//! The local test fleet (`dev/fleet`, `tests/common/fleet.rs`) checked against the real thing: hosts come up
//! with the recorded host keys, stores and /run/keys are private per host, the daemons' trust settings
//! apply, `nix-copy-closure` and `nix copy` into a host verify, shaped mode adds the configured latency and
//! bandwidth cap, parallel fleets do not collide, and `down` leaves no process behind.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

#[path = "common/fleet.rs"]
mod fleet;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fleet::{Fleet, FleetOptions};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// A two-path closure (top references dep) built in the local store; unique per call.
fn build_closure() -> (String, Vec<String>) {
    let nonce = uuid::Uuid::new_v4();
    let expr = format!(
        r#"let dep = derivation {{ name = "fleet-dep"; system = builtins.currentSystem; builder = "/bin/sh";
                                  args = ["-c" "echo {nonce} > $out"]; }};
           in derivation {{ name = "fleet-top"; system = builtins.currentSystem; builder = "/bin/sh";
                            args = ["-c" "echo ${{dep}} > $out"]; }}"#
    );
    let top = ok(Command::new("nix-build").args([
        "--option",
        "substituters",
        "",
        "--no-out-link",
        "-E",
        &expr,
    ]));
    let closure = ok(Command::new("nix-store").args(["-qR", &top]));
    let mut closure: Vec<String> = closure.lines().map(str::to_string).collect();
    closure.sort();
    assert_eq!(closure.len(), 2, "closure of {top}: {closure:?}");
    (top, closure)
}

fn valid_on(fleet: &Fleet, i: usize, path: &str) -> bool {
    fleet
        .exec(i, &["nix-store", "--check-validity", path])
        .status
        .success()
}

#[test]
fn hosts_come_up_and_sshd_presents_the_recorded_host_key() {
    let fleet = Fleet::up(2);
    for (i, h) in fleet.hosts().iter().enumerate() {
        assert_eq!(ok(&mut fleet.ssh(i, "root", &["id", "-u"])), "0");
        let scanned = ok(Command::new("ssh-keyscan").args([
            "-t",
            "ed25519",
            "-p",
            &h.ssh_port.to_string(),
            "127.0.0.1",
        ]));
        let line = scanned.lines().find(|l| !l.starts_with('#')).unwrap();
        assert_eq!(line, h.known_hosts_line, "ssh-keyscan of {}", h.name);
        let file = std::fs::read_to_string(&h.host_public_key_file).unwrap();
        assert!(file.starts_with(&h.host_public_key));
        let known = std::fs::read_to_string(&fleet.info.known_hosts).unwrap();
        assert!(known.lines().any(|l| l == h.known_hosts_line));
    }
    // Control: the check is live. An empty known_hosts and another host's key are both refused.
    let empty = fleet.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let wrong = fleet.dir().join("wrong_known_hosts");
    let h0 = fleet.host(0);
    std::fs::write(
        &wrong,
        format!(
            "[127.0.0.1]:{} {}\n",
            h0.ssh_port,
            fleet.host(1).host_public_key
        ),
    )
    .unwrap();
    for kh in [&empty, &wrong] {
        let out = Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &h0.ssh_port.to_string(), "-i"])
            .arg(&fleet.info.client_key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", kh.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "root@127.0.0.1",
                "true",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "ssh with {} succeeded", kh.display());
        assert!(
            stderr(&out).contains("Host key verification failed"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn users_log_in_and_sudo_works() {
    let fleet = Fleet::up(1);
    let users = &fleet.info.users;
    assert_eq!(
        ok(&mut fleet.ssh(0, &users.trusted, &["id", "-un"])),
        users.trusted
    );
    assert_eq!(
        ok(&mut fleet.ssh(0, &users.trusted, &["sudo", "-n", "id", "-u"])),
        "0"
    );
    assert_eq!(
        ok(&mut fleet.ssh(0, &users.untrusted, &["id", "-un"])),
        users.untrusted
    );
    let out = fleet
        .ssh(0, &users.untrusted, &["sudo", "-n", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "untrusted user has passwordless sudo"
    );
    // The password goes over stdin, as ferry will send it.
    let mut child = fleet
        .ssh(0, &users.untrusted, &["sudo", "-S", "-p", "''", "id", "-u"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{}", users.password).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sudo -S: {}", stderr(&out));
    assert_eq!(stdout(&out), "0");
    // Remote commands reach the host's own store through PATH.
    let which = ok(&mut fleet.ssh(0, "root", &["command", "-v", "nix-daemon", "nix-store"]));
    assert_eq!(which.lines().count(), 2, "{which}");
}

#[test]
fn stores_are_separate_and_reachable_from_outside() {
    let fleet = Fleet::up(2);
    let content = format!("fleet-store-test {}\n", uuid::Uuid::new_v4());
    let path = fleet.exec_ok(
        0,
        &[
            "sh",
            "-c",
            &format!("printf '{content}' > /run/ferry/f && nix-store --add /run/ferry/f"),
        ],
    );
    let path = path.trim();
    assert!(path.starts_with("/nix/store/"), "{path}");
    assert!(valid_on(&fleet, 0, path));
    assert!(!valid_on(&fleet, 1, path), "{path} leaked into host1");
    assert!(
        !Path::new(path).exists(),
        "{path} leaked into the machine's /nix"
    );
    let base = path.trim_start_matches("/nix/store/");
    let h0 = fleet.host(0);
    assert_eq!(
        std::fs::read_to_string(h0.store_dir.join(base)).unwrap(),
        content
    );
    assert_eq!(std::fs::read_to_string(h0.inside(path)).unwrap(), content);
    assert!(!fleet.host(1).store_dir.join(base).exists());
    // Each daemon socket answers from outside, for its own store.
    for (i, expect) in [(0, true), (1, false)] {
        let out = Command::new("nix-store")
            .args([
                "--store",
                &fleet.host(i).daemon_store_url(),
                "--check-validity",
                path,
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            expect,
            "host{i} via its socket: {}",
            stderr(&out)
        );
    }
    // Mounts are private: host0 sees its own /nix, the machine's /nix is untouched.
    let mounts = fleet.exec_ok(0, &["findmnt", "-n", "-o", "SOURCE", "/nix"]);
    assert!(
        mounts.contains(&h0.root_dir.join("nix").display().to_string()),
        "{mounts}"
    );
}

#[test]
fn run_keys_is_a_private_tmpfs_with_the_right_mode() {
    let fleet = Fleet::up(2);
    for i in 0..2 {
        assert_eq!(
            fleet
                .exec_ok(i, &["stat", "-f", "-c", "%T", "/run/keys"])
                .trim(),
            "tmpfs"
        );
        assert_eq!(
            fleet
                .exec_ok(i, &["stat", "-c", "%a %U %G", "/run/keys"])
                .trim(),
            "750 root keys"
        );
    }
    fleet.exec_ok(
        0,
        &[
            "sh",
            "-c",
            "echo secret > /run/keys/k && chmod 0600 /run/keys/k",
        ],
    );
    assert!(fleet.host(0).inside("/run/keys/k").exists());
    assert!(
        !fleet.host(1).inside("/run/keys/k").exists(),
        "key visible on host1"
    );
    assert!(
        !Path::new("/run/keys/k").exists(),
        "key visible on the machine"
    );
    // The untrusted user cannot list it (not in the keys group).
    let out = fleet.exec_as(0, Some(&fleet.info.users.untrusted), &["ls", "/run/keys"]);
    assert!(!out.status.success(), "untrusted user can list /run/keys");
}

#[test]
fn nix_copy_closure_into_a_host_succeeds_and_verifies() {
    let fleet = Fleet::up(2);
    let (top, closure) = build_closure();
    let out = Command::new("nix-copy-closure")
        .args(["--to", &fleet.host(0).authority("root"), &top])
        .env("NIX_SSHOPTS", fleet.nix_sshopts(0))
        .output()
        .unwrap();
    assert!(out.status.success(), "nix-copy-closure: {}", stderr(&out));
    let mut remote: Vec<String> = fleet
        .exec_ok(0, &["nix-store", "-qR", &top])
        .lines()
        .map(str::to_string)
        .collect();
    remote.sort();
    assert_eq!(remote, closure);
    let verify = fleet.exec(0, &["nix-store", "--verify", "--check-contents"]);
    assert!(verify.status.success(), "verify: {}", stderr(&verify));
    assert!(!stderr(&verify).contains("error"), "{}", stderr(&verify));
    assert!(!valid_on(&fleet, 1, &top));

    // nix copy over ssh-ng (the daemon protocol over ssh) to host1.
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "copy",
            "--option",
            "substituters",
            "",
        ])
        .args([
            "--no-check-sigs",
            "--to",
            &format!("ssh-ng://{}", fleet.host(1).authority("root")),
            &top,
        ])
        .env("NIX_SSHOPTS", fleet.nix_sshopts(1))
        .output()
        .unwrap();
    assert!(out.status.success(), "nix copy: {}", stderr(&out));
    assert!(valid_on(&fleet, 1, &top));
    let verify = fleet.exec(1, &["nix-store", "--verify", "--check-contents"]);
    assert!(verify.status.success(), "verify: {}", stderr(&verify));
}

fn nix_copy_as(fleet: &Fleet, i: usize, user: &str, path: &str, check_sigs: bool) -> Output {
    let mut c = Command::new("nix");
    c.args([
        "--extra-experimental-features",
        "nix-command",
        "copy",
        "--option",
        "substituters",
        "",
    ]);
    if !check_sigs {
        c.arg("--no-check-sigs");
    }
    c.args([
        "--to",
        &format!("ssh-ng://{}", fleet.host(i).authority(user)),
        path,
    ]);
    c.env("NIX_SSHOPTS", fleet.nix_sshopts(i)).output().unwrap()
}

#[test]
fn daemon_trust_follows_the_host_config() {
    let fleet = Fleet::up(1);
    let users = fleet.info.users.clone();
    let (top, _) = build_closure();
    // Untrusted user, unsigned paths: refused even when the client asks not to check.
    let out = nix_copy_as(&fleet, 0, &users.untrusted, &top, false);
    assert!(!out.status.success(), "untrusted user added unsigned paths");
    assert!(
        stderr(&out).contains("lacks a valid signature"),
        "{}",
        stderr(&out)
    );
    assert!(!valid_on(&fleet, 0, &top));
    // Trusted user: accepted without signatures.
    let out = nix_copy_as(&fleet, 0, &users.trusted, &top, false);
    assert!(out.status.success(), "trusted user: {}", stderr(&out));
    fleet.exec_ok(0, &["nix-store", "--delete", &top]);
    let dep = fleet.exec_ok(0, &["sh", "-c", "ls -d /nix/store/*-fleet-dep"]);
    fleet.exec_ok(0, &["nix-store", "--delete", dep.trim()]);
    assert!(!valid_on(&fleet, 0, &top));

    // Untrusted user, signed paths, key trusted by the host after `trust-key`.
    let keys = tempfile::tempdir().unwrap();
    let (sk, pk) = (keys.path().join("sk"), keys.path().join("pk"));
    ok(Command::new("nix-store")
        .args(["--generate-binary-cache-key", "fleet-test-1"])
        .arg(&sk)
        .arg(&pk));
    ok(Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "store",
            "sign",
            "-r",
            "--key-file",
        ])
        .arg(&sk)
        .arg(&top));
    let out = nix_copy_as(&fleet, 0, &users.untrusted, &top, true);
    assert!(
        !out.status.success(),
        "signed by an unknown key, yet accepted"
    );
    let pk = std::fs::read_to_string(&pk).unwrap();
    fleet.trust_key(0, pk.trim());
    let conf = std::fs::read_to_string(&fleet.host(0).nix_conf).unwrap();
    assert!(conf.contains(pk.trim()), "{conf}");
    let out = nix_copy_as(&fleet, 0, &users.untrusted, &top, true);
    assert!(
        out.status.success(),
        "signed paths refused: {}",
        stderr(&out)
    );
    assert!(valid_on(&fleet, 0, &top));
}

fn processes_matching(pred: impl Fn(u32, &str, &str, &str) -> bool) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let p = entry.path();
        let cmdline = std::fs::read(p.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let pidns = std::fs::read_link(p.join("ns/pid"))
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let mntns = std::fs::read_link(p.join("ns/mnt"))
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        if pred(pid, &cmdline, &pidns, &mntns) {
            found.push((pid, cmdline));
        }
    }
    found
}

#[test]
fn down_kills_every_process_it_started() {
    let mut fleet = Fleet::up_with(2, FleetOptions::default());
    let dir = fleet.dir().display().to_string();
    let pidns: HashSet<String> = fleet.hosts().iter().map(|h| h.pid_ns.clone()).collect();
    let mntns: HashSet<String> = fleet.hosts().iter().map(|h| h.mnt_ns.clone()).collect();
    // Busy hosts: a long remote command, a nix-daemon session over ssh, and a daemonised sleeper.
    let mut sleeper = fleet
        .ssh(0, "root", &["sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut session = fleet
        .ssh(1, "root", &["nix-daemon", "--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    fleet.exec_ok(
        1,
        &["sh", "-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 &"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = processes_matching(|_, _, p, _| pidns.contains(p));
    assert!(
        before.len() >= 8,
        "expected the hosts' processes, found {before:?}"
    );
    let ports: Vec<u16> = fleet.hosts().iter().map(|h| h.ssh_port).collect();

    let out = fleet.down();
    assert!(out.status.success(), "down: {}", stderr(&out));
    let left = processes_matching(|_, cmd, p, m| {
        pidns.contains(p) || mntns.contains(m) || cmd.contains(&dir)
    });
    assert!(left.is_empty(), "left over: {left:?}");
    for port in ports {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
    // The clients see their connections end.
    for child in [&mut sleeper, &mut session] {
        let t = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "ssh client still connected"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(session.stdin.take());
}

#[test]
fn parallel_fleets_do_not_collide() {
    let fleets: Vec<Fleet> = std::thread::scope(|s| {
        (0..3)
            .map(|_| s.spawn(|| Fleet::up(2)))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect()
    });
    let mut ports = HashSet::new();
    let mut sockets = HashSet::new();
    for f in &fleets {
        for (i, h) in f.hosts().iter().enumerate() {
            assert!(ports.insert(h.ssh_port), "port {} used twice", h.ssh_port);
            assert!(sockets.insert(h.daemon_socket.clone()));
            // Each port leads to its own host: pid 1 there is that host's holder.
            let init = ok(&mut f.ssh(i, "root", &["cat", "/proc/1/cmdline"])).replace('\0', " ");
            assert!(
                init.contains(h.root_dir.to_str().unwrap()),
                "{} reached {init}",
                h.name
            );
        }
    }
}

/// Median round trip of one line through `ssh HOST cat`.
fn ssh_ping_pong(fleet: &Fleet, i: usize, port: u16, rounds: usize) -> Duration {
    let mut opts = fleet.ssh_opts(i);
    opts[1] = port.to_string();
    let mut child = Command::new("ssh")
        .args(&opts)
        .arg(fleet.host(i).authority("root"))
        .arg("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut samples = Vec::new();
    let mut line = String::new();
    for n in 0..=rounds {
        let t = Instant::now();
        writeln!(input, "{n}").unwrap();
        input.flush().unwrap();
        line.clear();
        output.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), n.to_string());
        if n > 0 {
            samples.push(t.elapsed());
        }
    }
    drop(input);
    child.wait().unwrap();
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
fn shaped_mode_adds_latency_and_caps_bandwidth() {
    let (rtt_ms, mbit) = (20u32, 40u32);
    let fleet = Fleet::up_with(1, FleetOptions::shaped(rtt_ms, mbit));
    let h = fleet.host(0).clone();
    assert_ne!(h.ssh_port, h.sshd_port);
    let shaped = ssh_ping_pong(&fleet, 0, h.ssh_port, 30);
    let direct = ssh_ping_pong(&fleet, 0, h.sshd_port, 30);
    eprintln!(
        "ssh cat ping-pong: shaped {shaped:?} (configured RTT {rtt_ms} ms), direct {direct:?}"
    );
    assert!(
        shaped >= Duration::from_millis(rtt_ms.into()),
        "shaped RTT {shaped:?}"
    );
    assert!(
        shaped <= Duration::from_millis((rtt_ms + 15).into()),
        "shaped RTT {shaped:?}"
    );
    assert!(direct < Duration::from_millis(10), "direct RTT {direct:?}");

    // Downstream throughput, timed from the first byte to the last (setup excluded).
    let len: usize = 3 << 20;
    let mut child = fleet
        .ssh(0, "root", &["head", "-c", &len.to_string(), "/dev/zero"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let first = out.read(&mut buf).unwrap();
    let t = Instant::now();
    let mut total = first;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    let secs = t.elapsed().as_secs_f64();
    child.wait().unwrap();
    assert_eq!(total, len);
    let measured = (total - first) as f64 * 8.0 / secs / 1e6;
    eprintln!("ssh download through the shaper: {measured:.1} Mbit/s (cap {mbit} Mbit/s)");
    assert!(
        measured <= mbit as f64 * 1.05,
        "{measured:.1} Mbit/s exceeds the cap"
    );
    assert!(
        measured >= mbit as f64 * 0.7,
        "{measured:.1} Mbit/s is far below the cap"
    );
}

#[test]
fn local_daemon_is_idempotent() {
    for _ in 0..2 {
        let out = Command::new(fleet::script())
            .arg("local-daemon")
            .output()
            .unwrap();
        assert!(out.status.success(), "local-daemon: {}", stderr(&out));
    }
    ok(Command::new("nix").args([
        "--extra-experimental-features",
        "nix-command",
        "store",
        "ping",
        "--store",
        "daemon",
    ]));
}
