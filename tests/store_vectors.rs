//! ferry's store formats against vectors captured from real Nix 2.8 by `vendor/regen.sh`,
//! compared byte for byte: hashes in every form, NARs of trees with every node type, source,
//! fixed-output and text store paths, and keys and a signature made by Nix.

#![allow(clippy::unwrap_used)]

mod store_common;

use std::collections::BTreeSet;

use ferry::store::hash::Hasher;
use ferry::store::nar::{self, NarReader};
use ferry::store::path::{FileIngestionMethod, make_fixed_output_path, make_text_path};
use ferry::store::{Hash, HashAlgo, PublicKey, SecretKey, StorePath};
use store_common::*;

fn tsv(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(vendor().join(name)).unwrap();
    text.lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// The inputs regen.sh hashes (its `mkinput`).
fn input(name: &str) -> Vec<u8> {
    match name {
        "empty" => Vec::new(),
        "abc" => b"abc".to_vec(),
        "hello" => b"hello\n".to_vec(),
        "fox" => b"The quick brown fox jumps over the lazy dog".to_vec(),
        "long" => (1..=1000)
            .map(|i| format!("{i}\n"))
            .collect::<String>()
            .into_bytes(),
        other => panic!("unknown input {other}"),
    }
}

#[test]
fn hashes_in_every_form() {
    let rows = tsv("hashes.tsv");
    assert_eq!(rows.len(), 20);
    for row in rows {
        let [inp, algo, b16, n32, sri] = &row[..] else {
            panic!("bad row {row:?}")
        };
        let algo = HashAlgo::from_name(algo).unwrap();
        let h = algo.digest(&input(inp));
        assert_eq!(&h.to_base16(), b16, "{inp} {algo}");
        assert_eq!(&h.to_nix32(), n32, "{inp} {algo}");
        assert_eq!(&h.to_sri(), sri, "{inp} {algo}");
        for s in [b16, n32] {
            assert_eq!(Hash::parse_untyped(algo, s).unwrap(), h);
            assert_eq!(Hash::parse_typed(&format!("{algo}:{s}")).unwrap(), h);
        }
        assert_eq!(Hash::parse_typed(sri).unwrap(), h);
    }
}

#[test]
fn nars_are_byte_identical_to_nix_store_dump() {
    let rows = tsv("nars.tsv");
    assert_eq!(rows.len(), 6);
    let tmp = tempfile::tempdir().unwrap();
    for row in rows {
        let [tree, size, hash, added] = &row[..] else {
            panic!("bad row {row:?}")
        };
        let captured = std::fs::read(vendor().join(format!("nar/{tree}.nar"))).unwrap();
        // Encoder: same tree, same bytes.
        let src = tmp.path().join(tree);
        make_tree(tree, &src);
        let mut ours = Vec::new();
        nar::dump_path(&src, &mut ours).unwrap();
        assert!(
            ours == captured,
            "{tree}: ferry's NAR differs from nix-store --dump"
        );
        // Decoder: size and hash as nix-hash computed them.
        let summary = nar::validate(&captured[..]).unwrap();
        assert_eq!(summary.size.to_string(), *size, "{tree}");
        assert_eq!(summary.nar_hash.to_nix32(), *hash, "{tree}");
        // Unpacking then re-encoding gives the captured bytes back.
        let dst = tmp.path().join(format!("{tree}.unpacked"));
        assert_eq!(nar::unpack(&captured[..], &dst).unwrap(), summary);
        let mut again = Vec::new();
        nar::dump_path(&dst, &mut again).unwrap();
        assert!(again == captured, "{tree}: unpack + dump differs");
        // nix-store --add: a recursive sha256 "source" path named after the file.
        let path = make_fixed_output_path(
            tree,
            FileIngestionMethod::Recursive,
            &summary.nar_hash,
            [],
            false,
        )
        .unwrap();
        assert_eq!(path.to_string(), *added, "{tree}");
    }
}

#[test]
fn fixed_output_paths() {
    let dir_nar = std::fs::read(vendor().join("nar/dir.nar")).unwrap();
    let rows = tsv("fixed-paths.tsv");
    assert_eq!(rows.len(), 8);
    for row in rows {
        let [method, algo, b16, name, path] = &row[..] else {
            panic!("bad row {row:?}")
        };
        let algo = HashAlgo::from_name(algo).unwrap();
        let (method, data) = match method.as_str() {
            "flat" => (FileIngestionMethod::Flat, input("hello")),
            "recursive" => (FileIngestionMethod::Recursive, dir_nar.clone()),
            m => panic!("bad method {m}"),
        };
        // The hash regen.sh printed is the hash of exactly these bytes (flat file or NAR).
        let mut h = Hasher::new(algo);
        h.update(&data);
        let h = h.finish();
        assert_eq!(&h.to_base16(), b16);
        let ours = make_fixed_output_path(name, method, &h, [], false).unwrap();
        assert_eq!(ours.to_string(), *path, "{method:?} {algo}");
    }
}

#[test]
fn text_paths_as_builtins_to_file() {
    #[derive(serde::Deserialize)]
    struct Row {
        name: String,
        contents: String,
        refs: Vec<StorePath>,
        path: StorePath,
    }
    let rows: Vec<Row> =
        serde_json::from_slice(&std::fs::read(vendor().join("text-paths.json")).unwrap()).unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().any(|r| r.refs.len() == 2));
    for r in rows {
        let ours =
            make_text_path(&r.name, &Hash::sha256_of(r.contents.as_bytes()), &r.refs).unwrap();
        assert_eq!(ours, r.path, "{}", r.name);
    }
}

