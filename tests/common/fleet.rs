//! Test support: a local fleet of test hosts (see `docs/test-fleet.md`), driven through `dev/fleet`.
//!
//! Include it from an integration test or a benchmark with
//!
//! ```ignore
//! #[path = "common/fleet.rs"]   // from benches/: #[path = "../tests/common/fleet.rs"]
//! mod fleet;
//! let fleet = fleet::Fleet::up(2);
//! let out = fleet.exec_ok(0, &["nix-store", "--verify"]);
//! ```
//!
//! Each [`Fleet`] lives in its own temporary directory with its own ports, so tests running in parallel do not
//! collide. Dropping it runs `dev/fleet down`, which kills every process the fleet started. Test code only:
//! failures panic with the script's output, and nothing here belongs to the library's layers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;

/// Options for [`Fleet::up_with`].
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    /// Put each host behind `ferry-shaper`: `(round-trip time in ms, Mbit/s per direction)`.
    pub shaped: Option<(u32, u32)>,
}

impl FleetOptions {
    pub fn shaped(rtt_ms: u32, mbit: u32) -> Self {
        Self {
            shaped: Some((rtt_ms, mbit)),
        }
    }
}

/// `hosts.json`, as written by `dev/fleet up`.
#[derive(Debug, Clone, Deserialize)]
pub struct FleetInfo {
    pub version: u32,
    pub dir: PathBuf,
    pub shaped: Option<Shaped>,
    /// The client's private key (OpenSSH format, ed25519), authorized for every user on every host.
    pub client_key: PathBuf,
    pub client_public_key: String,
    /// known_hosts with `[127.0.0.1]:PORT` lines for every host (and its direct sshd port when shaped).
    pub known_hosts: PathBuf,
    /// An ssh_config with a `Host hostN` alias per host (for `ssh -F`, `NIX_SSHOPTS="-F ..."`).
    pub ssh_config: PathBuf,
    pub users: Users,
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Shaped {
    pub rtt_ms: f64,
    pub mbit: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Users {
    pub root: String,
    /// In the hosts' `trusted-users`; passwordless sudo.
    pub trusted: String,
    /// Not trusted by the hosts' daemons; sudo asks for `password`.
    pub untrusted: String,
    /// Password of both non-root users (sudo of the untrusted one needs it).
    pub password: String,
    pub keys_group: String,
}

/// One test host.
#[derive(Debug, Clone, Deserialize)]
pub struct Host {
    pub name: String,
    pub address: String,
    /// The port clients use (the shaper's when shaped).
    pub ssh_port: u16,
    /// sshd's own port (equals `ssh_port` unless shaped).
    pub sshd_port: u16,
    pub root_user: String,
    pub trusted_user: String,
    pub untrusted_user: String,
    pub client_key: PathBuf,
    /// `ssh-ed25519 AAAA...`
    pub host_public_key: String,
    pub host_public_key_file: PathBuf,
    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...`
    pub known_hosts_line: String,
    /// The host's directory: `nix/` (its /nix), `etc/nix/nix.conf`, `etc/ssh/`, `log/`.
    pub root_dir: PathBuf,
    /// The host's /nix/store, seen from outside.
    pub store_dir: PathBuf,
    pub nix_state_dir: PathBuf,
    /// The host's nix-daemon socket, reachable from outside (`unix://` store URL).
    pub daemon_socket: PathBuf,
    /// Bind-mounted over /etc/nix/nix.conf inside the host.
    pub nix_conf: PathBuf,
    /// Pid of the host's namespace holder (pid 1 inside): `nsenter -t ns_pid -m -p`.
    pub ns_pid: u32,
    pub mnt_ns: String,
    pub pid_ns: String,
    /// `/proc/<ns_pid>/root`: the host's file system as its processes see it (e.g. `ns_root/run/keys`).
    pub ns_root: PathBuf,
    pub log_dir: PathBuf,
}

impl Host {
    /// `ssh://`/`ssh-ng://` authority: `user@127.0.0.1` (the port goes in `NIX_SSHOPTS`).
    pub fn authority(&self, user: &str) -> String {
        format!("{user}@{}", self.address)
    }

    /// A store URL for the host's daemon socket, from outside.
    pub fn daemon_store_url(&self) -> String {
        format!("unix://{}", self.daemon_socket.display())
    }

    /// A path inside the host's file system, as seen from outside (through `/proc/PID/root`).
    pub fn inside(&self, path: &str) -> PathBuf {
        self.ns_root.join(path.trim_start_matches('/'))
    }
}

/// A running fleet; dropping it tears it down.
pub struct Fleet {
    pub info: FleetInfo,
    // Declared after `info` and removed after `down` (Drop order of fields follows declaration order).
    dir: Option<tempfile::TempDir>,
    is_down: bool,
}

/// Path of the `dev/fleet` script of this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dev/fleet")
}

impl Fleet {
    /// Starts `n` hosts; panics with the script's output when that fails.
    pub fn up(n: usize) -> Fleet {
        Self::up_with(n, FleetOptions::default())
    }

