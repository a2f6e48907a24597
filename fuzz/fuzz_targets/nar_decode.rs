//! Fuzz the NAR decoder: every front end (whole-buffer validate, chunked push validator with a
//! chunking taken from the input, pull reader) must agree, and none may panic.
//! Run: `cd fuzz && cargo +nightly fuzz run nar_decode -- -max_len=1048576`

#![no_main]

use ferry_store_fuzz::store::nar::{self, NarReader, NarValidator};
use libfuzzer_sys::fuzz_target;

/// Inputs above this are cut: the decoder's memory does not depend on size, only time does.
const MAX_INPUT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_INPUT)];
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => (1, data),
    };
    let whole = nar::validate(data).map_err(|e| e.to_string());

    let mut v = NarValidator::new();
    let mut pushed = Ok(());
    for c in data.chunks(chunk) {
        match v.feed(c) {
            Ok(n) if n < c.len() => {
                pushed = Err(format!(
                    "trailing data after the end of the NAR at offset {}",
                    v.size()
                ));
                break;
            }
            Ok(_) => {}
            Err(e) => {
                pushed = Err(e.to_string());
                break;
            }
        }
    }
    let pushed = pushed.and_then(|()| v.finish().map_err(|e| e.to_string()));
    assert_eq!(whole, pushed);

    let mut r = NarReader::new(data);
    let pulled = (|| {
        while let Some(ev) = r.next()? {
            // Events must respect the documented limits.
            match ev {
                nar::Event::Entry { name } => {
                    assert!(!name.is_empty() && name.len() <= nar::MAX_NAME_LEN)
                }
                nar::Event::Symlink { target } => {
                    assert!(!target.is_empty() && target.len() <= nar::MAX_TARGET_LEN)
                }
                _ => {}
            }
        }
        r.expect_eof()?;
        r.summary()
    })()
    .map_err(|e| e.to_string());
    assert_eq!(whole, pulled);
});
