//! Test support for the daemon tests: private nix-daemons and Nix fixtures.
//!
//! - [`Daemon::host`]: a nix-daemon on the host's store, listening on a private socket (so the
//!   tests do not depend on, or disturb, whatever daemon the machine runs);
//! - [`Daemon::isolated`]: a second, separate store: a nix-daemon in its own mount namespace
//!   (`unshare -m`) with a temp dir bind-mounted over `/nix`;
//! - [`build_chain`]: a chain of `/bin/sh` derivations built with the real `nix-build`.
//!
//! Everything is started by the tests (root is required, as in CI) and killed on drop. Nothing is
//! skipped: a missing tool is a test failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry::daemon::LocalClient;
use ferry::store::StorePath;

/// A nix-daemon started by a test.
pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub conf_dir: PathBuf,
    /// The temp dir mounted over /nix inside the daemon's namespace (isolated daemons only).
    pub nix_root: Option<PathBuf>,
}

const BASE_CONF: &str = "sandbox = false\nsubstituters =\nbuild-users-group =\n";

fn write_conf(dir: &Path, extra: &str) -> PathBuf {
    let conf_dir = dir.join("conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(conf_dir.join("nix.conf"), format!("{BASE_CONF}{extra}\n")).unwrap();
    conf_dir
}

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ferry-daemon-test-")
        .tempdir()
        .unwrap();
    // World-traversable so that an unprivileged client can reach the socket.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

impl Daemon {
    /// A daemon on the host's own store, on a private socket.
    pub fn host() -> Daemon {
        let dir = private_dir();
        let socket = dir.path().join("socket");
        let conf_dir = write_conf(dir.path(), "");
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new("nix-daemon")
            .env("NIX_DAEMON_SOCKET_PATH", &socket)
            .env("NIX_CONF_DIR", &conf_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nix-daemon must be installed (apt-get install nix-bin)");
        let d = Daemon {
            child,
            dir,
            socket,
            conf_dir,
            nix_root: None,
        };
        d.wait_ready();
        d
    }

    /// A daemon with its own, empty store: `/nix` is a temp dir in a private mount namespace.
    /// `extra_conf` is appended to its nix.conf (e.g. `trusted-users`, `trusted-public-keys`).
    pub fn isolated(extra_conf: &str) -> Daemon {
        let dir = private_dir();
        let socket = dir.path().join("socket");
        let conf_dir = write_conf(dir.path(), extra_conf);
        let nix_root = dir.path().join("nix");
        // The state dir must exist: otherwise the daemon's workers find no local store and, with
        // NIX_DAEMON_SOCKET_PATH set, connect to their own socket.
        std::fs::create_dir_all(nix_root.join("var/nix")).unwrap();
        std::fs::create_dir_all(nix_root.join("store")).unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        // unshare and sh exec into nix-daemon, so the child's pid is the daemon's.
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" /nix && exec nix-daemon")
            .arg("sh")
            .arg(&nix_root)
            .env("NIX_DAEMON_SOCKET_PATH", &socket)
            .env("NIX_CONF_DIR", &conf_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("unshare must be installed (util-linux)");
        let d = Daemon {
            child,
            dir,
            socket,
            conf_dir,
            nix_root: Some(nix_root),
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!("nix-daemon did not start: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Connect ferry's client to this daemon.
    pub async fn client(&self) -> LocalClient {
        LocalClient::connect_unix(&self.socket).await.unwrap()
    }

    /// A Nix command that acts on this daemon's store: inside its mount namespace (as root, so on
    /// the local store directly) for isolated daemons, plainly for the host one.
    pub fn nix_cmd(&self, program: &str) -> Command {
        let mut c = if self.nix_root.is_some() {
            let mut c = Command::new("nsenter");
            c.arg("-t")
                .arg(self.pid().to_string())
                .arg("-m")
                .arg("--")
                .arg(program);
            c
        } else {
            Command::new(program)
        };
        c.env("NIX_CONF_DIR", &self.conf_dir);
        c
    }

    /// Run a Nix command on this store; panics with its stderr unless it succeeds.
    pub fn nix(&self, program: &str, args: &[&str]) -> String {
        let out = self.nix_cmd(program).args(args).output().unwrap();
        check(program, args, &out);
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn check(program: &str, args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a command on the host store; panics unless it succeeds; returns stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    check(program, args, &out);
    String::from_utf8(out.stdout).unwrap()
}

pub fn store_path(s: &str) -> StorePath {
    StorePath::from_absolute_path(s.trim()).unwrap()
}

pub fn lines_to_paths(s: &str) -> Vec<StorePath> {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(store_path)
        .collect()
}

/// Build a chain of `n + 1` derivations on the host store (each depends on the previous two and
/// holds `blob_bytes` of random data) and return the top output path. A fresh nonce makes
/// every call build new paths.
pub fn build_chain(n: usize, blob_bytes: usize) -> StorePath {
    let nonce = uuid::Uuid::new_v4().to_string();
    build_chain_with_nonce(n, blob_bytes, &nonce)
}

pub fn build_chain_with_nonce(n: usize, blob_bytes: usize, nonce: &str) -> StorePath {
    let expr = format!(
        r#"
let
  nonce = "{nonce}";
  mk = i: derivation {{
    name = "ferry-chain-${{toString i}}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    prev = if i == 0 then "" else builtins.elemAt drvs (i - 1);
    prev2 = if i < 2 then "" else builtins.elemAt drvs (i - 2);
    args = [ "-c" ''
      export PATH=/usr/bin:/bin
      mkdir -p $out/sub
      echo ${{nonce}}-${{toString i}} > $out/data
      echo "$prev $prev2" > $out/sub/refs
      printf '#!/bin/sh\necho hi\n' > $out/run
      chmod +x $out/run
      ln -s data $out/link
      if [ {blob_bytes} -gt 0 ]; then head -c {blob_bytes} /dev/urandom > $out/blob; fi
    '' ];
  }};
  drvs = builtins.genList mk ({n} + 1);
in builtins.elemAt drvs {n}
"#
    );
    let out = Command::new("nix-build")
        .args([
            "--no-out-link",
            "--option",
            "substituters",
            "",
            "--max-jobs",
            "2",
            "-E",
            &expr,
        ])
        .output()
        .expect("nix-build must be installed (apt-get install nix-bin)");
    check("nix-build", &["-E", "<chain>"], &out);
    store_path(String::from_utf8(out.stdout).unwrap().trim())
}

/// A unique nonce for derivations that must build fresh.
pub fn nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}