    pub fn up_with(n: usize, opts: FleetOptions) -> Fleet {
        // Short paths: the daemon socket path must stay under the 108-byte unix socket limit.
        let dir = tempfile::Builder::new()
            .prefix("ferry-fleet-")
            .tempdir_in("/tmp")
            .expect("create a fleet temp dir");
        let mut cmd = Command::new(script());
        cmd.arg("up")
            .arg(n.to_string())
            .arg("--dir")
            .arg(dir.path());
        if let Some((rtt, mbit)) = opts.shaped {
            cmd.arg("--shaped").arg(format!("{rtt}:{mbit}"));
            cmd.env("FERRY_SHAPER", env!("CARGO_BIN_EXE_ferry-shaper"));
        }
        let out = run(&mut cmd);
        if !out.status.success() {
            panic!(
                "dev/fleet up {n} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let json_path = dir.path().join("hosts.json");
        let text = std::fs::read_to_string(&json_path).expect("read hosts.json");
        let info: FleetInfo = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parse {}: {e}", json_path.display()));
        assert_eq!(
            info.hosts.len(),
            n,
            "hosts.json lists {} hosts, wanted {n}",
            info.hosts.len()
        );
        Fleet {
            info,
            dir: Some(dir),
            is_down: false,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.info.dir
    }

    pub fn hosts(&self) -> &[Host] {
        &self.info.hosts
    }

    pub fn host(&self, i: usize) -> &Host {
        &self.info.hosts[i]
    }

    /// Runs `cmd` as root inside host `i` (its mount and PID namespaces), via `dev/fleet exec`.
    pub fn exec(&self, i: usize, cmd: &[&str]) -> Output {
        self.exec_as(i, None, cmd)
    }

    /// Runs `cmd` inside host `i` as `user` (root when `None`).
    pub fn exec_as(&self, i: usize, user: Option<&str>, cmd: &[&str]) -> Output {
        let mut c = Command::new(script());
        c.arg("exec").arg("--dir").arg(self.dir());
        if let Some(u) = user {
            c.arg("-u").arg(u);
        }
        c.arg(&self.host(i).name).args(cmd);
        run(&mut c)
    }

    /// Like [`Fleet::exec`], panicking unless the command succeeds; returns its stdout.
    pub fn exec_ok(&self, i: usize, cmd: &[&str]) -> String {
        let out = self.exec(i, cmd);
        if !out.status.success() {
            panic!(
                "{} on {}: {}\nstdout: {}\nstderr: {}",
                cmd.join(" "),
                self.host(i).name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// OpenSSH options that reach host `i` with the fleet's key and known_hosts, strictly checked.
    pub fn ssh_opts(&self, i: usize) -> Vec<String> {
        let h = self.host(i);
        vec![
            "-p".into(),
            h.ssh_port.to_string(),
            "-i".into(),
            self.info.client_key.display().to_string(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.info.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-F".into(),
            "/dev/null".into(),
        ]
    }

    /// `NIX_SSHOPTS` for `nix-copy-closure --to USER@127.0.0.1` / `nix copy --to ssh-ng://USER@127.0.0.1`.
    pub fn nix_sshopts(&self, i: usize) -> String {
        self.ssh_opts(i).join(" ")
    }

    /// An OpenSSH `ssh` command to host `i` as `user`, running `remote` (words joined by the remote shell).
    pub fn ssh(&self, i: usize, user: &str, remote: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.ssh_opts(i))
            .arg(self.host(i).authority(user))
            .arg("--")
            .args(remote);
        c
    }

    /// Adds `key` (`name:base64`) to host `i`'s `trusted-public-keys` and restarts its daemon.
    pub fn trust_key(&self, i: usize, key: &str) {
        self.script_ok(&["trust-key", &self.host(i).name, key]);
    }

    /// Restarts host `i`'s nix-daemon (after editing its `nix_conf`).
    pub fn restart_daemon(&self, i: usize) {
        self.script_ok(&["restart-daemon", &self.host(i).name]);
    }

    fn script_ok(&self, args: &[&str]) {
        let mut c = Command::new(script());
        c.args(args).arg("--dir").arg(self.dir());
        let out = run(&mut c);
        if !out.status.success() {
            panic!(
                "dev/fleet {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Tears the fleet down now (also done on drop); the directory stays until the `Fleet` is dropped.
    pub fn down(&mut self) -> Output {
        self.is_down = true;
        let mut c = Command::new(script());
        c.arg("down").arg("--dir").arg(self.dir());
        run(&mut c)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if !self.is_down {
            let out = self.down();
            if !out.status.success() {
                eprintln!(
                    "dev/fleet down failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // Keep the directory (logs) when processes may be left over.
                if let Some(d) = self.dir.take() {
                    let _ = d.keep();
                }
            }
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}
