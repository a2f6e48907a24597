//! Fuzz target: parse and evaluate arbitrary Nix source with ferry's evaluator.
//!
//! Bounded per input: at most 8 KiB of source, 200,000 evaluation steps, the default call-depth and stack
//! budgets, and the evaluator's own caps on string (256 MiB) and list (16 Mi) sizes. Any panic or stack
//! overflow is a bug; evaluation errors are expected. Run with `cargo fuzz run eval -- -rss_limit_mb=2048`.
#![no_main]

use std::path::Path;

use ferry::eval::{EvalOptions, Evaluator};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 8 * 1024 {
        return;
    }
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let opts = EvalOptions { max_steps: 200_000, ..EvalOptions::default() };
    let mut ev = Evaluator::new(opts);
    // Keep the fuzzer away from the real file system: only a virtual tree exists.
    ev.add_virtual_file(Path::new("/fuzz/lib.nix"), "{ x = 1; f = a: a; }".to_string());
    if let Ok(v) = ev.eval_source(src, Path::new("/fuzz/input.nix")) {
        let _ = ev.print(&v, true);
        let _ = ev.to_json_string(&v);
    }
});
