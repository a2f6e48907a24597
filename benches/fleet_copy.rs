//! Fleet copy benchmark: `ferry copy` against 4 parallel `nix-copy-closure --to` and 4 parallel
//! `nix copy --to ssh-ng://`, copying to a 4-host `dev/fleet`.
//!
//! Run as root: `cargo bench --bench fleet_copy`
//! Environment:
//! - `FERRY_BENCH_SETUPS`: comma-separated, of `direct` (a), `rtt20` (b: 20 ms RTT through the
//!   shaper), `bw100` (c: 100 Mbit/s and 5 ms RTT); default `direct`;
//! - `FERRY_BENCH_CLOSURES`: `real` (≥ 300 MiB of this machine's shared libraries in 400 paths
//!   with DAG references) and/or `small` (2,000 paths of a few KiB); default both;
//! - `FERRY_BENCH_ROUNDS`: runs per tool, the median is reported (default 3);
//! - `FERRY_BENCH_TOOLS`: which of `ferry,ncc,nixcopy` (default all).
//!
//! Host stores are wiped (`nix-store --gc` inside each host) before every run. ferry runs with
//! an empty NAR cache each time (cold: it reads every NAR from the local daemon, like the other
//! tools), plus one warm run and a no-op run; its peak RSS comes from `/usr/bin/time`.
//! The source is the machine's store, served by its nix-daemon (`dev/fleet local-daemon`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The "real" closure: 400 paths holding ≥ 300 MiB of /usr/lib shared libraries; path i refers
/// to i-1, i/2 and i/3 (a DAG, not a chain).
fn build_real() -> String {
    let mut files: Vec<(String, u64)> = Vec::new();
    for line in sh(Command::new("find").args([
        "/usr/lib", "-name", "*.so*", "-type", "f", "-size", "-20M", "-printf", "%s %p\n",
    ]))
    .lines()
    {
        if let Some((s, p)) = line.split_once(' ')
            && !p.contains('"')
            && !p.contains('$')
            && !p.contains(' ')
        {
            files.push((p.to_string(), s.parse().unwrap_or(0)));
        }
    }
    files.sort();
    let mut groups: Vec<Vec<String>> = vec![Vec::new(); 400];
    let mut total = 0u64;
    for (k, (p, s)) in files.iter().enumerate() {
        if total > 340 << 20 {
            break;
        }
        groups[k % 400].push(p.clone());
        total += s;
    }
    let lists: Vec<String> = groups
        .iter()
        .map(|g| format!("\"{}\"", g.join(" ")))
        .collect();
    let expr = format!(
        r#"
let
  files = [ {} ];
  mk = i: derivation {{
    name = "ferry-bench-real-${{toString i}}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    deps = map (j: builtins.elemAt drvs j) (builtins.filter (j: j >= 0 && j < i) [ (i - 1) (i / 2) (i / 3) ]);
    files = builtins.elemAt files i;
    args = [ "-c" ''
      export PATH=/usr/bin:/bin
      mkdir -p $out/lib
      for f in $files; do cp "$f" $out/lib/ 2>/dev/null || true; done
      echo "$deps" > $out/refs
    '' ];
  }};
  drvs = builtins.genList mk 400;
in builtins.elemAt drvs 399
"#,
        lists.join(" ")
    );
    build(&expr)
}

/// The "small" closure: 2,000 paths of a few KiB each, DAG references as above.
fn build_small() -> String {
    let expr = r#"
let
  mk = i: derivation {
    name = "ferry-bench-small-${toString i}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    deps = map (j: builtins.elemAt drvs j) (builtins.filter (j: j >= 0 && j < i) [ (i - 1) (i / 2) (i / 3) ]);
    args = [ "-c" ''
      export PATH=/usr/bin:/bin
      mkdir -p $out
      echo "$deps" > $out/refs
      head -c 3000 /dev/urandom | base64 > $out/data
    '' ];
  };
  drvs = builtins.genList mk 2000;
in builtins.elemAt drvs 1999
"#;
    build(expr)
}

fn build(expr: &str) -> String {
    sh(Command::new("nix-build").args([
        "--no-out-link",
        "--option",
        "substituters",
        "",
        "--max-jobs",
        "4",
        "-E",
        expr,
    ]))
    .trim()
    .to_string()
}

struct Fleet {
    dir: String,
}

impl Fleet {
    fn up(shaped: Option<&str>) -> Fleet {
        let dir = format!("/tmp/ffb{}", std::process::id());
        let mut c = Command::new(format!("{REPO}/dev/fleet"));
        c.args(["up", "4", "--dir", &dir]);
        if let Some(s) = shaped {
            c.args(["--shaped", s]);
        }
        sh(&mut c);
        Fleet { dir }
    }

    fn port(&self, i: usize) -> String {
        std::fs::read_to_string(format!("{}/host{i}/ssh.port", self.dir))
            .unwrap()
            .trim()
            .to_string()
    }

    fn wipe(&self) {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                Command::new(format!("{REPO}/dev/fleet"))
                    .args([
                        "exec",
                        "--dir",
                        &self.dir,
                        &format!("host{i}"),
                        "nix-store",
                        "--gc",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut h in hs {
            h.wait().unwrap();
        }
    }

    fn ferry(&self, top: &str, cache: &str) -> (Duration, u64) {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "FERRY_RSS_KB=%M", FERRY, "copy", "--json"]);
        for i in 0..4 {
            c.arg("--to")
                .arg(format!("root@127.0.0.1:{}", self.port(i)));
        }
        c.args(["-i", &format!("{}/client_ed25519", self.dir)]);
        c.args([
            "--known-hosts",
            &format!("{}/known_hosts", self.dir),
            "-F",
            "none",
        ]);
        c.args(["--cache-dir", cache, top]);
        let t0 = Instant::now();
        let out = c.output().unwrap();
        let took = t0.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ferry failed: {err}");
        let rss = err
            .lines()
            .filter_map(|l| l.strip_prefix("FERRY_RSS_KB="))
            .filter_map(|v| v.trim().parse().ok())
            .next_back()
            .unwrap_or(0);
        (took, rss)
    }

