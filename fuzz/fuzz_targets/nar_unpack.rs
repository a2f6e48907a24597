//! Fuzz unpacking: whatever the input, nothing may be created outside the target directory and
//! nothing may panic. Run: `cd fuzz && cargo +nightly fuzz run nar_unpack -- -max_len=65536`

#![no_main]

use ferry_store_fuzz::store::nar;
use libfuzzer_sys::fuzz_target;

const MAX_INPUT: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_INPUT)];
    let Ok(tmp) = tempfile::tempdir() else { return };
    let jail = tmp.path().join("jail");
    if std::fs::create_dir(&jail).is_err() {
        return;
    }
    let _ = nar::unpack(data, &jail.join("out"));
    // The only thing in the jail may be "out".
    let names: Vec<_> = std::fs::read_dir(&jail)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default();
    assert!(
        names.iter().all(|n| n == "out"),
        "unpack escaped: {names:?}"
    );
    let outside: Vec<_> = std::fs::read_dir(tmp.path())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default();
    assert_eq!(outside, vec![std::ffi::OsString::from("jail")]);
});
