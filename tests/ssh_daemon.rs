//! The daemon client over ssh byte streams: `nix-daemon --stdio` on a real sshd, queried and written to.
//! Several daemon sessions run at once on one connection.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use std::collections::BTreeSet;
use std::sync::Arc;

use ferry::daemon::{ClientSettings, DaemonClient};
use ferry::ssh::{SshSession, quote_command};
use ferry::store::StorePath;
use sshd::Sshd;

/// A fresh, reference-free path in the host store.
fn add_text_path(dir: &std::path::Path, content: &str) -> StorePath {
    let f = dir.join(format!("ferry-ssh-{}", common::nonce()));
    std::fs::write(&f, content).unwrap();
    common::store_path(&common::run("nix-store", &["--add", f.to_str().unwrap()]))
}

#[tokio::test]
async fn queries_over_ssh_with_concurrent_sessions() {
    let sshd = Sshd::start();
    let valid = add_text_path(sshd.dir.path(), &common::nonce());
    let bogus = common::store_path("/nix/store/00000000000000000000000000000000-ferry-not-there");
    let session = Arc::new(
        SshSession::connect(&sshd.target(), &sshd.options())
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (session, valid, bogus) = (session.clone(), valid.clone(), bogus.clone());
        tasks.push(tokio::spawn(async move {
            // The store as root, directly: no dependence on a daemon running on the host.
            let stream = session
                .open_stream("NIX_REMOTE=local nix-daemon --stdio")
                .await
                .unwrap();
            let mut client = DaemonClient::from_stream(stream, &ClientSettings::default())
                .await
                .unwrap();
            for _ in 0..20 {
                assert!(client.is_valid_path(&valid).await.unwrap());
                assert!(!client.is_valid_path(&bogus).await.unwrap());
                let asked: BTreeSet<StorePath> = [valid.clone(), bogus.clone()].into();
                let got = client.query_valid_paths(&asked, false).await.unwrap();
                assert_eq!(got, [valid.clone()].into());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn add_to_store_nar_into_a_private_store_over_ssh() {
    let sshd = Sshd::start();
    let path = add_text_path(sshd.dir.path(), &format!("payload {}", common::nonce()));
    // Read the NAR from the host store through a local daemon.
    let local = common::Daemon::host();
    let mut nar = Vec::new();
    let info = local
        .client()
        .await
        .nar_from_path(&path, &mut nar)
        .await
        .unwrap();

    // The target: an empty store (a temp dir bind-mounted over /nix in a private mount namespace), served
    // by `nix-daemon --stdio`: the per-machine command the ssh layer runs.
    let root = sshd.path("target-nix");
    std::fs::create_dir_all(root.join("var/nix")).unwrap();
    std::fs::create_dir_all(root.join("store")).unwrap();
    let in_target = |cmd: &str| {
        quote_command(&[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!("mount --bind \"$1\" /nix && {cmd}"),
            "sh",
            root.to_str().unwrap(),
        ])
    };
    let session = SshSession::connect(&sshd.target(), &sshd.options())
        .await
        .unwrap();
    let stream = session
        .open_stream(&in_target("NIX_REMOTE=local exec nix-daemon --stdio"))
        .await
        .unwrap();
    let mut remote = DaemonClient::from_stream(stream, &ClientSettings::default())
        .await
        .unwrap();
    let asked: BTreeSet<StorePath> = [path.clone()].into();
    assert!(
        remote
            .query_valid_paths(&asked, false)
            .await
            .unwrap()
            .is_empty()
    );
    remote
        .add_to_store_nar(&info, &mut &nar[..], false, true)
        .await
        .unwrap();
    assert_eq!(
        remote.query_valid_paths(&asked, false).await.unwrap(),
        asked
    );

    // The target's own nix-store agrees, and its store verifies clean.
    let out = session
        .exec(&in_target(&format!(
            "NIX_REMOTE=local nix-store --verify --check-contents && NIX_REMOTE=local nix-store --check-validity {path}"
        )))
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("error"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        root.join("store")
            .join(path.to_string().rsplit('/').next().unwrap())
            .exists()
    );
}
