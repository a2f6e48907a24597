//! NAR kernels: decode + validate + sha256 (the receive path of every copy), the same bytes through
//! sha256 alone (the floor the issue compares against), and encoding a tree from disk.
//!
//! Run: `cargo bench --bench nar`. Figures are in the README.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferry::store::nar;
use sha2::Digest as _;

/// A tree shaped like a store path: a few large files and many small ones, some symlinks.
fn make_tree(root: &Path) {
    std::fs::create_dir(root).unwrap();
    let mut x: u64 = 0x1234_5678;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let lib = root.join("lib");
    std::fs::create_dir(&lib).unwrap();
    for i in 0..12 {
        std::fs::write(lib.join(format!("big{i}.so")), bytes(4 << 20)).unwrap();
    }
    let share = root.join("share");
    std::fs::create_dir(&share).unwrap();
    for i in 0..3000 {
        std::fs::write(share.join(format!("f{i:05}")), bytes(1 + (i * 37) % 16384)).unwrap();
    }
    for i in 0..200 {
        std::os::unix::fs::symlink(
            format!("../lib/big{}.so", i % 12),
            share.join(format!("l{i}")),
        )
        .unwrap();
    }
}

fn benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make_tree(&root);
    let mut bytes = Vec::new();
    nar::dump_path(&root, &mut bytes).unwrap();

    let mut g = c.benchmark_group("nar");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(20);
    g.bench_function("decode_validate_sha256", |b| {
        b.iter(|| nar::validate(black_box(&bytes[..])).unwrap())
    });
    g.bench_function("sha256_only", |b| {
        b.iter(|| sha2::Sha256::digest(black_box(&bytes[..])))
    });
    g.bench_function("encode_from_disk", |b| {
        b.iter(|| nar::dump_path(&root, std::io::sink()).unwrap())
    });
    g.finish();
}

criterion_group!(nar_benches, benches);
criterion_main!(nar_benches);
