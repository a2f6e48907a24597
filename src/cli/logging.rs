//! Diagnostics setup for the binary: `tracing` to stderr, filtered by `RUST_LOG` (default: warnings).
//!
//! Layer: `cli`. Library layers only emit `tracing` events; this is where they become text.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
