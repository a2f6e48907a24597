//! The layer diagram of `docs/architecture.md`, checked: a lower layer never imports a higher one, and the pure
//! layers never use tokio.

use std::fs;
use std::path::{Path, PathBuf};

/// Layers from bottom to top. A module may import only the modules listed before it (and itself).
const LAYERS: &[(&str, &[&str])] = &[
    ("store", &[]),
    ("syntax", &[]),
    ("eval", &["syntax"]),
    ("network", &["syntax", "eval", "store"]),
    ("daemon", &["store"]),
    ("ssh", &["store"]),
    ("state", &["store", "syntax", "eval", "network"]),
    ("copy", &["store", "daemon", "ssh", "state"]),
    (
        "deploy",
        &[
            "store", "daemon", "ssh", "copy", "state", "syntax", "eval", "network",
        ],
    ),
];

/// Layers that must stay synchronous and free of I/O runtimes.
const PURE: &[&str] = &["store", "syntax", "eval", "network"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_modules() -> Vec<&'static str> {
    let mut all: Vec<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    all.push("cli");
    all
}

#[test]
fn lower_layers_do_not_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut checked = 0;
    for (module, allowed) in LAYERS {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).expect("read source file");
            checked += 1;
            for other in all_modules() {
                if other == *module || allowed.contains(&other) {
                    continue;
                }
                for pattern in [
                    format!("crate::{other}::"),
                    format!("crate::{other};"),
                    format!("ferry::{other}::"),
                ] {
                    if text.contains(&pattern) {
                        violations.push(format!("{} uses `{pattern}`", file.display()));
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no source files found under {}", src.display());
    assert!(
        violations.is_empty(),
        "layer violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn pure_layers_do_not_use_tokio() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for module in PURE {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).expect("read source file");
            if text.contains("tokio::") || text.contains("use tokio") {
                violations.push(file.display().to_string());
            }
        }
    }
    assert!(
        violations.is_empty(),
        "tokio used in a pure layer:\n{}",
        violations.join("\n")
    );
}
