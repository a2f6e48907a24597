//! The copy engine against a real fleet (`dev/fleet`: hosts with their own nix-daemon and sshd):
//! partial targets, the cache, a host dying mid-copy, cancellation, a slow host, and signing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod copy_support;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Daemon, build_chain};
use copy_support::{Fleet, cache_dir, path_set};
use ferry::copy::{self, CopyOptions, CopyReport, Endpoint, Event, NarCache};
use ferry::daemon;
use ferry::store::{SecretKey, StorePath, ValidPathInfo};
use tokio::sync::{mpsc, watch};

const LIMIT: Duration = Duration::from_secs(300);

fn source(d: &Daemon) -> Endpoint {
    Endpoint::Local {
        socket: Some(d.socket.clone()),
    }
}

async fn closure_of(d: &Daemon, top: &StorePath) -> Vec<ValidPathInfo> {
    let mut c = d.client().await;
    daemon::closure(&mut c, std::slice::from_ref(top))
        .await
        .unwrap()
}

fn options(
    d: &Daemon,
    targets: Vec<Endpoint>,
    roots: Vec<StorePath>,
    cache: &std::path::Path,
) -> CopyOptions {
    CopyOptions::new(source(d), targets, roots, NarCache::open(cache, 3).unwrap())
}

async fn run(o: CopyOptions) -> CopyReport {
    tokio::time::timeout(LIMIT, copy::copy(o, None))
        .await
        .expect("the copy must not hang")
        .unwrap()
}

