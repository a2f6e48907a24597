//! Copying closures into a second, separate store (a nix-daemon in its own mount namespace) with
//! AddToStoreNar and AddMultipleToStore, as a trusted and as an untrusted user.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use common::{Daemon, build_chain, lines_to_paths, run};
use ferry::daemon::{self, ClientSettings, DaemonClient, Error};
use ferry::store::signature::SecretKey;
use ferry::store::{StorePath, ValidPathInfo};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(120);

/// `nix-store --verify --check-contents` is clean in `d`'s store and `nix-store -qR top` there
/// equals the host's.
fn assert_copied(d: &Daemon, top: &StorePath) {
    let out = d
        .nix_cmd("nix-store")
        .args(["--verify", "--check-contents"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {err}");
    assert!(
        !err.contains("error") && !err.contains("modified") && !err.contains("corrupt"),
        "verify not clean: {err}"
    );
    let mut ours = lines_to_paths(&d.nix("nix-store", &["-qR", &top.to_absolute()]));
    let mut host = lines_to_paths(&run("nix-store", &["-qR", &top.to_absolute()]));
    ours.sort();
    host.sort();
    assert_eq!(ours, host);
    for p in &host {
        let a = d.nix("nix-store", &["-q", "--hash", &p.to_absolute()]);
        let b = run("nix-store", &["-q", "--hash", &p.to_absolute()]);
        assert_eq!(a, b, "{p}");
    }
}

async fn host_closure(src: &Daemon, top: &StorePath) -> Vec<ValidPathInfo> {
    let mut c = src.client().await;
    daemon::closure(&mut c, std::slice::from_ref(top))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_with_add_to_store_nar_into_a_second_store() {
    let src = Daemon::host();
    let dst = Daemon::isolated("trusted-users = root");
    let top = build_chain(5, 50_000);
    let infos = host_closure(&src, &top).await;
    let mut s = src.client().await;
    let mut t = dst.client().await;
    assert!(
        !t.is_valid_path(&top).await.unwrap(),
        "the stores are separate"
    );
    timeout(LIMIT, async {
        for info in &infos {
            let mut nar = s.nar_reader(&info.path).await.unwrap();
            t.add_to_store_nar(info, &mut nar, false, true)
                .await
                .unwrap();
        }
    })
    .await
    .unwrap();
    assert!(t.is_valid_path(&top).await.unwrap());
    // Adding an already-valid path again is harmless with AddToStoreNar.
    let mut nar = s.nar_reader(&top).await.unwrap();
    t.add_to_store_nar(&infos[infos.len() - 1], &mut nar, false, true)
        .await
        .unwrap();
    drop(t);
    assert_copied(&dst, &top);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_with_add_multiple_to_store_into_a_second_store() {
    let src = Daemon::host();
    let dst = Daemon::isolated("trusted-users = root");
    let top = build_chain(8, 20_000);
    let infos = host_closure(&src, &top).await;
    let mut s = src.client().await;
    let mut t = dst.client().await;
    let all: BTreeSet<StorePath> = infos.iter().map(|i| i.path.clone()).collect();
    assert!(t.query_valid_paths(&all, false).await.unwrap().is_empty());
    timeout(
        LIMIT,
        t.add_multiple_to_store(&infos, false, true, async |info, sink| {
            s.nar_from_path_with_info(info, sink).await
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(t.query_valid_paths(&all, false).await.unwrap(), all);
    // The registration kept what the source said.
    for info in &infos {
        let got = t.query_path_info(&info.path).await.unwrap().unwrap();
        assert_eq!(got.nar_hash, info.nar_hash);
        assert_eq!(got.nar_size, info.nar_size);
        assert_eq!(got.references, info.references);
        assert_eq!(got.deriver, info.deriver);
    }
    drop(t);
    assert_copied(&dst, &top);
}

/// A connection to `d` as an unprivileged user (nobody): `nix-daemon --stdio` run as that user
/// splices its stdio to the daemon socket, exactly as it does at the end of an ssh connection,
/// so the daemon sees an untrusted peer.
async fn untrusted_client(d: &Daemon) -> (DaemonClient<ChildStdout, ChildStdin>, Child) {
    let home = d.dir.path().join("home-nobody");
    std::fs::create_dir_all(&home).unwrap();
    run("chown", &["65534:65534", &home.to_string_lossy()]);
    let mut child = tokio::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["nix-daemon", "--stdio"])
        .env("NIX_DAEMON_SOCKET_PATH", &d.socket)
        .env("NIX_CONF_DIR", &d.conf_dir)
        .env("HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let client = DaemonClient::handshake(stdout, stdin, &ClientSettings::default())
        .await
        .unwrap();
    (client, child)
}

fn sign_all(infos: &[ValidPathInfo], key: &SecretKey) -> Vec<ValidPathInfo> {
    infos
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i.sigs.insert(key.sign_path_info(&i).unwrap());
            i
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_paths_from_an_untrusted_user_are_accepted_only_with_a_trusted_key() {
    let key = SecretKey::generate("ferry-test-1").unwrap();
    let other = SecretKey::generate("ferry-test-other").unwrap();
    let src = Daemon::host();
    let top = build_chain(3, 1000);
    let infos = host_closure(&src, &top).await;
    let signed = sign_all(&infos, &key);
    let mut s = src.client().await;

    // Trusted key: accepted.
    let trusting = Daemon::isolated(&format!(
        "trusted-users = root\nrequire-sigs = true\ntrusted-public-keys = {}",
        key.public_key().to_nix_string()
    ));
    let (mut t, _child) = untrusted_client(&trusting).await;
    timeout(
        LIMIT,
        t.add_multiple_to_store(&signed, false, true, async |info, sink| {
            s.nar_from_path_with_info(info, sink).await
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let got = t.query_path_info(&top).await.unwrap().unwrap();
    assert!(got.sigs.iter().any(|s| s.starts_with("ferry-test-1:")));
    assert!(!got.ultimate, "an untrusted upload is never ultimate");
    drop(t);
    assert_copied(&trusting, &top);

    // The same signed upload to a store that trusts another key: refused, although the client
    // asks for dontCheckSigs (an untrusted client cannot skip the check).
    let refusing = Daemon::isolated(&format!(
        "trusted-users = root\nrequire-sigs = true\ntrusted-public-keys = {}",
        other.public_key().to_nix_string()
    ));
    let (mut t, _child2) = untrusted_client(&refusing).await;
    let mut nar = s.nar_reader(&infos[0].path).await.unwrap();
    let err = timeout(LIMIT, t.add_to_store_nar(&signed[0], &mut nar, false, true))
        .await
        .expect("no hang")
        .unwrap_err();
    drop(nar);
    let Error::Daemon(e) = &err else {
        panic!("expected a daemon error, got {err:?}")
    };
    assert!(e.message.contains("lacks a valid signature"), "{e}");
    assert!(!t.is_valid_path(&infos[0].path).await.unwrap_or(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_killed_mid_upload_is_an_error_not_a_hang() {
    let src = Daemon::host();
    let dst = Daemon::isolated("trusted-users = root");
    // Enough data that the upload is still running when the kill lands.
    let top = build_chain(4, 16 << 20);
    let infos = host_closure(&src, &top).await;
    let mut s = src.client().await;
    let mut t = dst.client().await;
    let daemon_pid = dst.pid();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let children =
            std::fs::read_to_string(format!("/proc/{daemon_pid}/task/{daemon_pid}/children"))
                .unwrap();
        for pid in children.split_whitespace() {
            run("kill", &["-9", pid]);
        }
    });
    let res = timeout(
        Duration::from_secs(30),
        t.add_multiple_to_store(&infos, false, true, async |info, sink| {
            // Slow the source down a little so the upload spans the kill.
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.nar_from_path_with_info(info, sink).await
        }),
    )
    .await
    .expect("a killed target must not hang the client");
    killer.await.unwrap();
    let err = res.expect_err("the upload cannot succeed");
    assert!(
        matches!(err, Error::Io { .. } | Error::Disconnected { .. }),
        "{err:?}"
    );
    assert!(t.is_poisoned());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_are_clear_errors() {
    let src = Daemon::host();
    let mut s = src.client().await;
    let missing = common::store_path("/nix/store/00000000000000000000000000000000-ferry-missing");
    let mut sink = Vec::new();
    let err = timeout(LIMIT, s.nar_from_path(&missing, &mut sink))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidPath { path, .. } if path == &missing),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("NarFromPath: path '{missing}' is not valid")
    );
    // The connection stays usable.
    assert!(!s.is_poisoned());
    let err = timeout(
        LIMIT,
        daemon::closure(&mut s, std::slice::from_ref(&missing)),
    )
    .await
    .expect("no hang")
    .unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err:?}");
    assert!(!s.is_poisoned());
    assert!(!s.is_valid_path(&missing).await.unwrap());
}
