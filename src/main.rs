//! The `ferry` binary: everything happens in [`ferry::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    ferry::cli::run()
}
