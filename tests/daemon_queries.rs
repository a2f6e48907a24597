//! Queries, NARs, builds and errors against a real nix-daemon (Debian's Nix 2.8 in CI).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::{Daemon, build_chain, lines_to_paths, run, store_path};
use ferry::daemon::{
    self, BuildMode, BuildStatus, ContentAddressMethod, DerivedPath, Error, Progress,
    ProtocolVersion,
};
use ferry::store::{Hash, HashAlgo, StorePath};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(60);

fn ferry(daemon: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("NIX_DAEMON_SOCKET_PATH", &daemon.socket)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_negotiates_with_the_real_daemon() {
    let d = Daemon::host();
    let c = d.client().await;
    let info = c.server_info();
    let nix = run("nix-store", &["--version"]);
    // "nix-store (Nix) 2.8.0" → "2.8.0"
    assert_eq!(
        info.nix_version.as_deref(),
        nix.split_whitespace().last(),
        "daemon reports its Nix version"
    );
    assert!(info.negotiated <= ProtocolVersion::CLIENT);
    assert!(info.negotiated >= ProtocolVersion::new(1, 34));
}

#[test]
fn path_info_recursive_lists_exactly_nix_store_q_r() {
    let d = Daemon::host();
    let top = build_chain(6, 1000);
    let top_s = top.to_absolute();

    let out = ferry(&d, &["path-info", "-r", &top_s]);
    common::check("ferry", &["path-info", "-r"], &out);
    let ours = lines_to_paths(&String::from_utf8(out.stdout).unwrap());
    let mut theirs = lines_to_paths(&run("nix-store", &["-qR", &top_s]));
    theirs.sort();
    assert_eq!(ours, theirs, "same closure, in StorePathSet order");
    assert_eq!(ours.len(), 7);

    // narHash / narSize for every path, and closureSize, from --json.
    let out = ferry(&d, &["path-info", "-rS", "--json", &top_s]);
    common::check("ferry", &["path-info", "-rS", "--json"], &out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), theirs.len());
    let mut sizes = BTreeMap::new();
    for item in list {
        let p = item["path"].as_str().unwrap();
        let hash = run("nix-store", &["-q", "--hash", p]);
        let size = run("nix-store", &["-q", "--size", p]);
        assert_eq!(item["narHash"].as_str().unwrap(), hash.trim(), "{p}");
        assert_eq!(
            item["narSize"].as_u64().unwrap().to_string(),
            size.trim(),
            "{p}"
        );
        sizes.insert(p.to_owned(), item["narSize"].as_u64().unwrap());
    }
    // The top's closure size is the sum over the whole closure.
    let top_item = list.iter().find(|i| i["path"] == top_s.as_str()).unwrap();
    assert_eq!(
        top_item["closureSize"].as_u64().unwrap(),
        sizes.values().sum::<u64>()
    );

    // Same keys, in the same order, and the same values as `nix path-info --json` (Nix 2.8),
    // except narHash, which we print as sha256:<nix32> where 2.8 prints SRI.
    let nix = run(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "-rS",
            "--json",
            "--option",
            "substituters",
            "",
            &top_s,
        ],
    );
    let nix: serde_json::Value = serde_json::from_str(&nix).unwrap();
    let ours_text = String::from_utf8(out.stdout.clone()).unwrap();
    for (a, b) in list.iter().zip(nix.as_array().unwrap()) {
        let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
        let ka: Vec<&String> = a.keys().collect();
        let kb: Vec<&String> = b.keys().collect();
        assert_eq!(ka, kb);
        for (k, v) in a {
            if k == "narHash" {
                let ours = Hash::parse_typed(v.as_str().unwrap()).unwrap();
                let theirs = Hash::parse_typed(b[k].as_str().unwrap()).unwrap();
                assert_eq!(ours, theirs);
            } else {
                assert_eq!(v, &b[k], "{k}");
            }
        }
    }
    // Key order as Nix prints it (serde_json's Value sorts keys, so check the text).
    let first = &ours_text[..ours_text.find('}').unwrap()];
    let pos = |k: &str| first.find(&format!("\"{k}\"")).unwrap();
    assert!(pos("path") < pos("narHash"));
    assert!(pos("narHash") < pos("narSize"));
    assert!(pos("narSize") < pos("references"));
    assert!(pos("references") < pos("closureSize"));
    assert!(pos("closureSize") < pos("deriver"));
    assert!(pos("deriver") < pos("registrationTime"));

    // Plain -S output: path, tab, right-aligned closure size, like nix path-info.
    let out = ferry(&d, &["path-info", "-S", &top_s]);
    let nix_plain = run(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "-S",
            "--option",
            "substituters",
            "",
            &top_s,
        ],
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), nix_plain);

    // A symlink into the store (like ./result) and a path inside a store path resolve to the
    // store path, as with nix path-info.
    let link = d.dir.path().join("result");
    std::os::unix::fs::symlink(&top_s, &link).unwrap();
    for arg in [
        link.to_string_lossy().into_owned(),
        format!("{top_s}/sub/refs"),
    ] {
        let out = ferry(&d, &["path-info", &arg]);
        common::check("ferry", &["path-info", &arg], &out);
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{top_s}\n"));
    }
}

