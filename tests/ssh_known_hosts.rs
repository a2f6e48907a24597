//! Host key checking against a real sshd: unknown refused (fingerprint shown), accepted and recorded with
//! `accept_new_host_keys`, a changed key always refused (both fingerprints, file:line), hashed entries
//! written by `ssh-keygen -H`.

#![allow(clippy::unwrap_used)]

#[path = "common/sshd.rs"]
mod sshd;

use std::process::Command;

use ferry::ssh::{Error, SshSession};
use sshd::Sshd;

/// `SHA256:...` of a public key line, as `ssh-keygen -l` prints it: the reference the errors must match.
fn openssh_fingerprint(dir: &std::path::Path, line: &str) -> String {
    let f = dir.join("fp.pub");
    std::fs::write(&f, format!("{line}\n")).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn unknown_host_is_refused_then_accepted_with_the_flag() {
    let sshd = Sshd::start();
    let fp = openssh_fingerprint(sshd.dir.path(), &sshd.host_key);
    let mut opts = sshd.options_untrusted();
    let err = SshSession::connect(&sshd.target(), &opts)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::UnknownHostKey { .. }), "{text}");
    assert!(text.contains(&fp), "{text} should show {fp}");
    assert!(text.contains("--accept-new-host-keys"), "{text}");
    assert!(!opts.ferry_known_hosts.exists());

    opts.accept_new_host_keys = true;
    SshSession::connect(&sshd.target(), &opts).await.unwrap();
    let recorded = std::fs::read_to_string(&opts.ferry_known_hosts).unwrap();
    assert_eq!(recorded, sshd.known_hosts_line());

    // Recorded: a later connection without the flag succeeds and does not append again.
    opts.accept_new_host_keys = false;
    SshSession::connect(&sshd.target(), &opts).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&opts.ferry_known_hosts).unwrap(),
        recorded
    );
}

#[tokio::test]
async fn strict_host_key_checking_accept_new_from_ssh_options() {
    let sshd = Sshd::start();
    let mut opts = sshd.options_untrusted();
    opts.ssh_options = vec!["-o".into(), "StrictHostKeyChecking=accept-new".into()];
    SshSession::connect(&sshd.target(), &opts).await.unwrap();
    assert!(opts.ferry_known_hosts.exists());
}

#[tokio::test]
async fn changed_key_is_refused_even_with_the_flag() {
    let sshd = Sshd::start();
    let impostor = Sshd::start();
    // The user's known_hosts records the impostor's key for the real server's address, on line 2.
    let user_kh = sshd.path("user_known_hosts");
    std::fs::write(
        &user_kh,
        format!(
            "# first line\n[127.0.0.1]:{} {}\n",
            sshd.port, impostor.host_key
        ),
    )
    .unwrap();
    let mut opts = sshd.options_untrusted();
    opts.user_known_hosts = vec![user_kh.clone()];
    opts.accept_new_host_keys = true;
    let err = SshSession::connect(&sshd.target(), &opts)
        .await
        .unwrap_err();
    let text = err.to_string();
    let Error::HostKeyChanged { file, line, .. } = &err else {
        panic!("expected HostKeyChanged, got {text}");
    };
    assert_eq!((file, *line), (&user_kh, 2));
    let presented = openssh_fingerprint(sshd.dir.path(), &sshd.host_key);
    let known = openssh_fingerprint(sshd.dir.path(), &impostor.host_key);
    assert!(text.contains(&presented) && text.contains(&known), "{text}");
    assert!(text.contains(&format!("{}:2", user_kh.display())), "{text}");
    // Nothing was recorded.
    assert!(!opts.ferry_known_hosts.exists());
}

#[tokio::test]
async fn hashed_entries_from_ssh_keygen() {
    let sshd = Sshd::start();
    let impostor = Sshd::start();
    let hashed = sshd.path("hashed_known_hosts");
    std::fs::write(&hashed, sshd.known_hosts_line()).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&hashed).unwrap();
    assert!(
        text.starts_with("|1|"),
        "ssh-keygen -H did not hash: {text}"
    );

    let mut opts = sshd.options_untrusted();
    opts.user_known_hosts = vec![hashed.clone()];
    SshSession::connect(&sshd.target(), &opts).await.unwrap();

    // A hashed entry with the wrong key for a host is a changed key, reported with its file and line.
    let wrong = impostor.path("wrong_hashed");
    std::fs::write(
        &wrong,
        format!("[127.0.0.1]:{} {}\n", impostor.port, sshd.host_key),
    )
    .unwrap();
    assert!(
        Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&wrong)
            .output()
            .unwrap()
            .status
            .success()
    );
    let mut opts = impostor.options_untrusted();
    opts.user_known_hosts = vec![wrong.clone()];
    let err = SshSession::connect(&impostor.target(), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::HostKeyChanged { file, line: 1, .. } if file == &wrong),
        "{err}"
    );
}
