//! Differential tests against the installed Nix on freshly generated inputs: `nix-store --dump`,
//! `nix-hash`, `nix-store --add`, `nix-store --print-fixed-path`, `builtins.toFile`, key files from
//! `nix-store --generate-binary-cache-key`, and signatures checked by `nix store verify`.
//! They run real Nix as root against the host store (CI is root); no daemon is needed.

#![allow(clippy::unwrap_used)]

mod store_common;

use std::path::Path;
use std::process::Command;

use ferry::store::nar;
use ferry::store::path::{FileIngestionMethod, make_fixed_output_path, make_text_path};
use ferry::store::{Hash, HashAlgo, PublicKey, SecretKey, StorePath};
use store_common::*;

const SEEDS: std::ops::Range<u64> = 1..13;

#[test]
fn random_trees_match_nix_store_dump_and_add() {
    let tmp = tempfile::tempdir().unwrap();
    for seed in SEEDS {
        let mut rng = Rng::new(seed);
        // A store-path-friendly top-level name; nix-store --add names the path after it.
        let src = tmp.path().join(format!("ferry-tree-{seed}"));
        random_tree(&mut rng, &src, 4);
        let theirs = run(nix("nix-store").arg("--dump").arg(&src));
        let mut ours = Vec::new();
        nar::dump_path(&src, &mut ours).unwrap();
        assert!(
            ours == theirs,
            "seed {seed}: NAR differs from nix-store --dump"
        );

        let summary = nar::validate(&theirs[..]).unwrap();
        let nix_hash = run_text(
            nix("nix-hash")
                .args(["--type", "sha256", "--base32"])
                .arg(&src),
        );
        assert_eq!(summary.nar_hash.to_nix32(), nix_hash, "seed {seed}");

        // Unpack Nix's NAR and have Nix dump our tree: same bytes.
        let dst = tmp.path().join(format!("unpacked-{seed}"));
        nar::unpack(&theirs[..], &dst).unwrap();
        assert!(
            run(nix("nix-store").arg("--dump").arg(&dst)) == theirs,
            "seed {seed}: nix-store --dump of ferry's unpack differs"
        );

        let added = run_text(nix("nix-store").arg("--add").arg(&src));
        let name = src.file_name().unwrap().to_str().unwrap();
        let ours = make_fixed_output_path(
            name,
            FileIngestionMethod::Recursive,
            &summary.nar_hash,
            [],
            false,
        )
        .unwrap();
        assert_eq!(ours.to_string(), added, "seed {seed}");
    }
}

#[test]
fn random_strings_match_nix_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(42);
    for i in 0..6 {
        let len = [0, 1, 55, 56, 64, 1000][i] + rng.below(3) as usize;
        let data = rng.bytes(len);
        let f = tmp.path().join(format!("s{i}"));
        std::fs::write(&f, &data).unwrap();
        for algo in HashAlgo::ALL {
            let h = algo.digest(&data);
            let b16 = run_text(
                nix("nix-hash")
                    .args(["--flat", "--type", algo.name()])
                    .arg(&f),
            );
            let n32 = run_text(
                nix("nix-hash")
                    .args(["--flat", "--base32", "--type", algo.name()])
                    .arg(&f),
            );
            assert_eq!(h.to_base16(), b16);
            assert_eq!(h.to_nix32(), n32);
            // And Nix's own conversion between forms.
            let conv = run_text(nix("nix-hash").args(["--to-base32", "--type", algo.name(), &b16]));
            assert_eq!(Hash::parse_untyped(algo, &conv).unwrap(), h);
        }
    }
}

#[test]
fn random_fixed_paths_match_print_fixed_path() {
    let mut rng = Rng::new(7);
    for i in 0..16 {
        let algo = HashAlgo::ALL[rng.below(4) as usize];
        let h = Hash::new(algo, &rng.bytes(algo.size())).unwrap();
        let recursive = i % 2 == 0;
        let name = format!("n{}-{}.tar.gz", i, rng.below(1000));
        let mut cmd = nix("nix-store");
        cmd.arg("--print-fixed-path");
        if recursive {
            cmd.arg("--recursive");
        }
        let theirs = run_text(cmd.args([algo.name(), &h.to_base16(), &name]));
        let method = if recursive {
            FileIngestionMethod::Recursive
        } else {
            FileIngestionMethod::Flat
        };
        let ours = make_fixed_output_path(&name, method, &h, [], false).unwrap();
        assert_eq!(ours.to_string(), theirs, "{method:?} {algo}");
    }
}