/// Every host holds exactly `closure` (nothing else), and verifies clean.
fn assert_holds_exactly(fleet: &Fleet, i: usize, closure: &BTreeSet<String>) {
    fleet.assert_verifies(i);
    assert_eq!(
        &fleet.valid_paths(i),
        closure,
        "host{i} holds exactly the closure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hosts_each_holding_different_parts_get_exactly_the_closure() {
    let src = Daemon::host();
    let top = build_chain(23, 30_000);
    let infos = closure_of(&src, &top).await;
    assert_eq!(infos.len(), 24);
    let all = path_set(infos.iter().map(|i| &i.path));
    let fleet = Fleet::up(4);
    let cache = cache_dir();
    // host0 has nothing; host1 the bottom third; host2 two thirds; host3 all but the top.
    for (host, k) in [(1usize, 7usize), (2, 15), (3, 22)] {
        let o = options(
            &src,
            vec![fleet.endpoint(host, "root")],
            vec![infos[k].path.clone()],
            cache.path(),
        );
        let r = run(o).await;
        assert!(r.ok(), "{r:?}");
    }
    let before: Vec<usize> = (0..4).map(|i| fleet.valid_paths(i).len()).collect();
    assert_eq!(before, vec![0, 8, 16, 23]);
    let targets = (0..4).map(|i| fleet.endpoint(i, "root")).collect();
    let r = run(options(&src, targets, vec![top.clone()], cache.path())).await;
    assert!(r.ok(), "{r:?}");
    for (i, t) in r.targets.iter().enumerate() {
        assert_eq!(t.present, before[i], "{t:?}");
        assert_eq!(
            t.paths_copied,
            24 - before[i],
            "only the missing paths are sent: {t:?}"
        );
        assert!(t.wire_bytes > 0 || t.paths_copied == 0);
        assert_holds_exactly(&fleet, i, &all);
    }
    // host0 needed every path; each NAR was read from the source at most once over all runs
    // (the cache served the rest).
    assert!(r.stats.nar_from_path <= 24);
    assert_eq!(r.stats.nar_from_path + r.stats.cache_hits, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_served_from_the_cache_without_nar_from_path() {
    let src = Daemon::host();
    let top = build_chain(11, 20_000);
    let infos = closure_of(&src, &top).await;
    let all = path_set(infos.iter().map(|i| &i.path));
    let fleet = Fleet::up(2);
    let cache = cache_dir();
    let r1 = run(options(
        &src,
        vec![fleet.endpoint(0, "root")],
        vec![top.clone()],
        cache.path(),
    ))
    .await;
    assert!(r1.ok(), "{r1:?}");
    assert_eq!(r1.stats.nar_from_path, 12, "each NAR read once");
    assert_eq!(r1.stats.cache_hits, 0);
    // A no-op copy reads nothing at all.
    let noop = run(options(
        &src,
        vec![fleet.endpoint(0, "root")],
        vec![top.clone()],
        cache.path(),
    ))
    .await;
    assert!(noop.ok());
    assert_eq!(noop.targets[0].paths_copied, 0);
    assert_eq!(noop.stats.nar_from_path + noop.stats.cache_hits, 0);
    // Another host: every NAR comes from the cache, the source daemon's NarFromPath is not called.
    let r2 = run(options(
        &src,
        vec![fleet.endpoint(1, "root")],
        vec![top.clone()],
        cache.path(),
    ))
    .await;
    assert!(r2.ok(), "{r2:?}");
    assert_eq!(r2.stats.nar_from_path, 0);
    assert_eq!(r2.stats.cache_hits, 12);
    assert_eq!(r2.targets[0].paths_copied, 12);
    assert_holds_exactly(&fleet, 1, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_entry_is_detected_removed_and_read_again() {
    let src = Daemon::host();
    let top = build_chain(3, 50_000);
    let infos = closure_of(&src, &top).await;
    let all = path_set(infos.iter().map(|i| &i.path));
    let fleet = Fleet::up(1);
    let cache = cache_dir();
    let nar_cache = NarCache::open(cache.path(), 3).unwrap();
    // Fill the cache by copying to the host, then wipe nothing but corrupt one entry: a valid
    // zstd frame of the wrong bytes.
    let r = run(options(
        &src,
        vec![fleet.endpoint(0, "root")],
        vec![infos[0].path.clone()],
        cache.path(),
    ))
    .await;
    assert!(r.ok());
    let entry = nar_cache.entry(&infos[0].nar_hash);
    let wrong = vec![b'x'; infos[0].nar_size as usize];
    std::fs::write(&entry, zstd::bulk::compress(&wrong, 1).unwrap()).unwrap();
    let fleet2 = Fleet::up(1);
    let r = run(options(
        &src,
        vec![fleet2.endpoint(0, "root")],
        vec![top.clone()],
        cache.path(),
    ))
    .await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        r.targets[0].retries, 1,
        "one retry after the corrupt entry: {r:?}"
    );
    assert_holds_exactly(&fleet2, 0, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_dies_mid_copy_fails_alone_and_a_rerun_completes_it() {
    let src = Daemon::host();
    let top = build_chain(39, 300_000);
    let infos = closure_of(&src, &top).await;
    let all = path_set(infos.iter().map(|i| &i.path));
    let fleet = Fleet::up(3);
    let cache = cache_dir();
    let targets: Vec<Endpoint> = (0..3).map(|i| fleet.endpoint(i, "root")).collect();
    let victim = targets[1].name();
    let mut o = options(&src, targets, vec![top.clone()], cache.path());
    o.max_retries = 2;
    o.retry_backoff = Duration::from_millis(100);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let copy = tokio::spawn(copy::copy(o, Some(tx)));
    // Kill host1 once its first batch is registered (the rest is still to come).
    let mut killed = false;
    while let Some(ev) = rx.recv().await {
        if let Event::Copied { target, .. } = &ev
            && *target == victim
            && !killed
        {
            fleet.kill_host(1);
            killed = true;
        }
    }
    assert!(killed, "host1 got a batch");
    let r = tokio::time::timeout(LIMIT, copy)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        r.targets[0].ok() && r.targets[2].ok(),
        "the others finish: {r:?}"
    );
    let t1 = &r.targets[1];
    assert!(!t1.ok(), "{t1:?}");
    assert_eq!(t1.retries, 2, "bounded retries: {t1:?}");
    assert!(t1.paths_missing > 0 && t1.paths_copied > 0, "{t1:?}");
    assert_holds_exactly(&fleet, 0, &all);
    assert_holds_exactly(&fleet, 2, &all);
    fleet.revive_host(1);
    // What was registered is complete and sound; nothing half-registered.
    fleet.assert_verifies(1);
    let partial = fleet.valid_paths(1);
    // Nix registers the paths of a batch one by one: those before the kill are valid too.
    assert!(
        partial.len() >= t1.paths_copied && partial.len() < 40,
        "{partial:?}"
    );
    assert!(partial.is_subset(&all));
    let r = run(options(
        &src,
        vec![fleet.endpoint(1, "root")],
        vec![top.clone()],
        cache.path(),
    ))
    .await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        r.targets[0].paths_copied,
        40 - partial.len(),
        "the re-run sends only what is missing"
    );
    assert_eq!(r.stats.nar_from_path, 0, "and reads it from the cache");
    assert_holds_exactly(&fleet, 1, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_copy_leaves_no_invalid_or_partial_path() {
    let src = Daemon::host();
    let top = build_chain(29, 400_000);
    let infos = closure_of(&src, &top).await;
    let all = path_set(infos.iter().map(|i| &i.path));
    let fleet = Fleet::up(2);
    let cache = cache_dir();
    let targets: Vec<Endpoint> = (0..2).map(|i| fleet.endpoint(i, "root")).collect();
    let mut o = options(&src, targets, vec![top.clone()], cache.path());
    o.sessions_per_target = 1;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    o.cancel = cancel_rx;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let copy = tokio::spawn(copy::copy(o, Some(tx)));
    // Cancel in the middle of the stream: after some NARs were made ready, before all were.
    let mut ready = 0;
    while let Some(ev) = rx.recv().await {
        if let Event::Ready { .. } = ev {
            ready += 1;
            if ready == 10 {
                cancel_tx.send(true).unwrap();
            }
        }
    }
    let r = tokio::time::timeout(LIMIT, copy)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    for (i, t) in r.targets.iter().enumerate() {
        assert!(
            t.error.as_deref().unwrap_or("").contains("cancelled"),
            "{t:?}"
        );
        fleet.assert_verifies(i);
        let valid = fleet.valid_paths(i);
        assert!(valid.len() < all.len(), "host{i} was interrupted");
        assert!(valid.is_subset(&all));
        // Every registered path is complete: its contents hash to its narHash (checked above by
        // --check-contents). Nix 2.8 unpacks an upload in place, so an interrupted one may leave
        // an unregistered directory behind; it is garbage to Nix and replaced on the next add.
    }
    // And a re-run completes both.
    let targets: Vec<Endpoint> = (0..2).map(|i| fleet.endpoint(i, "root")).collect();
    let r = run(options(&src, targets, vec![top.clone()], cache.path())).await;
    assert!(r.ok(), "{r:?}");
    for i in 0..2 {
        assert_holds_exactly(&fleet, i, &all);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_copy_as_an_untrusted_user() {
    let src = Daemon::host();
    let top = build_chain(5, 10_000);
    let infos = closure_of(&src, &top).await;
    let all = path_set(infos.iter().map(|i| &i.path));
    let fleet = Fleet::up(2);
    let key = SecretKey::generate("ferry-copy-test-1").unwrap();
    fleet.trust_key(0, &key.public_key().to_nix_string());
    fleet.trust_key(1, &key.public_key().to_nix_string());
    let cache = cache_dir();
    // Unsigned, the untrusted user is refused (not retried: the daemon said no).
    let r = run(options(
        &src,
        vec![fleet.endpoint(0, "ferry-untrusted")],
        vec![top.clone()],
        cache.path(),
    ))
    .await;
    assert!(!r.ok());
    assert_eq!(r.targets[0].retries, 0, "{r:?}");
    assert!(
        r.targets[0].error.as_deref().unwrap().contains("signature"),
        "{r:?}"
    );
    assert!(fleet.valid_paths(0).is_empty());
    // Signed, both hosts accept it.
    let targets = (0..2)
        .map(|i| fleet.endpoint(i, "ferry-untrusted"))
        .collect();
    let mut o = options(&src, targets, vec![top.clone()], cache.path());
    o.sign_key = Some(key);
    let r = run(o).await;
    assert!(r.ok(), "{r:?}");
    for i in 0..2 {
        assert_holds_exactly(&fleet, i, &all);
        let info = fleet.exec_ok(i, &["nix", "path-info", "--sigs", &top.to_absolute()]);
        assert!(info.contains("ferry-copy-test-1:"), "{info}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_host_does_not_slow_the_others() {
    let src = Daemon::host();
    // About 3 MiB of incompressible NARs.
    let top = build_chain(11, 250_000);
    let infos = closure_of(&src, &top).await;
    let all = path_set(infos.iter().map(|i| &i.path));
    let fleet = Fleet::up(3);
    // host2 behind the shaping proxy at 2 Mbit/s: at least 12 s for its copy.
    let port = copy_support::free_port();
    let shaper = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-shaper"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--upstream")
        .arg(format!("127.0.0.1:{}", fleet.sshd_port(2)))
        .args(["--rtt-ms", "10", "--mbit", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _shaper = copy_support::KillOnDrop(shaper);
    copy_support::wait_listening(port);
    let cache = cache_dir();
    let targets = vec![
        fleet.endpoint(0, "root"),
        fleet.endpoint(1, "root"),
        fleet.endpoint_on_port(port, "root"),
    ];
    let r = run(options(&src, targets, vec![top.clone()], cache.path())).await;
    assert!(r.ok(), "{r:?}");
    let slow = r.targets[2].seconds;
    assert!(slow >= 10.0, "the shaped host is slow: {r:?}");
    for t in &r.targets[..2] {
        assert!(
            t.seconds < slow / 2.0,
            "fast hosts finish long before the slow one: {r:?}"
        );
    }
    for i in 0..3 {
        assert_holds_exactly(&fleet, i, &all);
    }
}