#[test]
fn path_info_bad_input_is_one_clear_line_and_exit_1() {
    let d = Daemon::host();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["/nix/store/not-a-hash".into()],
            "is not a valid store path",
        ),
        (
            // Well-formed but not in the store.
            vec!["/nix/store/00000000000000000000000000000000-ferry-missing".into()],
            "is not valid",
        ),
        (vec!["/etc/passwd".into()], "not a valid store path"),
    ];
    for (args, want) in cases {
        let mut a = vec!["path-info".to_owned()];
        a.extend(args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = ferry(&d, &a);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{a:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{a:?}: {err}");
        assert!(err.contains(want), "{a:?}: {err}");
    }
    // Missing socket.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["path-info", "/nix/store/00000000000000000000000000000000-x"])
        .env("NIX_DAEMON_SOCKET_PATH", d.dir.path().join("nope"))
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot connect to the Nix daemon") && err.contains("nope"),
        "{err}"
    );
    // A socket we may not use: connect as nobody to a socket in a 0700 directory.
    let private = d.dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::os::unix::fs::symlink(&d.socket, private.join("socket")).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .args(["path-info", "/nix/store/00000000000000000000000000000000-x"])
        .env("NIX_DAEMON_SOCKET_PATH", private.join("socket"))
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Permission denied"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nar_from_path_is_byte_identical_to_nix_store_dump() {
    let d = Daemon::host();
    let top = build_chain(3, 200_000);
    let mut c = d.client().await;
    let closure = timeout(LIMIT, daemon::closure(&mut c, std::slice::from_ref(&top)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closure.len(), 4);
    for info in &closure {
        let dump = Command::new("nix-store")
            .args(["--dump", &info.path.to_absolute()])
            .output()
            .unwrap();
        assert!(dump.status.success());
        // Streamed into a writer.
        let mut got = Vec::new();
        let info2 = timeout(LIMIT, c.nar_from_path(&info.path, &mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&info2, info);
        assert!(got == dump.stdout, "NAR of {} differs", info.path);
        // As an AsyncRead.
        let mut r = c.nar_reader(&info.path).await.unwrap();
        let mut got2 = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut got2)
            .await
            .unwrap();
        drop(r);
        assert!(got2 == dump.stdout);
        assert!(!c.is_poisoned());
    }
    // References come first in the closure order.
    let mut seen = BTreeSet::new();
    for info in &closure {
        for r in &info.references {
            assert!(
                r == &info.path || seen.contains(r),
                "{} before {}",
                info.path,
                r
            );
        }
        seen.insert(info.path.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_small_operations() {
    let d = Daemon::host();
    let top = build_chain(2, 0);
    let mut c = d.client().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    c.set_progress(tx);
    let missing = store_path("/nix/store/00000000000000000000000000000000-ferry-missing");

    assert!(c.is_valid_path(&top).await.unwrap());
    assert!(!c.is_valid_path(&missing).await.unwrap());
    assert_eq!(c.query_path_info(&missing).await.unwrap(), None);
    let set: BTreeSet<StorePath> = [top.clone(), missing.clone()].into();
    let valid = c.query_valid_paths(&set, false).await.unwrap();
    assert_eq!(valid, [top.clone()].into());

    // Deriver and its output map.
    let info = c.query_path_info(&top).await.unwrap().unwrap();
    let drv = info.deriver.clone().unwrap();
    let outputs = c.query_derivation_output_map(&drv).await.unwrap();
    assert_eq!(outputs.get("out"), Some(&Some(top.clone())));
    assert_eq!(
        run("nix-store", &["-q", "--deriver", &top.to_absolute()]).trim(),
        drv.to_absolute()
    );

    // Nothing to do for an already-built derivation.
    let m = c
        .query_missing(&[DerivedPath::from_path(drv.clone())])
        .await
        .unwrap();
    assert!(m.will_build.is_empty() && m.unknown.is_empty(), "{m:?}");
    let results = c
        .build_paths_with_results(&[DerivedPath::from_path(drv.clone())], BuildMode::Normal)
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].result.status, BuildStatus::AlreadyValid);
    assert_eq!(results[0].result.built_outputs.get("out"), Some(&top));
    c.build_paths(&[DerivedPath::Opaque(top.clone())], BuildMode::Normal)
        .await
        .unwrap();

    c.add_temp_root(&top).await.unwrap();
    c.ensure_path(&top).await.unwrap();

    // Text and flat files, checked against the real Nix's own path computation.
    let text = format!("hello from ferry {}\n", common::nonce());
    let p = c
        .add_text_to_store("ferry-text.txt", text.as_bytes(), &BTreeSet::new())
        .await
        .unwrap();
    let file = d.dir.path().join("ferry-text.txt");
    std::fs::write(&file, &text).unwrap();
    // builtins.toFile computes the same text path.
    let expected = run(
        "nix-instantiate",
        &[
            "--eval",
            "--readonly-mode",
            "-E",
            &format!(
                "builtins.toFile \"ferry-text.txt\" (builtins.readFile {})",
                file.display()
            ),
        ],
    );
    assert_eq!(format!("\"{p}\""), expected.trim());
    let flat = c
        .add_to_store(
            "ferry-flat.txt",
            ContentAddressMethod::Flat(HashAlgo::Sha256),
            &BTreeSet::new(),
            false,
            &mut text.as_bytes(),
        )
        .await
        .unwrap();
    let sha = Hash::sha256_of(text.as_bytes()).to_base16();
    let fixed = run(
        "nix-store",
        &["--print-fixed-path", "sha256", &sha, "ferry-flat.txt"],
    );
    assert_eq!(flat.path.to_absolute(), fixed.trim());
    assert!(
        flat.ca
            .as_deref()
            .unwrap_or("")
            .starts_with("fixed:sha256:")
    );

    // AddSignatures (we are root, hence trusted): the signature is stored, and shows up in both
    // `nix path-info --json` and ours.
    let key = ferry::store::signature::SecretKey::generate("ferry-test-sig").unwrap();
    let sig = key.sign_path_info(&info).unwrap();
    c.add_signatures(&top, std::slice::from_ref(&sig))
        .await
        .unwrap();
    let info2 = c.query_path_info(&top).await.unwrap().unwrap();
    assert!(info2.sigs.contains(&sig));
    let nix_json = run(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "--json",
            "--option",
            "substituters",
            "",
            &top.to_absolute(),
        ],
    );
    let nix_json: serde_json::Value = serde_json::from_str(&nix_json).unwrap();
    assert_eq!(nix_json[0]["signatures"][0].as_str(), Some(sig.as_str()));
    let ours = ferry(&d, &["path-info", "--json", &top.to_absolute()]);
    let ours: serde_json::Value = serde_json::from_slice(&ours.stdout).unwrap();
    assert_eq!(ours[0]["signatures"], nix_json[0]["signatures"]);

    // SetOptions again, with a higher verbosity.
    let settings = daemon::ClientSettings {
        verbosity: daemon::Verbosity::Info,
        ..Default::default()
    };
    c.set_options(&settings).await.unwrap();
    assert!(!c.is_poisoned());
    drop(c);
    // Progress events are typed (the builds above produce none when already valid, so only
    // check that the channel is usable and closed once the client is gone).
    while let Some(ev) = rx.recv().await {
        assert!(matches!(
            ev,
            Progress::Start { .. } | Progress::Stop { .. } | Progress::Result { .. }
        ));
    }
}

fn failing_drv() -> StorePath {
    let expr = format!(
        r#"derivation {{
  name = "ferry-fails";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo ferry-build-log-line-{}; exit 3" ];
}}"#,
        common::nonce()
    );
    store_path(&run("nix-instantiate", &["-E", &expr]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_is_a_clear_error_and_logs_arrive_as_progress() {
    let d = Daemon::host();
    let mut c = d.client().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    c.set_progress(tx);

    let drv = failing_drv();
    let err = timeout(
        LIMIT,
        c.build_paths(&[DerivedPath::from_path(drv.clone())], BuildMode::Normal),
    )
    .await
    .expect("no hang")
    .unwrap_err();
    let Error::Daemon(e) = err else {
        panic!("expected a daemon error, got {err:?}")
    };
    assert_eq!(e.op, daemon::Op::BuildPaths);
    assert!(e.message.contains("ferry-fails"), "{}", e.message);
    assert!(!e.message.contains('\x1b'), "ANSI codes stripped");
    // The connection is still usable after an error in the work phase.
    assert!(!c.is_poisoned());

    let drv2 = failing_drv();
    let res = timeout(
        LIMIT,
        c.build_paths_with_results(&[DerivedPath::from_path(drv2)], BuildMode::Normal),
    )
    .await
    .expect("no hang");
    match res {
        Ok(r) => assert!(!r[0].result.status.is_success(), "{r:?}"),
        Err(Error::Daemon(e)) => assert!(e.message.contains("ferry-fails"), "{e}"),
        Err(e) => panic!("{e}"),
    }
    drop(c);
    let mut log_lines = Vec::new();
    while let Some(ev) = rx.recv().await {
        if let Progress::Result { fields, .. } = ev {
            for f in fields {
                if let daemon::Field::String(s) = f {
                    log_lines.push(s);
                }
            }
        }
    }
    assert!(
        log_lines.iter().any(|l| l.contains("ferry-build-log-line")),
        "build log lines arrive as progress results: {log_lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_derivation_builds_an_inline_derivation() {
    let d = Daemon::host();
    let mut c = d.client().await;
    let expr = format!(
        r#"derivation {{
  name = "ferry-inline";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo {} > $out" ];
}}"#,
        common::nonce()
    );
    let drv_path = store_path(&run("nix-instantiate", &["-E", &expr]));
    let shown = run(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "show-derivation",
            &drv_path.to_absolute(),
        ],
    );
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let j = &shown[drv_path.to_absolute()];
    let out_path = store_path(j["outputs"]["out"]["path"].as_str().unwrap());
    let drv = daemon::BasicDerivation {
        outputs: [(
            "out".to_owned(),
            daemon::DerivationOutput {
                path: Some(out_path.clone()),
                hash_algo: String::new(),
                hash: String::new(),
            },
        )]
        .into(),
        input_srcs: BTreeSet::new(),
        platform: j["system"].as_str().unwrap().to_owned(),
        builder: j["builder"].as_str().unwrap().to_owned(),
        args: j["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect(),
        env: j["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect(),
    };
    assert!(!c.is_valid_path(&out_path).await.unwrap());
    let r = timeout(
        LIMIT,
        c.build_derivation(&drv_path, &drv, BuildMode::Normal),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.status, BuildStatus::Built, "{r:?}");
    assert!(c.is_valid_path(&out_path).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_stream_is_an_error_not_a_hang() {
    let d = Daemon::host();
    // One path with a 64 MiB NAR.
    let top = build_chain(0, 64 << 20);
    let mut c = d.client().await;
    // A sink that is slow enough for the kill to land in the middle of the NAR.
    let (mut sink_w, mut sink_r) = tokio::io::duplex(64 * 1024);
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut sink_r, &mut buf)
                .await
                .unwrap_or(0);
            if n == 0 {
                return total;
            }
            total += n;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let daemon_pid = d.pid();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The per-connection worker is a child of the daemon.
        let children =
            std::fs::read_to_string(format!("/proc/{daemon_pid}/task/{daemon_pid}/children"))
                .unwrap();
        let mut killed = 0;
        for pid in children.split_whitespace() {
            Command::new("kill").args(["-9", pid]).status().unwrap();
            killed += 1;
        }
        killed
    });
    let res = timeout(Duration::from_secs(20), c.nar_from_path(&top, &mut sink_w))
        .await
        .expect("a killed daemon must not hang the client");
    assert!(killer.await.unwrap() > 0);
    drop(sink_w);
    let got = drain.await.unwrap();
    let err = res.expect_err("the NAR cannot be complete");
    assert!(
        matches!(err, Error::Disconnected { .. } | Error::Io { .. }),
        "{err:?}"
    );
    assert!(got < 64 << 20, "only part of the NAR arrived ({got} bytes)");
    assert!(c.is_poisoned());
    assert!(matches!(
        c.is_valid_path(&top).await.unwrap_err(),
        Error::Poisoned
    ));
}
