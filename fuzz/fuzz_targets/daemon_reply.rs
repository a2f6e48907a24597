//! Fuzz the worker-protocol reply decoders (path infos, path sets, build results, QueryMissing,
//! output maps, stderr messages, the handshake): no panics, no unbounded allocation, and the
//! prefix invariant the client's incremental reader relies on (a reply the decoder accepts is
//! `Incomplete`, never `Invalid`, when cut short).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks the decoder and the protocol version; cap the size so the prefix check
    // (quadratic) stays fast.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if rest.len() > 4096 {
        return;
    }
    assert!(ferry::daemon::proto::check_prefix_invariant(selector, rest));
});
