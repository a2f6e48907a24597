//! Side-by-side throughput: ferry's NAR decode + validate + sha256 against `sha256sum` on the
//! same 256 MiB NAR file, single core. Ignored by default (it needs a release build to mean anything):
//!
//! ```text
//! cargo test --release --test store_perf -- --ignored --nocapture
//! ```
//!
//! The issue's target is a ratio of at most 1.3.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::store::nar;

fn best_of<F: FnMut()>(n: usize, mut f: F) -> Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

#[test]
#[ignore = "performance measurement; run in release mode"]
fn decode_vs_sha256sum() {
    let tmp = tempfile::tempdir().unwrap();
    // A 256 MiB tree: 48 files of 5 MiB and 4096 small files, then its NAR on disk.
    let root = tmp.path().join("tree");
    std::fs::create_dir(&root).unwrap();
    let mut x: u64 = 0x9e37_79b9;
    let mut chunk = vec![0u8; 5 << 20];
    for i in 0..48 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        std::fs::write(root.join(format!("big{i:02}")), &chunk).unwrap();
    }
    for i in 0..4096 {
        std::fs::write(
            root.join(format!("small{i:04}")),
            &chunk[i..i + 2048 + i % 4096],
        )
        .unwrap();
    }
    let nar_path = tmp.path().join("tree.nar");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&nar_path).unwrap());
    let size = nar::dump_path(&root, &mut f).unwrap();
    f.flush().unwrap();
    drop(f);
    std::fs::remove_dir_all(&root).unwrap();

    // Warm the page cache so both sides read from memory.
    let _ = std::fs::read(&nar_path).unwrap();
    let ours = best_of(5, || {
        let s = nar::validate(std::fs::File::open(&nar_path).unwrap()).unwrap();
        assert_eq!(s.size, size);
    });
    let theirs = best_of(5, || {
        let st = Command::new("taskset")
            .args(["-c", "0", "sha256sum"])
            .arg(&nar_path)
            .output()
            .unwrap();
        assert!(st.status.success());
    });
    let mib = size as f64 / (1 << 20) as f64;
    let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
    println!(
        "NAR of {mib:.0} MiB: ferry decode+validate+sha256 {:.3} s ({:.0} MiB/s), sha256sum {:.3} s ({:.0} MiB/s), ratio {ratio:.2}",
        ours.as_secs_f64(),
        mib / ours.as_secs_f64(),
        theirs.as_secs_f64(),
        mib / theirs.as_secs_f64()
    );
    assert!(
        ratio <= 1.3,
        "ferry is {ratio:.2}x sha256sum; the target is 1.3x"
    );
}
