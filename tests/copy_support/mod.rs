//! Test support for the copy tests: a `dev/fleet` of real hosts (own nix-daemon and sshd each),
//! brought up per test and torn down on drop, plus helpers to look inside a host's store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferry::copy::Endpoint;
use ferry::ssh::{ConnectOptions, Target};

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A fleet started by a test (`dev/fleet up N --dir DIR`), stopped and purged on drop.
pub struct Fleet {
    pub dir: PathBuf,
    pub n: usize,
    _tmp: tempfile::TempDir,
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Fleet {
    pub fn up(n: usize) -> Fleet {
        Self::up_with(n, &[])
    }

    /// `extra`: more arguments for `dev/fleet up` (e.g. `--shaped 20:100`).
    pub fn up_with(n: usize, extra: &[&str]) -> Fleet {
        // Short: the daemon socket path must fit in 107 bytes.
        let tmp = tempfile::Builder::new()
            .prefix("ffc")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = tmp.path().to_owned();
        let out = Command::new(format!("{REPO}/dev/fleet"))
            .arg("up")
            .arg(n.to_string())
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .output()
            .expect("dev/fleet must run (root, nix-bin, openssh-server)");
        if !out.status.success() {
            // dev/fleet's own clean-up after a failed `up` can miss hosts: stop whatever started
            // before the temp dir (and with it the pid files) goes away.
            let _ = Command::new(format!("{REPO}/dev/fleet"))
                .args(["down", "--dir"])
                .arg(&dir)
                .output();
        }
        check("dev/fleet up", &out);
        Fleet { dir, n, _tmp: tmp }
    }

    pub fn host_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("host{i}"))
    }

    fn read(&self, i: usize, file: &str) -> String {
        std::fs::read_to_string(self.host_dir(i).join(file))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn ssh_port(&self, i: usize) -> u16 {
        self.read(i, "ssh.port").parse().unwrap()
    }

    pub fn sshd_port(&self, i: usize) -> u16 {
        self.read(i, "sshd.port").parse().unwrap()
    }

    pub fn connect_options(&self) -> ConnectOptions {
        let mut o = ConnectOptions::isolated(self.dir.join("known_hosts"));
        o.identity = Some(self.dir.join("client_ed25519"));
        o
    }

    /// Host `i` as `user@127.0.0.1:port` (through the shaper when the fleet is shaped).
    pub fn endpoint(&self, i: usize, user: &str) -> Endpoint {
        Endpoint::Ssh {
            target: Target {
                user: Some(user.to_string()),
                host: "127.0.0.1".to_string(),
                port: Some(self.ssh_port(i)),
            },
            opts: Box::new(self.connect_options()),
        }
    }

    /// A host reached on another port (e.g. through a proxy); its key is accepted as new.
    pub fn endpoint_on_port(&self, port: u16, user: &str) -> Endpoint {
        let mut opts = self.connect_options();
        opts.accept_new_host_keys = true;
        Endpoint::Ssh {
            target: Target {
                user: Some(user.to_string()),
                host: "127.0.0.1".to_string(),
                port: Some(port),
            },
            opts: Box::new(opts),
        }
    }

    /// Run a command inside host `i` as root; returns its output (not checked).
    pub fn exec(&self, i: usize, args: &[&str]) -> Output {
        Command::new(format!("{REPO}/dev/fleet"))
            .arg("exec")
            .arg("--dir")
            .arg(&self.dir)
            .arg(format!("host{i}"))
            .args(args)
            .output()
            .unwrap()
    }

    pub fn exec_ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.exec(i, args);
        check(&format!("host{i}: {args:?}"), &out);
        String::from_utf8(out.stdout).unwrap()
    }

    /// `nix-store --verify --check-contents` inside host `i` reports nothing wrong.
    pub fn assert_verifies(&self, i: usize) {
        let out = self.exec(i, &["nix-store", "--verify", "--check-contents"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "host{i}: verify failed: {err}");
        for bad in ["error", "modified", "corrupt", "invalid", "missing"] {
            assert!(!err.contains(bad), "host{i}: verify not clean: {err}");
        }
    }

    /// Every valid path in host `i`'s store.
    pub fn valid_paths(&self, i: usize) -> BTreeSet<String> {
        self.exec_ok(i, &["nix", "path-info", "--all"])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The store directory entries of host `i` (valid or not), seen from outside.
    pub fn store_entries(&self, i: usize) -> BTreeSet<String> {
        let store = self.host_dir(i).join("nix/store");
        std::fs::read_dir(&store)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".links")
            .map(|n| format!("/nix/store/{n}"))
            .collect()
    }

    fn pids_in_host(&self, i: usize) -> Vec<u32> {
        let want = self.read(i, "ns.pidns");
        let holder: u32 = self.read(i, "ns.pid").parse().unwrap();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/pid")) else {
                continue;
            };
            if ns.to_string_lossy() == want && pid != holder {
                pids.push(pid);
            }
        }
        pids
    }

    /// The host dies: SIGKILL to its sshd (listener and sessions) and nix-daemon, i.e. every
    /// process of its namespace but the holder (all started by this test's fleet).
    pub fn kill_host(&self, i: usize) {
        for pid in self.pids_in_host(i) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }

    /// Bring a killed host back: its sshd on the same port, and its nix-daemon.
    pub fn revive_host(&self, i: usize) {
        let hd = self.host_dir(i);
        let holder = self.read(i, "ns.pid");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(hd.join("log/sshd.log"))
            .unwrap();
        // sshd runs until the fleet is torn down (`dev/fleet down` kills everything in the host's PID
        // namespace, and the holder reaps it), so its handle is dropped on purpose.
        #[allow(clippy::zombie_processes)]
        Command::new("setsid")
            .args([
                "nsenter",
                "-t",
                &holder,
                "-m",
                "-p",
                "--",
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
            ])
            .arg(hd.join("etc/ssh/sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let out = Command::new(format!("{REPO}/dev/fleet"))
            .args(["restart-daemon", "--dir"])
            .arg(&self.dir)
            .arg(format!("host{i}"))
            .output()
            .unwrap();
        check("dev/fleet restart-daemon", &out);
        let port = self.sshd_port(i);
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("host{i}: sshd did not come back");
    }

    pub fn trust_key(&self, i: usize, public_key: &str) {
        let out = Command::new(format!("{REPO}/dev/fleet"))
            .args(["trust-key", "--dir"])
            .arg(&self.dir)
            .arg(format!("host{i}"))
            .arg(public_key)
            .output()
            .unwrap();
        check("dev/fleet trust-key", &out);
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new(format!("{REPO}/dev/fleet"))
            .args(["down", "--purge", "--dir"])
            .arg(&self.dir)
            .output();
    }
}

/// A fresh cache directory for one test.
pub fn cache_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ferry-copy-cache-")
        .tempdir()
        .unwrap()
}

pub fn path_set<'a>(
    paths: impl IntoIterator<Item = &'a ferry::store::StorePath>,
) -> BTreeSet<String> {
    paths.into_iter().map(|p| p.to_absolute()).collect()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something listens on `port`.
pub fn wait_listening(port: u16) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("nothing listens on {port}");
}

/// A child process killed (by its pid) when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
