//! Peak memory while streaming a 1 GiB NAR through ferry's daemon client.
//!
//! Run as root: `cargo bench --bench nar_stream_memory` (FERRY_BENCH_NAR_MIB, default 1024).
//!
//! Builds (once; the nonce is stable) a store path holding one file of that size, then:
//! 1. NarFromPath → a sink that discards (checks narHash on the way);
//! 2. NarFromPath from the host store → AddToStoreNar into a second, isolated store, streamed
//!    through this process frame by frame.
//!
//! It reports this process's peak RSS (VmHWM from /proc/self/status) before and after. Fails if it
//! reaches 64 MiB.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

use common::Daemon;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let mib: usize = std::env::var("FERRY_BENCH_NAR_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let expr = format!(
        r#"derivation {{
  name = "ferry-big-{mib}m";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "/usr/bin/head -c {} /dev/zero > $out" ];
}}"#,
        mib << 20
    );
    eprintln!("building a {mib} MiB store path…");
    let out = Command::new("nix-build")
        .args(["--no-out-link", "--option", "substituters", "", "-E", &expr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = common::store_path(std::str::from_utf8(&out.stdout).unwrap());

    let src = Daemon::host();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let before = vm_hwm_kib();

    let t0 = Instant::now();
    let info = rt.block_on(async {
        let mut c = src.client().await;
        let mut sink = tokio::io::sink();
        c.nar_from_path(&path, &mut sink).await.unwrap()
    });
    let t_read = t0.elapsed();
    let after_read = vm_hwm_kib();

    let dst = Daemon::isolated("trusted-users = root");
    let t0 = Instant::now();
    rt.block_on(async {
        let mut s = src.client().await;
        let mut t = dst.client().await;
        let mut nar = s.nar_reader(&path).await.unwrap();
        t.add_to_store_nar(&info, &mut nar, false, true)
            .await
            .unwrap();
        assert!(t.is_valid_path(&path).await.unwrap());
    });
    let t_copy = t0.elapsed();
    let after_copy = vm_hwm_kib();

    let gib = info.nar_size as f64 / f64::from(1 << 30);
    println!(
        "nar_stream_memory: NAR of {:.2} GiB ({} bytes)",
        gib, info.nar_size
    );
    println!("  peak RSS before streaming:                {before:>7} KiB");
    println!(
        "  after NarFromPath → sink ({:.2} s):        {:>7} KiB",
        t_read.as_secs_f64(),
        after_read
    );
    println!(
        "  after NarFromPath → AddToStoreNar ({:.2} s): {:>7} KiB",
        t_copy.as_secs_f64(),
        after_copy
    );
    assert!(
        after_copy < 64 * 1024,
        "peak RSS {after_copy} KiB is not below 64 MiB"
    );
    // Free the disk space of the copy (the source path stays cached for the next run).
    drop(dst);
}