#[test]
fn random_text_paths_match_builtins_to_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(99);
    for i in 0..8 {
        // Printable text (Nix strings cannot hold NUL); read from a file to avoid quoting.
        let data: Vec<u8> = (0..rng.below(300))
            .map(|_| 32 + rng.below(95) as u8)
            .collect();
        let f = tmp.path().join(format!("t{i}"));
        std::fs::write(&f, &data).unwrap();
        let name = format!("text-{i}.txt");
        let expr = format!(
            "builtins.toFile \"{name}\" (builtins.readFile {})",
            f.display()
        );
        let out = run_text(nix("nix-instantiate").args(["--eval", "--readonly-mode", "-E", &expr]));
        let theirs = StorePath::from_absolute_path(out.trim_matches('"')).unwrap();
        let ours = make_text_path(&name, &Hash::sha256_of(&data), []).unwrap();
        assert_eq!(ours, theirs);
    }
}

/// Build an input-addressed path (signatures matter only for those) and put it in a file:// cache.
fn cached_path(cache: &Path, tag: &str) -> (String, std::path::PathBuf) {
    let expr = format!(
        "derivation {{ name = \"ferry-sig-{tag}\"; system = builtins.currentSystem; builder = \"/bin/sh\"; args = [ \"-c\" \"echo {tag} > $out\" ]; }}"
    );
    let drv = run_text(nix("nix-instantiate").args(["-E", &expr]));
    let out = run_text(nix("nix-store").args(["--realise", &drv]));
    run(nix_cmd()
        .args(["copy", "--to"])
        .arg(format!("file://{}", cache.display()))
        .arg(&out));
    let hash_part = &out["/nix/store/".len().."/nix/store/".len() + 32];
    (out.clone(), cache.join(format!("{hash_part}.narinfo")))
}

fn nix_verifies(cache: &Path, out: &str, trusted: &str) -> bool {
    Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "--option",
            "substituters",
            "",
        ])
        .args([
            "store",
            "verify",
            "--sigs-needed",
            "1",
            "--option",
            "trusted-public-keys",
            trusted,
        ])
        .arg("--store")
        .arg(format!("file://{}", cache.display()))
        .arg(out)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn signatures_interoperate_with_nix() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tag = format!(
        "{}-{}",
        std::process::id(),
        t.file_name().unwrap().to_string_lossy().replace('.', "")
    );

    // Keys written by Nix load, and match.
    run(nix("nix-store")
        .args(["--generate-binary-cache-key", "nix-made-1"])
        .arg(t.join("nsec"))
        .arg(t.join("npub")));
    let nix_sk = SecretKey::from_file(&t.join("nsec")).unwrap();
    let nix_pk = PublicKey::from_file(&t.join("npub")).unwrap();
    assert_eq!(nix_sk.public_key(), nix_pk);

    // Keys made by ferry, written in Nix's format.
    let ferry_sk = SecretKey::generate("ferry-made-1").unwrap();
    std::fs::write(t.join("fsec"), ferry_sk.to_nix_string()).unwrap();
    let ferry_pub = ferry_sk.public_key().to_nix_string();

    let cache = t.join("cache");
    let (out, narinfo) = cached_path(&cache, &tag);
    let unsigned = std::fs::read_to_string(&narinfo).unwrap();
    assert!(
        !nix_verifies(&cache, &out, &ferry_pub),
        "control: an unsigned path must not verify"
    );

    // ferry signs with its own key → Nix accepts with that key trusted, refuses with another.
    let info = narinfo_to_path_info(&unsigned);
    let sig = ferry_sk.sign_path_info(&info).unwrap();
    std::fs::write(&narinfo, format!("{unsigned}Sig: {sig}\n")).unwrap();
    assert!(
        nix_verifies(&cache, &out, &ferry_pub),
        "Nix must accept ferry's signature"
    );
    assert!(
        !nix_verifies(&cache, &out, &nix_pk.to_nix_string()),
        "wrong key must be refused"
    );

    // ferry signs with a Nix-made key → accepted with Nix's public key.
    let sig = nix_sk.sign_path_info(&info).unwrap();
    std::fs::write(&narinfo, format!("{unsigned}Sig: {sig}\n")).unwrap();
    assert!(nix_verifies(&cache, &out, &nix_pk.to_nix_string()));

    // Nix signs with a ferry-made key → ferry verifies it.
    std::fs::write(&narinfo, &unsigned).unwrap();
    run(nix_cmd()
        .args(["store", "sign", "--store"])
        .arg(format!("file://{}", cache.display()))
        .arg("-k")
        .arg(t.join("fsec"))
        .arg(&out));
    let signed = narinfo_to_path_info(&std::fs::read_to_string(&narinfo).unwrap());
    assert_eq!(signed.sigs.len(), 1);
    assert!(ferry_sk.public_key().verify_path_info(&signed).unwrap());
    assert!(!nix_pk.verify_path_info(&signed).unwrap());
}
