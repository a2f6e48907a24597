//! Unit tests of the NAR grammar: hand-written hostile archives (Nix 2.8 is not a strict oracle,
//! so these are built token by token), chunking, and round trips through real files.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use proptest::prelude::*;

use super::wire::put_str;
use super::*;

/// Build a NAR from tokens; `Raw` bytes are spliced in as-is to forge malformed framing.
enum T<'a> {
    S(&'a [u8]),
    Raw(&'a [u8]),
}

fn nar(tokens: &[T<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tokens {
        match t {
            T::S(s) => put_str(&mut out, s),
            T::Raw(r) => out.extend_from_slice(r),
        }
    }
    out
}

use T::S;

fn file_tokens(contents: &'static [u8]) -> Vec<T<'static>> {
    vec![
        S(b"("),
        S(b"type"),
        S(b"regular"),
        S(b"contents"),
        S(contents),
        S(b")"),
    ]
}

fn entry<'a>(name: &'a [u8], node: Vec<T<'a>>) -> Vec<T<'a>> {
    let mut v = vec![S(b"entry"), S(b"("), S(b"name"), S(name), S(b"node")];
    v.extend(node);
    v.push(S(b")"));
    v
}

fn dir<'a>(entries: Vec<Vec<T<'a>>>) -> Vec<T<'a>> {
    let mut v = vec![S(b"("), S(b"type"), S(b"directory")];
    for e in entries {
        v.extend(e);
    }
    v.push(S(b")"));
    v
}

fn archive(node: Vec<T<'_>>) -> Vec<u8> {
    let mut v = vec![S(b"nix-archive-1")];
    v.extend(node);
    nar(&v)
}

/// Validate with every front end and a few chunkings; all must agree.
fn check(bytes: &[u8]) -> Result<NarSummary, NarError> {
    let whole = validate(bytes);
    for chunk in [1usize, 3, 8, 13, 4096] {
        let mut v = NarValidator::new();
        let mut res = Ok(());
        for c in bytes.chunks(chunk) {
            match v.feed(c) {
                Ok(n) if n < c.len() => {
                    res = Err(NarError::TrailingData { offset: v.size() });
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        let chunked = res.and_then(|()| v.finish());
        assert_eq!(
            format!("{chunked:?}"),
            format!("{whole:?}"),
            "chunk size {chunk} disagrees"
        );
    }
    let mut r = NarReader::new(bytes);
    let pulled = r
        .skip_to_end()
        .and_then(|()| r.expect_eof())
        .and_then(|()| r.summary());
    assert_eq!(
        format!("{pulled:?}"),
        format!("{whole:?}"),
        "NarReader disagrees"
    );
    whole
}

fn good_dir() -> Vec<u8> {
    archive(dir(vec![
        entry(b"a", file_tokens(b"hello\n")),
        entry(
            b"b",
            vec![
                S(b"("),
                S(b"type"),
                S(b"symlink"),
                S(b"target"),
                S(b"a"),
                S(b")"),
            ],
        ),
    ]))
}

#[test]
fn accepts_well_formed() {
    let s = check(&good_dir()).unwrap();
    assert_eq!(s.size, good_dir().len() as u64);
    assert_eq!(s.nar_hash, crate::store::Hash::sha256_of(&good_dir()));
    check(&archive(file_tokens(b""))).unwrap();
    check(&archive(dir(vec![]))).unwrap();
    let exec = archive(vec![
        S(b"("),
        S(b"type"),
        S(b"regular"),
        S(b"executable"),
        S(b""),
        S(b"contents"),
        S(b"#!/bin/sh\n"),
        S(b")"),
    ]);
    check(&exec).unwrap();
}

#[test]
fn hello_vector() {
    // nix-protocol.md §7.1: NAR("hello\n") is 120 bytes with this hash (also checked against
    // real nix-store --dump in tests/store_nar.rs).
    let n = archive(file_tokens(b"hello\n"));
    assert_eq!(n.len(), 120);
    assert_eq!(
        check(&n).unwrap().nar_hash.to_nix32(),
        "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw"
    );
}

#[test]
fn rejects_bad_magic() {
    let mut v = vec![S(b"nix-archive-2")];
    v.extend(file_tokens(b"x"));
    assert!(matches!(check(&nar(&v)), Err(NarError::BadMagic)));
    // An absurd length where the magic should be is refused before anything is buffered.
    let huge = nar(&[T::Raw(&u64::MAX.to_le_bytes())]);
    assert!(matches!(check(&huge), Err(NarError::BadMagic)));
    assert!(matches!(check(b"garbage!"), Err(NarError::BadMagic)));
}

#[test]
fn rejects_unsorted_and_duplicate_entries() {
    let unsorted = archive(dir(vec![
        entry(b"b", file_tokens(b"")),
        entry(b"a", file_tokens(b"")),
    ]));
    assert!(matches!(check(&unsorted), Err(NarError::NotSorted { .. })));
    let dup = archive(dir(vec![
        entry(b"a", file_tokens(b"")),
        entry(b"a", file_tokens(b"")),
    ]));
    assert!(matches!(check(&dup), Err(NarError::NotSorted { .. })));
    // Bytewise, not by locale or char: 'B' (0x42) < 'a' (0x61), 0xff sorts last.
    let bytewise = archive(dir(vec![
        entry(b"B", file_tokens(b"")),
        entry(b"a", file_tokens(b"")),
        entry(b"\xff", file_tokens(b"")),
    ]));
    check(&bytewise).unwrap();
    // Sorting is per directory: a nested directory starts afresh.
    let nested = archive(dir(vec![
        entry(b"m", dir(vec![entry(b"z", file_tokens(b""))])),
        entry(b"n", dir(vec![entry(b"a", file_tokens(b""))])),
    ]));
    check(&nested).unwrap();
}

#[test]
fn rejects_bad_names() {
    for (name, what) in [
        (&b""[..], "empty"),
        (b".", "dot"),
        (b"..", "dotdot"),
        (b"a/b", "slash"),
        (b"/", "slash only"),
        (b"a\0b", "nul"),
    ] {
        let n = archive(dir(vec![entry(name, file_tokens(b""))]));
        assert!(matches!(check(&n), Err(NarError::BadName { .. })), "{what}");
    }
    let ok = vec![b'x'; 255];
    check(&archive(dir(vec![entry(&ok, file_tokens(b""))]))).unwrap();
}

#[test]
fn rejects_long_name_before_allocating() {
    let long = vec![b'x'; 256];
    let n = archive(dir(vec![entry(&long, file_tokens(b""))]));
    assert!(matches!(
        check(&n),
        Err(NarError::NameTooLong { len: 256, .. })
    ));
    // A claimed length of 2^63 with no data behind it: rejected from the length alone.
    let mut v = archive(dir(vec![]));
    v.truncate(v.len() - 16); // drop the directory's ")"
    v.extend(nar(&[
        S(b"entry"),
        S(b"("),
        S(b"name"),
        T::Raw(&(1u64 << 63).to_le_bytes()),
    ]));
    assert!(matches!(check(&v), Err(NarError::NameTooLong { .. })));
}

fn symlink(target: &[u8]) -> Vec<u8> {
    archive(vec![
        S(b"("),
        S(b"type"),
        S(b"symlink"),
        S(b"target"),
        S(target),
        S(b")"),
    ])
}

#[test]
fn rejects_bad_symlink_targets() {
    check(&symlink(&vec![b'a'; 4095])).unwrap();
    assert!(matches!(
        check(&symlink(&vec![b'a'; 4096])),
        Err(NarError::TargetTooLong { len: 4096, .. })
    ));
    assert!(matches!(
        check(&symlink(b"")),
        Err(NarError::BadTarget {
            reason: "empty",
            ..
        })
    ));
    assert!(matches!(
        check(&symlink(b"a\0b")),
        Err(NarError::BadTarget {
            reason: "contains NUL",
            ..
        })
    ));
    let huge = nar(&[
        S(b"nix-archive-1"),
        S(b"("),
        S(b"type"),
        S(b"symlink"),
        S(b"target"),
        T::Raw(&u64::MAX.to_le_bytes()),
    ]);
    assert!(matches!(check(&huge), Err(NarError::TargetTooLong { .. })));
}

#[test]
fn rejects_nonzero_padding() {
    // Padding after a keyword.
    let mut n = archive(file_tokens(b"hello\n"));
    // "nix-archive-1" is 13 bytes: its padding is bytes 8+13..8+16.
    n[8 + 13] = 1;
    assert!(matches!(
        check(&n),
        Err(NarError::NonZeroPadding { offset: 21 })
    ));
    // Padding after file contents.
    let mut n = archive(file_tokens(b"hello\n"));
    let contents_end = n.len() - 16 - 2; // ")" token is 16 bytes; "hello\n" has 2 padding bytes
    n[contents_end] = 7;
    assert!(matches!(check(&n), Err(NarError::NonZeroPadding { .. })));
    // Padding after a name.
    let mut n = archive(dir(vec![entry(b"abc", file_tokens(b""))]));
    let pos = n.windows(3).position(|w| w == b"abc").unwrap() + 3;
    n[pos + 4] = 0x80;
    assert!(matches!(check(&n), Err(NarError::NonZeroPadding { .. })));
}

#[test]
fn rejects_wrong_field_order() {
    // executable after contents.
    let n = archive(vec![
        S(b"("),
        S(b"type"),
        S(b"regular"),
        S(b"contents"),
        S(b"x"),
        S(b"executable"),
        S(b""),
        S(b")"),
    ]);
    assert!(matches!(
        check(&n),
        Err(NarError::UnexpectedToken {
            expected: "')'",
            ..
        })
    ));
    // name after node.
    let mut v = vec![
        S(b"("),
        S(b"type"),
        S(b"directory"),
        S(b"entry"),
        S(b"("),
        S(b"node"),
    ];
    v.extend(file_tokens(b""));
    v.extend([S(b"name"), S(b"a"), S(b")"), S(b")")]);
    assert!(matches!(
        check(&archive(v)),
        Err(NarError::UnexpectedToken {
            expected: "'name'",
            ..
        })
    ));
    // executable flag with a non-empty value.
    let n = archive(vec![
        S(b"("),
        S(b"type"),
        S(b"regular"),
        S(b"executable"),
        S(b"1"),
        S(b"contents"),
        S(b""),
        S(b")"),
    ]);
    assert!(matches!(check(&n), Err(NarError::UnexpectedToken { .. })));
    // type before "(" and unknown types.
    let n = archive(vec![S(b"type"), S(b"regular")]);
    assert!(matches!(check(&n), Err(NarError::UnexpectedToken { .. })));
    let n = archive(vec![S(b"("), S(b"type"), S(b"fifo"), S(b")")]);
    assert!(matches!(check(&n), Err(NarError::UnexpectedToken { .. })));
    // A keyword slot with a long token is refused from its length.
    let n = nar(&[S(b"nix-archive-1"), T::Raw(&(1u64 << 40).to_le_bytes())]);
    assert!(matches!(check(&n), Err(NarError::UnexpectedToken { .. })));
}

fn nested(depth: usize) -> Vec<u8> {
    // `depth` directories, one inside the other, with a file at the bottom.
    let mut node = file_tokens(b"deep");
    for _ in 0..depth {
        node = dir(vec![entry(b"d", node)]);
    }
    archive(node)
}

#[test]
fn rejects_deep_nesting() {
    check(&nested(MAX_DEPTH)).unwrap();
    assert!(matches!(
        check(&nested(MAX_DEPTH + 1)),
        Err(NarError::TooDeep { .. })
    ));
    assert!(matches!(
        check(&nested(1000)),
        Err(NarError::TooDeep { .. })
    ));
}

#[test]
fn rejects_truncation_everywhere() {
    let full = good_dir();
    for cut in 0..full.len() {
        match check(&full[..cut]) {
            Err(NarError::Truncated { offset }) => assert_eq!(offset, cut as u64),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn rejects_trailing_bytes() {
    let mut n = good_dir();
    n.push(0);
    assert!(matches!(check(&n), Err(NarError::TrailingData { .. })));
    let mut n = good_dir();
    n.extend(good_dir());
    assert!(matches!(check(&n), Err(NarError::TrailingData { .. })));
}

#[test]
fn stream_positions_after_archive() {
    // The daemon case: the NAR is followed by the next message on the same stream.
    let mut stream = good_dir();
    stream.extend_from_slice(b"NEXT-MSG");
    let mut v = NarValidator::new();
    let used = v.feed(&stream).unwrap();
    assert_eq!(used, good_dir().len());
    assert!(v.is_done());
    let mut r = NarReader::new(&stream[..]);
    r.skip_to_end().unwrap();
    let mut rest = Vec::new();
    r.into_inner().read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"NEXT-MSG");
    let mut vr = ValidatingReader::new(&stream[..]);
    let mut copy = Vec::new();
    vr.read_to_end(&mut copy).unwrap();
    assert_eq!(copy, good_dir());
    let (summary, mut inner) = vr.finish().unwrap();
    assert_eq!(summary.size, copy.len() as u64);
    let mut rest = Vec::new();
    inner.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"NEXT-MSG");
}

#[test]
fn validating_reader_reports_truncation() {
    let full = good_dir();
    let mut vr = ValidatingReader::new(&full[..full.len() - 1]);
    let err = std::io::copy(&mut vr, &mut std::io::sink()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[test]
fn unpack_refuses_existing_target_and_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("out");
    std::fs::create_dir(&target).unwrap();
    assert!(matches!(
        unpack(&good_dir()[..], &target),
        Err(NarError::Exists { .. })
    ));
    // A symlink entry followed by a directory of the same name would walk through the link;
    // the decoder refuses the duplicate, and O_EXCL/mkdirat would refuse it anyway.
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let link_target = outside.to_str().unwrap().as_bytes().to_vec();
    let evil = archive(dir(vec![
        entry(
            b"x",
            vec![
                S(b"("),
                S(b"type"),
                S(b"symlink"),
                S(b"target"),
                S(&link_target),
                S(b")"),
            ],
        ),
        entry(b"x", dir(vec![entry(b"pwned", file_tokens(b"!"))])),
    ]));
    let target2 = tmp.path().join("out2");
    assert!(matches!(
        unpack(&evil[..], &target2),
        Err(NarError::NotSorted { .. })
    ));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    // Hostile names never reach the filesystem.
    let evil = archive(dir(vec![entry(
        b"..",
        dir(vec![entry(b"pwned", file_tokens(b"!"))]),
    )]));
    assert!(unpack(&evil[..], &tmp.path().join("out3")).is_err());
    assert!(!tmp.path().join("pwned").exists());
}

#[test]
fn unpack_and_reencode() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("t");
    let s = unpack(&good_dir()[..], &target).unwrap();
    assert_eq!(s.size, good_dir().len() as u64);
    assert_eq!(std::fs::read(target.join("a")).unwrap(), b"hello\n");
    assert_eq!(
        std::fs::read_link(target.join("b")).unwrap().to_str(),
        Some("a")
    );
    let mut again = Vec::new();
    dump_path(&target, &mut again).unwrap();
    assert_eq!(again, good_dir());
}

// ---- property tests: random trees → encode → decode → unpack → re-encode ----

#[derive(Clone, Debug)]
enum Tree {
    File { exec: bool, data: Vec<u8> },
    Link(Vec<u8>),
    Dir(std::collections::BTreeMap<Vec<u8>, Tree>),
}

fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    // Any bytes except '/' and NUL, 1..12 long, not "." or "..".
    proptest::collection::vec(1u8..=255, 1..12)
        .prop_map(|v| {
            v.into_iter()
                .map(|b| if b == b'/' { b'_' } else { b })
                .collect::<Vec<u8>>()
        })
        .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn tree_strategy() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(exec, data)| Tree::File { exec, data }),
        proptest::collection::vec(1u8..=255, 1..40).prop_map(Tree::Link),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        proptest::collection::btree_map(name_strategy(), inner, 0..8).prop_map(Tree::Dir)
    })
}

fn write_tree(path: &std::path::Path, t: &Tree) {
    use std::os::unix::ffi::OsStrExt;
    match t {
        Tree::File { exec, data } => {
            std::fs::write(path, data).unwrap();
            let mode = if *exec { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        Tree::Link(target) => {
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path).unwrap()
        }
        Tree::Dir(entries) => {
            std::fs::create_dir(path).unwrap();
            for (name, child) in entries {
                write_tree(&path.join(std::ffi::OsStr::from_bytes(name)), child);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip(tree in tree_strategy()) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        write_tree(&src, &tree);
        let mut encoded = Vec::new();
        let size = dump_path(&src, &mut encoded).unwrap();
        prop_assert_eq!(size, encoded.len() as u64);
        // The Read interface gives the same bytes with a small caller buffer.
        let mut via_read = Vec::new();
        let mut enc = NarEncoder::new(&src);
        let mut small = [0u8; 5];
        loop {
            let n = enc.read(&mut small).unwrap();
            if n == 0 { break; }
            via_read.extend_from_slice(&small[..n]);
        }
        prop_assert_eq!(&via_read, &encoded);
        let summary = check(&encoded).unwrap();
        prop_assert_eq!(summary.size, size);
        let dst = tmp.path().join("dst");
        let unpacked = unpack(&encoded[..], &dst).unwrap();
        prop_assert_eq!(&unpacked, &summary);
        let mut again = Vec::new();
        dump_path(&dst, &mut again).unwrap();
        prop_assert_eq!(again, encoded);
    }

    #[test]
    fn decoder_never_panics_on_mutations(tree in tree_strategy(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        write_tree(&src, &tree);
        let mut encoded = Vec::new();
        dump_path(&src, &mut encoded).unwrap();
        for (i, b) in flips {
            let i = i.index(encoded.len());
            encoded[i] ^= b;
        }
        let _ = check(&encoded);
        let _ = check(&encoded[..cut.index(encoded.len() + 1)]);
        let _ = unpack(&encoded[..], &tmp.path().join("dst"));
    }
}
