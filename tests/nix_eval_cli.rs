//! `ferry nix-eval` prints byte for byte what `nix-instantiate --eval` prints, with the same exit status,
//! for files, `-E`, `--arg`, `--argstr`, `-I`, `--strict` and `--json`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval")
}

fn run(program: &str, args: &[&str]) -> (bool, Vec<u8>) {
    let mut cmd = Command::new(program);
    if program == "nix-instantiate" {
        cmd.args(["--eval", "--readonly-mode", "--option", "substituters", ""]);
    } else {
        cmd.arg("nix-eval");
    }
    let out = cmd
        .args(args)
        .current_dir(data_dir())
        .env_remove("NIX_PATH")
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    (out.status.success(), out.stdout)
}

#[test]
fn cli_output_matches_nix_instantiate() {
    let corpus = format!("corpus={}", data_dir().join("search/corpus").display());
    let cases: Vec<Vec<&str>> = vec![
        vec!["-E", "{ a = 1; b = [ 1 2 ]; }"],
        vec!["--strict", "-E", "{ a = 1; b = [ 1 2 ]; c = x: x; }"],
        vec!["--strict", "--json", "-E", "{ a = 1; b = [ 1 2 ]; }"],
        vec!["--json", "-E", "\"str\""],
        vec!["files/set.nix"],
        vec!["--strict", "files/set.nix"],
        vec!["--strict", "--json", "files/args.nix"],
        vec!["--strict", "--json", "--arg", "a", "10", "files/args.nix"],
        vec![
            "--strict",
            "--json",
            "--argstr",
            "a",
            "text",
            "files/args.nix",
        ],
        vec![
            "--strict",
            "--json",
            "--arg",
            "b",
            "[ 1 ]",
            "--argstr",
            "a",
            "x",
            "files/args.nix",
        ],
        vec![
            "--strict",
            "--json",
            "--arg",
            "unused",
            "1",
            "files/double.nix",
        ],
        vec!["--strict", "--json", "-I", &corpus, "-E", "import <corpus>"],
        vec!["--strict", "-E", "throw \"boom\""],
        vec!["-E", "{ a = "],
        vec!["--strict", "--json", "-E", "builtins.trace \"to stderr\" 1"],
    ];
    let ferry = env!("CARGO_BIN_EXE_ferry");
    let mut failures = Vec::new();
    for args in &cases {
        let theirs = run("nix-instantiate", args);
        let ours = run(ferry, args);
        let same = theirs.0 == ours.0 && (!theirs.0 || theirs.1 == ours.1);
        if !same {
            failures.push(format!(
                "{args:?}\n  nix:   {} {:?}\n  ferry: {} {:?}",
                theirs.0,
                String::from_utf8_lossy(&theirs.1),
                ours.0,
                String::from_utf8_lossy(&ours.1)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "ferry nix-eval differs:\n{}",
        failures.join("\n")
    );
}
