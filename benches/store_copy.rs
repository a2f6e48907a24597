//! Closure copy between two local stores: ferry's worker-protocol client against
//! `nix-store --export $(nix-store -qR P) | nix-store --import`, side by side in one run.
//!
//! Run as root: `cargo bench --bench store_copy` (env: FERRY_BENCH_PATHS, default 320;
//! FERRY_BENCH_BLOB, bytes of random data per path, default 350000; FERRY_BENCH_ROUNDS, default 3).
//!
//! The source is the host store (served by a private nix-daemon); each measurement copies into a
//! fresh, empty store: a nix-daemon in its own mount namespace. ferry does: closure (pipelined
//! QueryPathInfo) → QueryValidPaths on the target → one AddMultipleToStore whose NARs stream
//! straight from the source's NarFromPath. Nix's reference imports through the target daemon's
//! socket (`--store unix://…`), and, as a second figure, directly into the target store from
//! inside its namespace (no daemon in the way).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Daemon;
use ferry::daemon;
use ferry::store::StorePath;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn ferry_copy(src: &Daemon, dst: &Daemon, top: &StorePath) -> (Duration, usize, u64) {
    let t0 = Instant::now();
    let mut s = src.client().await;
    let mut t = dst.client().await;
    let infos = daemon::closure(&mut s, std::slice::from_ref(top))
        .await
        .unwrap();
    let all: BTreeSet<StorePath> = infos.iter().map(|i| i.path.clone()).collect();
    let valid = t.query_valid_paths(&all, false).await.unwrap();
    let missing: Vec<_> = infos
        .into_iter()
        .filter(|i| !valid.contains(&i.path))
        .collect();
    t.add_multiple_to_store(&missing, false, true, async |info, sink| {
        s.nar_from_path_with_info(info, sink).await
    })
    .await
    .unwrap();
    let bytes = missing.iter().map(|i| i.nar_size).sum();
    (t0.elapsed(), missing.len(), bytes)
}

fn nix_copy(dst: &Daemon, top: &StorePath, through_daemon: bool) -> Duration {
    let import = if through_daemon {
        format!("nix-store --store unix://{} --import", dst.socket.display())
    } else {
        format!(
            "nsenter -t {} -m -- env NIX_CONF_DIR={} nix-store --import",
            dst.pid(),
            dst.conf_dir.display()
        )
    };
    let script = format!(
        "set -e; nix-store --export $(nix-store -qR {}) | {import} >/dev/null",
        top.to_absolute()
    );
    let t0 = Instant::now();
    let st = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(st.success(), "nix export|import failed");
    t0.elapsed()
}

fn verify(dst: &Daemon, top: &StorePath, n: usize) {
    let out = dst.nix("nix-store", &["-qR", &top.to_absolute()]);
    assert_eq!(out.lines().count(), n, "target has the whole closure");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let paths = env_or("FERRY_BENCH_PATHS", 320);
    let blob = env_or("FERRY_BENCH_BLOB", 350_000);
    let rounds = env_or("FERRY_BENCH_ROUNDS", 3);
    // A stable nonce: the closure is built once and reused by later runs.
    let nonce = format!("ferry-bench-store-copy-{paths}-{blob}");
    eprintln!(
        "building a {}-path closure ({blob} random bytes per path)…",
        paths + 1
    );
    let top = common::build_chain_with_nonce(paths, blob, &nonce);
    let src = Daemon::host();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut ferry_t = Vec::new();
    let mut nix_daemon_t = Vec::new();
    let mut nix_direct_t = Vec::new();
    let mut summary = (0, 0);
    for round in 0..rounds {
        // Alternate the order so neither side always gets the warmer page cache.
        let order = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for which in order {
            let dst = Daemon::isolated("trusted-users = root");
            match which {
                0 => {
                    let (t, n, bytes) = rt.block_on(ferry_copy(&src, &dst, &top));
                    verify(&dst, &top, n);
                    summary = (n, bytes);
                    ferry_t.push(t);
                }
                1 => {
                    nix_daemon_t.push(nix_copy(&dst, &top, true));
                    verify(&dst, &top, paths + 1);
                }
                _ => {
                    nix_direct_t.push(nix_copy(&dst, &top, false));
                    verify(&dst, &top, paths + 1);
                }
            }
        }
    }
    let (n, bytes) = summary;
    let f = median(ferry_t.clone());
    let nd = median(nix_daemon_t.clone());
    let nn = median(nix_direct_t.clone());
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!("store_copy: {n} paths, {mib:.1} MiB of NAR, {rounds} rounds (median)");
    println!(
        "  ferry (closure + QueryValidPaths + AddMultipleToStore): {:>8.3} s  {:>7.1} MiB/s  {ferry_t:?}",
        f.as_secs_f64(),
        mib / f.as_secs_f64()
    );
    println!(
        "  nix-store --export | nix-store --store unix://… --import: {:>8.3} s  {:>7.1} MiB/s  {nix_daemon_t:?}",
        nd.as_secs_f64(),
        mib / nd.as_secs_f64()
    );
    println!(
        "  nix-store --export | nix-store --import (in target ns):  {:>8.3} s  {:>7.1} MiB/s  {nix_direct_t:?}",
        nn.as_secs_f64(),
        mib / nn.as_secs_f64()
    );
    println!(
        "  ratio nix(daemon)/ferry = {:.2}x, nix(direct)/ferry = {:.2}x",
        nd.as_secs_f64() / f.as_secs_f64(),
        nn.as_secs_f64() / f.as_secs_f64()
    );
}
