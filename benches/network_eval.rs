//! Discovery benchmark: a generated NixOps network of 1,000 machines, each importing two shared modules and
//! its own file. It times, side by side in one run:
//!
//! - `ferry eval --json network.nix`;
//! - `nix-instantiate --eval --strict --json` computing the same deployment attributes with the same driver
//!   (src/network/nix/cli.nix) and the same minimal lib (real nixpkgs absent);
//! - `ferry lint network.nix` (static rules on all 1,003 files plus the option rules).
//!
//! It checks that ferry and Nix produce the same JSON, then prints the medians and the ratio.
//!
//! Measured 2026-11-22 (2 shared cores, load average 11-20 from other builds; ferry's discovery measured
//! in-process from an optimised build of the eval/syntax/network layers, because the full release build did
//! not finish in time): ferry 0.19-0.22 s CPU (0.29-0.8 s wall), nix-instantiate 0.19-0.21 s CPU (1.0 s
//! wall): about 1x in CPU, far from the 20x target. Profile: rnix parsing of the 1,003 files and malloc
//! dominate; the per-machine merge is no longer visible. `ferry lint` on the same network: 0.39 s wall.
//!
//! Run: `cargo bench --bench network_eval` (FERRY_BENCH_MACHINES=N and FERRY_BENCH_RUNS=R to change the size
//! and the number of runs; defaults 1000 and 5).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// Writes the network and returns the path of its entry file.
fn generate(dir: &Path, machines: usize) -> PathBuf {
    write(
        &dir.join("shared/base.nix"),
        r#"{ config, lib, pkgs, ... }:
{
  deployment.targetUser = lib.mkDefault "deploy";
  deployment.tags = [ "fleet" ];
  deployment.sshOptions = [ "-o" "ServerAliveInterval=30" ];
  services.openssh.enable = true;
  services.openssh.passwordAuthentication = false;
  environment.systemPackages = with pkgs; [ htop git ];
  time.timeZone = "UTC";
}
"#,
    );
    write(
        &dir.join("shared/keys.nix"),
        r#"{ config, lib, name, ... }:
{
  deployment.keys.monitoring = {
    keyCommand = [ "pass" "show" "monitoring/${name}" ];
    user = "prometheus";
    group = "prometheus";
    permissions = "0640";
  };
  deployment.keys.tls = lib.mkIf (lib.hasPrefix "web" name) {
    keyFile = "/secrets/tls/${name}.key";
    uploadAt = "post-activation";
  };
  networking.firewall.allowedTCPPorts = [ 22 9100 ];
}
"#,
    );
    let mut net = String::from(
        "{\n  network.description = \"generated fleet\";\n  network.enableRollback = true;\n\n",
    );
    for i in 0..machines {
        let name = if i % 3 == 0 {
            format!("web{i}")
        } else {
            format!("db{i}")
        };
        write(
            &dir.join(format!("machines/{name}.nix")),
            &format!(
                r#"{{ config, lib, pkgs, name, ... }}:
{{
  deployment.targetHost = "10.{}.{}.{}";
  deployment.targetPort = {};
  deployment.tags = [ "rack-{}" ];
  deployment.buildOnTarget = {};
  networking.hostName = name;
  fileSystems."/" = {{ device = "/dev/disk/by-label/${{name}}"; fsType = "ext4"; }};
  boot.loader.grub.device = "/dev/sda";
}}
"#,
                i / 65536,
                (i / 256) % 256,
                i % 256,
                if i % 10 == 0 { 2222 } else { 22 },
                i % 40,
                if i % 7 == 0 {
                    "true"
                } else {
                    "lib.mkDefault false"
                },
            ),
        );
        net.push_str(&format!(
            "  {name} = {{ imports = [ ./shared/base.nix ./shared/keys.nix ./machines/{name}.nix ]; }};\n"
        ));
    }
    net.push_str("}\n");
    let entry = dir.join("network.nix");
    write(&entry, &net);
    entry
}

struct Run {
    median: Duration,
    min: Duration,
    stdout: Vec<u8>,
}

fn time(runs: usize, mut cmd: impl FnMut() -> Command) -> Run {
    let mut times = Vec::new();
    let mut stdout = Vec::new();
    for _ in 0..runs {
        let mut c = cmd();
        let start = Instant::now();
        let out = c.output().expect("run");
        times.push(start.elapsed());
        assert!(
            out.status.success() || !out.stdout.is_empty(),
            "{c:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout = out.stdout;
    }
    times.sort();
    Run {
        median: times[times.len() / 2],
        min: times[0],
        stdout,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let machines: usize = std::env::var("FERRY_BENCH_MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runs: usize = std::env::var("FERRY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = generate(dir.path(), machines);
    let ferry = env!("CARGO_BIN_EXE_ferry");
    let cli_nix = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/network/nix/cli.nix");

    let ours = time(runs, || {
        let mut c = Command::new(ferry);
        c.args(["eval", "--json"])
            .arg(&entry)
            .env_remove("NIX_PATH");
        c
    });
    let theirs = time(runs, || {
        let mut c = Command::new("nix-instantiate");
        c.args([
            "--option",
            "substituters",
            "",
            "--eval",
            "--strict",
            "--json",
            "-A",
            "summary",
        ])
        .arg(&cli_nix)
        .args(["--arg", "files", &format!("[ {} ]", entry.display())])
        .env_remove("NIX_PATH");
        c
    });
    let lint = time(runs, || {
        let mut c = Command::new(ferry);
        c.args(["lint", "--format", "json"])
            .arg(&entry)
            .env_remove("NIX_PATH");
        c
    });

    let a: serde_json::Value = serde_json::from_slice(&ours.stdout).expect("ferry JSON");
    let b: serde_json::Value = serde_json::from_slice(&theirs.stdout).expect("nix JSON");
    assert_eq!(a, b, "ferry and nix-instantiate disagree");
    let n = a["machines"].as_object().map_or(0, |m| m.len());
    assert_eq!(n, machines);
    let lint_json: serde_json::Value = serde_json::from_slice(&lint.stdout).expect("lint JSON");

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "network_eval: {machines} machines, 2 shared modules + 1 file each, {runs} runs (median / min)"
    );
    println!(
        "  ferry eval --json                       {:>9.1} ms / {:>9.1} ms",
        ms(ours.median),
        ms(ours.min)
    );
    println!(
        "  nix-instantiate --eval --strict --json  {:>9.1} ms / {:>9.1} ms",
        ms(theirs.median),
        ms(theirs.min)
    );
    println!(
        "  ratio (nix / ferry, medians)            {:>9.1}x",
        theirs.median.as_secs_f64() / ours.median.as_secs_f64()
    );
    println!(
        "  ferry lint ({} diagnostics)            {:>9.1} ms / {:>9.1} ms",
        lint_json["diagnostics"].as_array().map_or(0, |d| d.len()),
        ms(lint.median),
        ms(lint.min)
    );
}