#[test]
fn nix_keys_and_signature() {
    let sk = SecretKey::from_file(&vendor().join("keys/secret")).unwrap();
    let pk = PublicKey::from_file(&vendor().join("keys/public")).unwrap();
    assert_eq!(sk.name(), "nix-test-1");
    assert_eq!(sk.public_key(), pk);
    // Key files round-trip to the exact text Nix wrote.
    let text = std::fs::read_to_string(vendor().join("keys/secret")).unwrap();
    assert_eq!(sk.to_nix_string(), text.trim());
    let text = std::fs::read_to_string(vendor().join("keys/public")).unwrap();
    assert_eq!(pk.to_nix_string(), text.trim());

    let narinfo = std::fs::read_to_string(vendor().join("keys/signed.narinfo")).unwrap();
    let info = narinfo_to_path_info(&narinfo);
    assert_eq!(info.sigs.len(), 1);
    assert!(
        pk.verify_path_info(&info).unwrap(),
        "Nix's signature must verify"
    );
    // ed25519 is deterministic: ferry's signature with Nix's key is Nix's signature, byte for byte.
    let ours = sk.sign_path_info(&info).unwrap();
    assert_eq!(BTreeSet::from([ours]), info.sigs);
    // A tampered path info does not verify.
    let mut bad = info.clone();
    bad.nar_size += 1;
    assert!(!pk.verify_path_info(&bad).unwrap());
}

#[test]
fn pull_reader_events_on_captured_nar() {
    // Walk the captured NAR with the event API and check what the tree has.
    let captured = std::fs::read(vendor().join("nar/dir.nar")).unwrap();
    let mut r = NarReader::new(&captured[..]);
    let (mut files, mut links, mut dirs, mut execs, mut bytes) = (0, 0, 0, 0, 0u64);
    while let Some(ev) = r.next().unwrap() {
        match ev {
            nar::Event::Regular { executable, .. } => {
                files += 1;
                execs += u32::from(executable);
            }
            nar::Event::Data(d) => bytes += d.len() as u64,
            nar::Event::Symlink { .. } => links += 1,
            nar::Event::Directory => dirs += 1,
            _ => {}
        }
    }
    r.expect_eof().unwrap();
    // make-tree.sh "dir": 21 files (2 owner-executable), 3 symlinks, 5 directories.
    assert_eq!((files, links, dirs, execs), (21, 3, 5, 2));
    // `seq 1 30000` plus 79 bytes in the small files.
    let seq: u64 = (1..=30000u64).map(|i| i.to_string().len() as u64 + 1).sum();
    assert_eq!(bytes, seq + 79);
}