    /// Four copies at once, one per host, each `make(host)`.
    fn parallel(&self, make: impl Fn(usize) -> Command) -> Duration {
        let t0 = Instant::now();
        let children: Vec<_> = (0..4)
            .map(|i| {
                let mut c = make(i);
                c.env("NIX_SSHOPTS", format!("-F {}/ssh_config", self.dir))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        for ch in children {
            let out = ch.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        t0.elapsed()
    }

    fn ncc(&self, top: &str) -> Duration {
        self.parallel(|i| {
            let mut c = Command::new("nix-copy-closure");
            c.args(["--to", &format!("host{i}"), top]);
            c
        })
    }

    fn nix_copy(&self, top: &str) -> Duration {
        self.parallel(|i| {
            let mut c = Command::new("nix");
            c.args([
                "--extra-experimental-features",
                "nix-command",
                "copy",
                "--no-check-sigs",
                "--option",
                "substituters",
                "",
                "--to",
                &format!("ssh-ng://host{i}"),
                top,
            ]);
            c
        })
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new(format!("{REPO}/dev/fleet"))
            .args(["down", "--purge", "--dir", &self.dir])
            .output();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    let setups = env_or("FERRY_BENCH_SETUPS", "direct");
    let closures = env_or("FERRY_BENCH_CLOSURES", "real,small");
    let tools = env_or("FERRY_BENCH_TOOLS", "ferry,ncc,nixcopy");
    let rounds: usize = env_or("FERRY_BENCH_ROUNDS", "3")
        .parse()
        .unwrap_or(3)
        .max(1);
    let mut built = Vec::new();
    for c in closures.split(',') {
        let t0 = Instant::now();
        let top = match c {
            "real" => build_real(),
            "small" => build_small(),
            other => panic!("unknown closure {other}"),
        };
        let n = sh(Command::new("nix-store").args(["-qR", &top]))
            .lines()
            .count();
        let size = sh(Command::new("nix").args([
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "-S",
            &top,
        ]));
        eprintln!(
            "closure {c}: {n} paths, {} (built in {:.1}s)",
            size.split_whitespace().last().unwrap_or("?"),
            secs(t0.elapsed())
        );
        built.push((c.to_string(), top));
    }
    for setup in setups.split(',') {
        let shaped = match setup {
            "direct" => None,
            "rtt20" => Some("20:10000"),
            "bw100" => Some("5:100"),
            other => panic!("unknown setup {other}"),
        };
        let fleet = Fleet::up(shaped);
        for (name, top) in &built {
            let mut line = format!("[{setup}/{name}]");
            let mut ferry_t = None;
            let mut ncc_t = None;
            if tools.contains("ferry") {
                let mut ts = Vec::new();
                let mut rss = 0;
                for _ in 0..rounds {
                    fleet.wipe();
                    let cache = tempfile::tempdir().unwrap();
                    let (t, r) = fleet.ferry(top, cache.path().to_str().unwrap());
                    ts.push(t);
                    rss = rss.max(r);
                }
                // Warm cache, then a no-op (everything present).
                let cache = tempfile::tempdir().unwrap();
                fleet.wipe();
                fleet.ferry(top, cache.path().to_str().unwrap());
                fleet.wipe();
                let (warm, _) = fleet.ferry(top, cache.path().to_str().unwrap());
                let (noop, _) = fleet.ferry(top, cache.path().to_str().unwrap());
                let m = median(ts.clone());
                ferry_t = Some((m, noop));
                line += &format!(
                    " ferry {:.2}s (runs {:?}) warm-cache {:.2}s no-op {:.2}s peak RSS {} MiB;",
                    secs(m),
                    ts.iter()
                        .map(|t| (secs(*t) * 100.0).round() / 100.0)
                        .collect::<Vec<_>>(),
                    secs(warm),
                    secs(noop),
                    rss / 1024
                );
            }
            if tools.contains("ncc") {
                let mut ts = Vec::new();
                for _ in 0..rounds {
                    fleet.wipe();
                    ts.push(fleet.ncc(top));
                }
                let noop = fleet.ncc(top);
                let m = median(ts);
                ncc_t = Some((m, noop));
                line += &format!(
                    " nix-copy-closure {:.2}s no-op {:.2}s;",
                    secs(m),
                    secs(noop)
                );
            }
            if tools.contains("nixcopy") {
                let mut ts = Vec::new();
                for _ in 0..rounds {
                    fleet.wipe();
                    ts.push(fleet.nix_copy(top));
                }
                let m = median(ts);
                line += &format!(" nix copy ssh-ng {:.2}s;", secs(m));
                if let Some((f, _)) = ferry_t {
                    line += &format!(" ferry vs nix copy {:.2}x;", secs(m) / secs(f));
                }
            }
            if let (Some((f, fno)), Some((n, nno))) = (ferry_t, ncc_t) {
                line += &format!(
                    " ferry vs nix-copy-closure {:.2}x, no-op {:.2}x",
                    secs(n) / secs(f),
                    secs(nno) / secs(fno)
                );
            }
            println!("{line}");
        }
    }
}
