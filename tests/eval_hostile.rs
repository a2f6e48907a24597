//! Hostile input: every case must end in a clean `EvalError` (never a crash, a stack overflow or a hang),
//! both on an ordinary thread (2 MiB stack, where the default budget applies) and on the big-stack thread
//! `ferry nix-eval` uses.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use ferry::eval::{EvalErrorKind, EvalOptions, Evaluator};

/// Evaluates `src` deeply on a fresh thread of `stack` bytes; panics if it takes longer than `limit`.
fn eval_on(
    src: String,
    stack: Option<usize>,
    limit: Duration,
) -> Result<String, (EvalErrorKind, String)> {
    let (tx, rx) = mpsc::channel();
    let mut builder = std::thread::Builder::new();
    builder = match stack {
        Some(s) => builder.stack_size(s).name("ferry-eval-big-stack".into()),
        None => builder.stack_size(2 * 1024 * 1024),
    };
    builder
        .spawn(move || {
            let mut ev = Evaluator::new(EvalOptions::default());
            let r = ev
                .eval_source(&src, Path::new("/hostile/input.nix"))
                .and_then(|v| ev.print(&v, true))
                .map_err(|e| (e.kind, e.to_string()));
            let _ = tx.send(r);
        })
        .expect("spawn");
    rx.recv_timeout(limit)
        .expect("evaluation must finish (no hang, no crash)")
}

fn both(src: &str) -> Vec<Result<String, (EvalErrorKind, String)>> {
    vec![
        eval_on(src.to_string(), None, Duration::from_secs(60)),
        eval_on(
            src.to_string(),
            Some(ferry::eval::BIG_STACK),
            Duration::from_secs(60),
        ),
    ]
}

fn assert_error(src: &str, kinds: &[EvalErrorKind]) {
    for r in both(src) {
        match r {
            Ok(v) => panic!("expected an error, got {}", &v[..v.len().min(100)]),
            Err((kind, msg)) => assert!(
                kinds.contains(&kind),
                "unexpected error kind {kind:?}: {msg}"
            ),
        }
    }
}

#[test]
fn deep_nesting_is_an_error() {
    let n = 100_000;
    let cases = [
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}{}", "[".repeat(n), "]".repeat(n)),
        format!("{}1{}", "{ a = ".repeat(n), "; }".repeat(n)),
        format!("{}1", "let a = 1; in ".repeat(n)),
        format!("{}x", "x: ".repeat(n)),
        format!("{}1", "!".repeat(n)),
        format!("{}1", "-".repeat(n)),
        format!("{}true", "if true then ".repeat(n)) + &" else false".repeat(n),
    ];
    for src in cases {
        assert_error(&src, &[EvalErrorKind::Parse, EvalErrorKind::TooDeep]);
    }
}

#[test]
fn long_operator_chains_are_bounded() {
    // rnix builds these iteratively, so the tree is as deep as the chain: ferry must not recurse blindly.
    let n = 100_000;
    for op in ["+", "++", "//", "&&", "==", "-"] {
        let operand = match op {
            "++" => "[1]",
            "//" => "{}",
            "&&" => "true",
            _ => "1",
        };
        let src = vec![operand; n].join(&format!(" {op} "));
        let results = both(&src);
        for r in results {
            match r {
                Ok(_) => {}
                Err((kind, msg)) => assert!(
                    matches!(kind, EvalErrorKind::TooDeep | EvalErrorKind::TypeError),
                    "unexpected error kind {kind:?}: {msg}"
                ),
            }
        }
    }
}

#[test]
fn infinite_recursion_is_reported() {
    for src in [
        "let x = x; in x",
        "rec { a = b; b = a; }.a",
        "let a = { b = a.b; }; in a.b",
    ] {
        for r in both(src) {
            let (kind, msg) = r.expect_err("must fail");
            assert_eq!(kind, EvalErrorKind::InfiniteRecursion, "{msg}");
            assert!(msg.contains("infinite recursion encountered"), "{msg}");
        }
    }
}

