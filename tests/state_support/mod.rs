//! Helpers shared by the `tests/state_*.rs` suites: a temp directory with its own state file and HOME, running
//! the real `ferry` binary, transcripts for snapshots, and redaction of what changes from run to run.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch world for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
}

/// What one ferry run did.
pub struct Run {
    pub line: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "{} failed:\n{}{}",
            self.line, self.stdout, self.stderr
        );
        self
    }

    pub fn failed(&self) -> &Self {
        assert_ne!(
            self.code, 0,
            "{} should have failed:\n{}{}",
            self.line, self.stdout, self.stderr
        );
        self
    }

    /// `$ ferry …`, stdout, stderr and the exit code, for a snapshot.
    pub fn transcript(&self) -> String {
        let mut t = format!("$ {}\n", self.line);
        if !self.stdout.is_empty() {
            t.push_str(&self.stdout);
            if !self.stdout.ends_with('\n') {
                t.push('\n');
            }
        }
        for l in self.stderr.lines() {
            t.push_str(&format!("stderr| {l}\n"));
        }
        if self.code != 0 {
            t.push_str(&format!("[exit {}]\n", self.code));
        }
        t
    }
}

pub fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("ferry-state-test")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The state file the commands use (in a directory that does not exist yet).
    pub fn state(&self) -> PathBuf {
        self.path().join("ferry").join("state.db")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A `ferry` command with a clean environment: no FERRY_* from the caller, HOME in the temp dir, an empty
    /// NIX_PATH, run from the temp dir.
    pub fn command(&self) -> Command {
        let mut c = Command::new(ferry_bin());
        c.current_dir(self.path())
            .env("HOME", self.path())
            .env("NIX_PATH", "")
            .env("FERRY_STATE", self.state())
            .env("USER", "tester")
            .env_remove("FERRY_DEPLOYMENT")
            .env_remove("FERRY_LOCK_TIMEOUT")
            .env_remove("FERRY_TEST_PAUSE_BEFORE_COMMIT")
            .env_remove("NIXOPS_STATE");
        c
    }

    pub fn ferry(&self, args: &[&str]) -> Run {
        self.ferry_with(args, None, &[])
    }

    pub fn ferry_in(&self, args: &[&str], stdin: &str) -> Run {
        self.ferry_with(args, Some(stdin), &[])
    }

    pub fn ferry_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let mut c = self.command();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        {
            let mut sin = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                sin.write_all(s.as_bytes()).unwrap();
            }
        }
        let out: Output = child.wait_with_output().unwrap();
        Run {
            line: format!("ferry {}", args.join(" ")),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Replace what differs between runs: the temp dir, UUIDs, key material, times and pids.
    pub fn redact(&self, text: &str) -> String {
        let dir = self.path().to_string_lossy().into_owned();
        let canon = std::fs::canonicalize(self.path())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut s = text.replace(&canon, "[TMP]").replace(&dir, "[TMP]");
        // Each distinct UUID becomes a numbered one of the same width, so that tables keep their shape.
        let uuid_re =
            regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
                .unwrap();
        let mut seen: Vec<String> = Vec::new();
        s = uuid_re
            .replace_all(&s, |c: &regex::Captures| {
                let u = c[0].to_owned();
                let n = seen.iter().position(|x| *x == u).unwrap_or_else(|| {
                    seen.push(u);
                    seen.len() - 1
                });
                format!("00000000-0000-4000-8000-{:012}", n + 1)
            })
            .into_owned();
        let rules: &[(&str, &str)] = &[
            (r"AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/=]+", "[SSH-PUBKEY]"),
            (
                r"(ferry-[A-Za-z0-9._-]+-1):[A-Za-z0-9+/=]{40,}",
                "$1:[SIGNING-KEY]",
            ),
            (
                r#""(createdAt|deployedAt|startedAt|finishedAt)": \d+"#,
                r#""$1": [TIME]"#,
            ),
            (r"pid \d+", "pid [PID]"),
            (r"tester@[A-Za-z0-9._-]+", "tester@[HOST]"),
        ];
        for (re, with) in rules {
            s = regex::Regex::new(re)
                .unwrap()
                .replace_all(&s, *with)
                .into_owned();
        }
        s
    }
}

/// The mode bits of a file.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Two small NixOps networks in the style of seed 000: one file places the machine, the other configures it.
pub const TARGET_NIX: &str = r#"{
  target = { config, pkgs, ... }: {
    deployment.targetHost = "123.122.111.110";
  };
}
"#;

pub const CONFIG_NIX: &str = r#"{
  network.description = "nixops example";
  target = { config, lib, pkgs, ... }: {
    deployment.tags = [ "web" "eu" ];
  };
  db = { ... }: {
    deployment.targetHost = "db.example.org";
  };
}
"#;

/// The same network without `db`.
pub const CONFIG_NO_DB_NIX: &str = r#"{
  network.description = "nixops example";
  target = { config, lib, pkgs, ... }: {
    deployment.tags = [ "web" "eu" ];
  };
}
"#;
