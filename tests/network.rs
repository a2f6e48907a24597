//! `ferry eval` and `ferry lint` on real NixOps networks (the seeds' networks and our own bad cases).
//!
//! - `ferry eval --json` is compared with real `nix-instantiate --eval --strict --json` running the same
//!   driver (src/network/nix/cli.nix): the module-system semantics (defaults, priorities, imports, nodes,
//!   several files) are checked against Nix itself, not against hard-coded values.
//! - Output is pinned with insta snapshots (tests/snapshots/), with the checkout path replaced by `[ROOT]`.
//! - Key contents never appear in any output (poison test, with a control).
//!
//! Requires `nix-instantiate` on PATH (CI installs nix-bin); the tests fail loudly without it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data() -> PathBuf {
    root().join("tests/data/networks")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs ferry in tests/data/networks (so that paths print relative), without colour or NIX_PATH.
fn ferry(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(data())
        .env("NO_COLOR", "1")
        .env_remove("NIX_PATH")
        .output()
        .expect("run ferry");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Replaces the checkout path so snapshots do not depend on where the tests run.
fn filter(s: &str) -> String {
    s.replace(&root().display().to_string(), "[ROOT]")
}

/// The same discovery, done by real Nix on the same driver.
fn nix_summary(files: &[&str], args: Option<&str>) -> serde_json::Value {
    let list: Vec<String> = files
        .iter()
        .map(|f| data().join(f).display().to_string())
        .collect();
    let mut cmd = Command::new("nix-instantiate");
    cmd.args([
        "--option",
        "substituters",
        "",
        "--eval",
        "--strict",
        "--json",
        "-A",
        "summary",
    ])
    .arg(root().join("src/network/nix/cli.nix"))
    .args(["--arg", "files", &format!("[ {} ]", list.join(" "))]);
    if let Some(a) = args {
        cmd.args(["--arg", "args", a]);
    }
    let out = cmd
        .output()
        .expect("nix-instantiate must be installed for these tests (CI installs nix-bin)");
    assert!(
        out.status.success(),
        "nix-instantiate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nix-instantiate JSON")
}

const NETWORKS: &[(&str, &[&str])] = &[
    ("two_file", &["two-file/target.nix", "two-file/config.nix"]),
    ("blog", &["blog/scaleway-setup.nix"]),
    ("five_machines", &["five-machines/configuration.nix"]),
    ("semantics", &["semantics/base.nix", "semantics/extra.nix"]),
];

#[test]
fn eval_json_matches_nix_instantiate_and_snapshots() {
    for (name, files) in NETWORKS {
        let mut args = vec!["eval", "--json"];
        args.extend(files.iter());
        let out = ferry(&args);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let ours: serde_json::Value = serde_json::from_str(&out.stdout).expect("ferry JSON");
        let theirs = nix_summary(files, None);
        assert_eq!(ours, theirs, "{name}: ferry and nix-instantiate disagree");
        let pretty = serde_json::to_string_pretty(&ours).expect("json");
        insta::assert_snapshot!(format!("eval_json_{name}"), filter(&pretty));
    }
}

#[test]
fn eval_applies_argstr_like_nix() {
    let out = ferry(&[
        "eval",
        "--json",
        "--argstr",
        "domain",
        "test.org",
        "semantics/base.nix",
        "semantics/extra.nix",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ours: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let theirs = nix_summary(
        &["semantics/base.nix", "semantics/extra.nix"],
        Some("{ domain = \"test.org\"; }"),
    );
    assert_eq!(ours, theirs);
    assert_eq!(ours["machines"]["beta"]["targetHost"], "beta.test.org");
}

#[test]
fn eval_human_and_machine_filter() {
    let out = ferry(&[
        "eval",
        "five-machines/configuration.nix",
        "--machine",
        "pigeon",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("eval_human_pigeon", filter(&out.stdout));
    let out = ferry(&[
        "eval",
        "five-machines/configuration.nix",
        "--machine",
        "pigeonn",
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("did you mean `pigeon`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn eval_refuses_a_network_with_errors() {
    let out = ferry(&["eval", "--json", "bad/options.nix"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("error[E0004]"), "{}", out.stderr);
}

#[test]
fn lint_seed_networks() {
    for (name, files) in NETWORKS {
        let mut args = vec!["lint"];
        args.extend(files.iter());
        let out = ferry(&args);
        assert_eq!(
            out.code, 0,
            "{name}: seeds have warnings at most\n{}",
            out.stdout
        );
        insta::assert_snapshot!(format!("lint_{name}"), filter(&out.stdout));
    }
}

#[test]
fn lint_bad_cases_human() {
    for (name, file) in [
        ("options", "bad/options.nix"),
        ("static", "bad/static.nix"),
        ("syntax", "bad/syntax.nix"),
    ] {
        let out = ferry(&["lint", file]);
        assert_eq!(out.code, 1, "{name}: errors exit 1");
        insta::assert_snapshot!(format!("lint_bad_{name}"), filter(&out.stdout));
    }
}

#[test]
fn lint_bad_cases_json() {
    let out = ferry(&[
        "lint",
        "--format",
        "json",
        "bad/options.nix",
        "bad/static.nix",
    ]);
    assert_eq!(out.code, 1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert!(v["errors"].as_u64().unwrap_or(0) > 0);
    insta::assert_snapshot!(
        "lint_bad_json",
        filter(&serde_json::to_string_pretty(&v).expect("json"))
    );
}

#[test]
fn lint_warnings_only_exit_zero_and_static_only_mode() {
    let out = ferry(&["lint", "blog/scaleway-setup.nix"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("warning[W0006]"), "{}", out.stdout);
    // --no-eval: the option rules (which need evaluation) are not run.
    let out = ferry(&["lint", "--no-eval", "bad/options.nix"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(!out.stdout.contains("E0004"));
    assert!(out.stdout.contains("W0003"));
}

#[test]
fn lint_explain() {
    for code in ["E0003", "unknown-option", "w0006"] {
        let out = ferry(&["lint", "--explain", code]);
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("What it does") && out.stdout.contains("Example"));
    }
    let out = ferry(&["lint", "--explain", "E0003"]);
    insta::assert_snapshot!("lint_explain_e0003", out.stdout);
    let out = ferry(&["lint", "--explain", "E9999"]);
    assert_eq!(out.code, 1);
}

/// Key contents never appear in eval or lint output. The control proves the marker is really there and
/// reachable by evaluation, so the absence below means something.
#[test]
fn key_contents_never_appear_in_output() {
    const MARKER: &str = "FERRY-POISON-3b8e1c";
    let file = "poison/network.nix";
    let text = std::fs::read_to_string(data().join(file)).expect("read");
    assert!(text.contains(MARKER), "control: the marker is in the file");
    let control = ferry(&[
        "nix-eval",
        "--strict",
        "-E",
        "(import ./poison/network.nix).web.deployment.keys.literal.text",
    ]);
    assert!(
        control.stdout.contains(MARKER),
        "control: evaluation reaches the marker: {}",
        control.stderr
    );

    let runs: &[&[&str]] = &[
        &["eval", file],
        &["eval", "--json", file],
        &["lint", file],
        &["lint", "--format", "json", file],
        &["lint", "--no-eval", file],
    ];
    for args in runs {
        let out = ferry(args);
        assert!(
            !out.stdout.contains(MARKER),
            "{args:?} leaked a key into stdout:\n{}",
            out.stdout
        );
        assert!(
            !out.stderr.contains(MARKER),
            "{args:?} leaked a key into stderr:\n{}",
            out.stderr
        );
    }
    // The network has an error (bad uploadAt), so also check a clean variant through eval.
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = dir.path().join("clean.nix");
    std::fs::write(&clean, text.replace("uploadAt = \"sometime\";", "")).expect("write");
    for json in [false, true] {
        let mut args = vec!["eval"];
        if json {
            args.push("--json");
        }
        let c = clean.display().to_string();
        args.push(&c);
        let out = ferry(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains("literal"),
            "the key is listed: {}",
            out.stdout
        );
        assert!(!out.stdout.contains(MARKER) && !out.stderr.contains(MARKER));
    }
}

#[test]
fn hostile_inputs_give_errors_not_crashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deep = dir.path().join("deep.nix");
    let n = 100_000;
    std::fs::write(&deep, format!("{}{}", "[".repeat(n), "]".repeat(n))).expect("write");
    let d = deep.display().to_string();
    let out = ferry(&["lint", &d]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.contains("error[E0001]"), "{}", out.stdout);

    let selfimport = dir.path().join("self.nix");
    std::fs::write(&selfimport, "import ./self.nix").expect("write");
    let s = selfimport.display().to_string();
    for cmd in ["eval", "lint"] {
        let out = ferry(&[cmd, &s]);
        assert_eq!(out.code, 1, "{cmd}: {}{}", out.stdout, out.stderr);
    }

    let huge = dir.path().join("huge.nix");
    std::fs::write(
        &huge,
        format!(
            "{{ web.deployment.targetHost = \"{}\"; }}",
            "a".repeat(5_000_000)
        ),
    )
    .expect("write");
    let h = huge.display().to_string();
    let out = ferry(&["eval", "--json", &h]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let missing = dir.path().join("nope.nix").display().to_string();
    let out = ferry(&["eval", &missing]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("nope.nix"), "{}", out.stderr);
}

#[test]
fn single_file_lint_without_evaluation() {
    // A module file alone: static rules only need the file.
    let out = ferry(&[
        "lint",
        "--no-eval",
        "five-machines/configuration/pigeon.nix",
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let p: &Path = Path::new("five-machines/configuration/pigeon.nix");
    assert!(data().join(p).exists());
}
