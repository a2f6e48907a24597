//! `ferry ssh` and `ferry exec` as a user runs them, against real sshds.

#![allow(clippy::unwrap_used)]

#[path = "common/sshd.rs"]
mod sshd;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use sshd::Sshd;

/// `ferry <args>` with a private HOME (no ~/.ssh of the machine's user) and no agent.
fn ferry(sshd: &Sshd, args: &[String], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("HOME", sshd.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("XDG_DATA_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn conn_args(sshd: &Sshd) -> Vec<String> {
    vec![
        "-i".into(),
        sshd.client_key.display().to_string(),
        "--known-hosts".into(),
        sshd.path("ferry_known_hosts").display().to_string(),
        "-F".into(),
        "none".into(),
        "--connect-timeout".into(),
        "3".into(),
    ]
}

#[test]
fn ssh_runs_commands_and_passes_exit_codes_through() {
    let sshd = Sshd::start();
    let to = format!("root@127.0.0.1:{}", sshd.port);
    let base: Vec<String> = ["ssh", "--to", &to]
        .iter()
        .map(|s| s.to_string())
        .chain(conn_args(&sshd))
        .collect();
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };

    // Unknown host: refused with the fingerprint and the flag to use; exit 255 like ssh.
    let v = with(&["--", "true"]);
    let out = ferry(&sshd, &v, b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("SHA256:") && err.contains("--accept-new-host-keys"),
        "{err}"
    );

    let v = with(&["--accept-new-host-keys", "--", "echo", "hello", "world"]);
    let out = ferry(&sshd, &v, b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hello world\n");

    // Words are joined with spaces and run by the remote shell, like OpenSSH.
    let v = with(&["--", "echo out; echo err >&2; exit 3"]);
    let out = ferry(&sshd, &v, b"");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");

    // stdin is forwarded.
    let v = with(&["--", "tr", "a-z", "A-Z"]);
    let out = ferry(&sshd, &v, b"piped input\n");
    assert_eq!(out.stdout, b"PIPED INPUT\n");

    // No command and no terminal: a shell reading our stdin.
    let v = with(&[]);
    let out = ferry(&sshd, &v, b"echo from-shell; exit 5\n");
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(out.stdout, b"from-shell\n");

    // Killed by a signal: 128 + signal number.
    let v = with(&["--", "kill -KILL $$"]);
    assert_eq!(ferry(&sshd, &v, b"").status.code(), Some(137));
}

#[test]
fn exec_prefixes_output_and_summarises() {
    let a = Sshd::start();
    let b = Sshd::start();
    // One known_hosts for both, and the same client key authorized on both.
    std::fs::write(
        a.path("ferry_known_hosts"),
        format!("{}{}", a.known_hosts_line(), b.known_hosts_line()),
    )
    .unwrap();
    std::fs::copy(a.path("authorized_keys"), b.path("authorized_keys")).unwrap();
    let ha = format!("root@127.0.0.1:{}", a.port);
    let hb = format!("root@127.0.0.1:{}", b.port);
    let down = format!("root@127.0.0.1:{}", sshd::free_port());
    let mut args: Vec<String> = vec!["exec".into(), "--to".into(), format!("{ha},{hb}")];
    args.extend(conn_args(&a));
    args.extend([
        "--".into(),
        "echo line1; echo line2; echo oops >&2; exit 0".into(),
    ]);
    let out = ferry(&a, &args, b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for h in [&ha, &hb] {
        assert!(stdout.contains(&format!("{h}> line1\n")), "{stdout}");
        assert!(stdout.contains(&format!("{h}> line2\n")), "{stdout}");
        assert!(stderr.contains(&format!("{h}> oops\n")), "{stderr}");
    }
    assert!(stderr.contains("2 of 2 hosts succeeded"), "{stderr}");

    // One host fails its command, one is down: non-zero exit, both named in the summary.
    let mut args: Vec<String> = vec![
        "exec".into(),
        "--to".into(),
        ha.clone(),
        "--to".into(),
        hb.clone(),
        "--to".into(),
        down.clone(),
        "--parallel".into(),
        "2".into(),
    ];
    args.extend(conn_args(&a));
    args.extend([
        "--".into(),
        format!(
            "case \"$SSH_CONNECTION\" in *' {}') exit 4;; esac; true",
            b.port
        ),
    ]);
    let out = ferry(&a, &args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let summary = stderr
        .split("summary:")
        .nth(1)
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        summary.contains(&ha) && summary.contains("ok (exit 0)"),
        "{summary}"
    );
    assert!(
        summary
            .lines()
            .any(|l| l.contains(&hb) && l.contains("FAILED (exit 4)")),
        "{summary}"
    );
    assert!(
        summary
            .lines()
            .any(|l| l.contains(&down) && l.contains("connection refused")),
        "{summary}"
    );
    assert!(summary.contains("1 of 3 hosts succeeded"), "{summary}");
}