#[test]
fn deep_recursion_is_an_error_not_a_stack_overflow() {
    for src in [
        "let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 1000000",
        "let f = x: f (x + 1); in f 0",
        "let f = x: [ (f x) ]; in f 0",
        "let xs = builtins.genList (i: i) 200000; in builtins.foldl' (acc: x: { inherit acc; }) {} xs",
    ] {
        for r in both(src) {
            if let Err((kind, msg)) = r {
                assert_eq!(kind, EvalErrorKind::TooDeep, "{msg}");
            }
        }
    }
}

#[test]
fn moderate_recursion_succeeds_on_the_big_stack() {
    let r = eval_on(
        "let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 3000".into(),
        Some(ferry::eval::BIG_STACK),
        Duration::from_secs(60),
    );
    assert_eq!(r.expect("depth 3000 must evaluate"), "3000");
}

#[test]
fn huge_strings_are_fine_or_an_error() {
    let big = "a".repeat(8 * 1024 * 1024);
    let r = eval_on(
        format!("builtins.stringLength \"{big}\""),
        None,
        Duration::from_secs(120),
    );
    assert_eq!(
        r.expect("an 8 MiB literal evaluates"),
        (8 * 1024 * 1024).to_string()
    );
    // Doubling a string 40 times would need a terabyte: it must fail cleanly or not at all be built.
    let r = eval_on(
        "let d = s: n: if n == 0 then s else d (s + s) (n - 1); in builtins.stringLength (d \"x\" 24)".into(),
        None,
        Duration::from_secs(120),
    );
    assert_eq!(r.expect("16 MiB by doubling"), (1u64 << 24).to_string());
    let r = eval_on(
        "builtins.genList (i: i) 1000000000".into(),
        None,
        Duration::from_secs(60),
    );
    assert!(r.is_err(), "a billion-element list is refused");
}

#[test]
fn self_import_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("self.nix");
    std::fs::write(&file, "import ./self.nix").expect("write");
    let a = dir.path().join("a.nix");
    std::fs::write(&a, "(import ./b.nix) + 1").expect("write");
    std::fs::write(dir.path().join("b.nix"), "(import ./a.nix) + 1").expect("write");
    for f in [file, a] {
        let src = format!("import {}", f.display());
        for r in both(&src) {
            let (kind, msg) = r.expect_err("self import must fail");
            assert!(
                matches!(
                    kind,
                    EvalErrorKind::InfiniteRecursion | EvalErrorKind::TooDeep
                ),
                "{kind:?}: {msg}"
            );
        }
    }
}

#[test]
fn garbage_input_never_panics() {
    for src in [
        "",
        "(",
        "{",
        "''",
        "\"${",
        "let in",
        "a:",
        "{ a, a }: 1",
        "1 +",
        "\u{0}",
        "''${",
        "~/",
        "<",
        "x.${",
    ] {
        for r in both(src) {
            assert!(r.is_err(), "{src:?} must not evaluate");
        }
    }
}

#[test]
fn deep_values_print_and_compare_without_overflow() {
    // foldl' builds a 200,000-deep value that is already evaluated; printing it lazily, comparing it and
    // dropping it must not recurse without bounds.
    for src in [
        "let xs = builtins.genList (i: i) 200000; in builtins.foldl' (acc: x: { inherit acc; }) {} xs",
        "let xs = builtins.genList (i: i) 200000; l = builtins.foldl' (acc: x: [ acc ]) [] xs; in builtins.lessThan l l",
        "let xs = builtins.genList (i: i) 200000; l = builtins.foldl' (acc: x: [ acc ]) [] xs; in toString l",
    ] {
        let (tx, rx) = mpsc::channel();
        let src = src.to_string();
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let mut ev = Evaluator::new(EvalOptions::default());
                let r = ev
                    .eval_source(&src, Path::new("/hostile/deep.nix"))
                    .and_then(|v| ev.print(&v, false))
                    .map_err(|e| e.kind);
                let _ = tx.send(r.map(|s| s.len()));
            })
            .expect("spawn");
        let r = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("no crash, no hang");
        if let Err(kind) = r {
            assert_eq!(kind, EvalErrorKind::TooDeep);
        }
    }
}
