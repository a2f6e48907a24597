#!/usr/bin/env bash
# Build the fuzz targets with libFuzzer (nightly) and run each for N seconds (default 60),
# starting from a corpus seeded with the NARs Nix produced (vendor/store/nar).
# Without cargo-fuzz installed this sets the same flags cargo-fuzz does.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
triple=$(rustc -vV | sed -n 's/^host: //p')
if cargo fuzz --version >/dev/null 2>&1; then
    cargo +nightly fuzz build -O
    bindir=target/$triple/release
else
    RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Zsanitizer=address" \
        cargo +nightly build --release --target "$triple" --bins
    bindir=target/$triple/release
fi
for t in nar_decode nar_unpack; do
    mkdir -p "corpus/$t" "artifacts/$t"
    for f in ../vendor/store/nar/*.nar; do
        # nar_decode's first byte picks the chunk size for the push validator.
        if [ "$t" = nar_decode ]; then { printf '\007'; cat "$f"; } > "corpus/$t/$(basename "$f")"; else cp "$f" "corpus/$t/"; fi
    done
    max=$([ "$t" = nar_decode ] && echo 1048576 || echo 65536)
    "$bindir/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$secs" -max_len="$max" -print_final_stats=1
done
