//! Several ferry processes on one state file: concurrent writers never lose or corrupt a change, a second
//! process on a locked deployment waits or fails clearly, and a process killed in the middle of a write
//! leaves the previous consistent state behind.
#![allow(clippy::unwrap_used)]

mod state_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::state::{OpenMode, State};
use state_support::*;

fn integrity(env: &Env) -> String {
    let c = rusqlite::Connection::open(env.state()).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn names(env: &Env) -> Vec<String> {
    let st = State::open(&env.state(), OpenMode::Existing).unwrap();
    st.list().unwrap().into_iter().map(|d| d.name).collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> Child {
    let mut c: Command = env.command();
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

#[test]
fn concurrent_writers_lose_nothing() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    env.ferry(&["create", "target.nix", "-d", "seed"]).ok();
    // Two writer processes at a time, each creating deployments as fast as it can, plus modifies of one shared
    // deployment in between.
    const PER_WRITER: usize = 15;
    std::thread::scope(|s| {
        for w in 0..2 {
            let env = &env;
            s.spawn(move || {
                for i in 0..PER_WRITER {
                    env.ferry(&["create", "target.nix", "-d", &format!("w{w}-{i}")])
                        .ok();
                    env.ferry(&[
                        "modify",
                        "-d",
                        "seed",
                        "--description",
                        &format!("w{w}-{i}"),
                    ])
                    .ok();
                }
            });
        }
    });
    let mut got = names(&env);
    got.sort();
    let mut want: Vec<String> = (0..2)
        .flat_map(|w| (0..PER_WRITER).map(move |i| format!("w{w}-{i}")))
        .chain(["seed".to_owned()])
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(integrity(&env), "ok");
}

#[test]
fn a_second_process_waits_for_the_deployment_lock_or_fails_clearly() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    let uuid = env
        .ferry(&["create", "target.nix", "-d", "web"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    // Record a machine so that destroy has something to ask about; it holds the lock while it waits for y/N.
    {
        let mut st = State::open(&env.state(), OpenMode::Existing).unwrap();
        st.record_deploy(
            &uuid,
            &ferry::state::DeployRequest {
                requested_by: "t".into(),
                machines: vec!["target".into()],
                options: serde_json::json!({}),
            },
            &[ferry::state::MachineResult {
                machine: "target".into(),
                target_host: None,
                toplevel: Some("/nix/store/9v8jqh5izq81nb60rzcindc6nr7cqwxx-x".into()),
                outcome: ferry::state::Outcome::Success,
                message: String::new(),
            }],
        )
        .unwrap();
    }
    let mut holder = spawn(&env, &["destroy", "-d", "web"], &[]);
    let lock = env.state().with_file_name("state.db.locks").join(&uuid);
    wait_for("the lock holder", || {
        std::fs::read_to_string(&lock)
            .map(|s| s.contains("destroy"))
            .unwrap_or(false)
    });

    // With a short timeout, the second process gives up and names the holder.
    let started = Instant::now();
    let r = env.ferry_with(
        &["modify", "-d", "web", "--description", "late"],
        None,
        &[("FERRY_LOCK_TIMEOUT", "1")],
    );
    r.failed();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        r.stderr.contains("is locked by another ferry process (pid")
            && r.stderr
                .contains(&format!("pid {} (ferry destroy", holder.id())),
        "{}",
        r.stderr
    );
    // Other deployments are not blocked.
    env.ferry(&["create", "target.nix", "-d", "other"]).ok();
    env.ferry(&["modify", "-d", "other", "--description", "free"])
        .ok();

    // With a long timeout it waits, and goes on once the holder is done.
    let waiter = spawn(
        &env,
        &["modify", "-d", "web", "--description", "after"],
        &[("FERRY_LOCK_TIMEOUT", "30")],
    );
    std::thread::sleep(Duration::from_millis(500));
    {
        use std::io::Write as _;
        holder.stdin.take().unwrap().write_all(b"y\n").unwrap();
    }
    assert!(holder.wait().unwrap().success());
    let out = waiter.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("waiting for the lock of deployment 'web'"),
        "{stderr}"
    );
    let st = State::open(&env.state(), OpenMode::Existing).unwrap();
    let d = st.resolve(Some("web")).unwrap();
    assert_eq!(d.description.as_deref(), Some("after"));
    assert!(
        st.machines(&uuid).unwrap().is_empty(),
        "destroy went through first"
    );
}

/// Run `args` with the test hook that pauses just before COMMIT, wait until it gets there, SIGKILL it.
fn kill_before_commit(env: &Env, args: &[&str], stdin: &str) {
    let marker = env.path().join(format!("paused-{}", args[0]));
    let _ = std::fs::remove_file(&marker);
    let mut child = spawn(
        env,
        args,
        &[("FERRY_TEST_PAUSE_BEFORE_COMMIT", marker.to_str().unwrap())],
    );
    {
        use std::io::Write as _;
        let mut sin = child.stdin.take().unwrap();
        sin.write_all(stdin.as_bytes()).unwrap();
    }
    wait_for("the write to reach its commit", || marker.exists());
    // The transaction is open with every row written: this is the worst moment to die.
    assert_eq!(
        child.try_wait().unwrap(),
        None,
        "the child must still be in its transaction"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[test]
fn a_process_killed_in_mid_transaction_leaves_the_previous_state() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    env.write("config.nix", CONFIG_NIX);
    env.ferry(&[
        "create",
        "target.nix",
        "config.nix",
        "-d",
        "web",
        "--description",
        "before",
    ])
    .ok();
    let before = env.ferry(&["export", "--include-keys"]).ok().stdout.clone();

    // A rename + new description + new files, killed before COMMIT.
    kill_before_commit(
        &env,
        &[
            "modify",
            "-d",
            "web",
            "-n",
            "renamed",
            "--description",
            "after",
            "target.nix",
        ],
        "",
    );
    assert_eq!(integrity(&env), "ok");
    assert_eq!(
        env.ferry(&["export", "--include-keys"]).ok().stdout,
        before,
        "modify left a trace"
    );

    // An import of many deployments, killed before COMMIT: none of them arrives.
    let mut doc = serde_json::Map::new();
    for i in 0..50 {
        let u = uuid::Uuid::new_v4().to_string();
        doc.insert(
            u,
            serde_json::json!({ "name": format!("imp{i}"), "nixExprs": ["/srv/net.nix"] }),
        );
    }
    let doc = serde_json::Value::Object(doc).to_string();
    kill_before_commit(&env, &["import"], &doc);
    assert_eq!(integrity(&env), "ok");
    assert_eq!(names(&env), vec!["web".to_owned()]);
    assert_eq!(env.ferry(&["export", "--include-keys"]).ok().stdout, before);

    // create and destroy too.
    kill_before_commit(&env, &["create", "target.nix", "-d", "never"], "");
    assert_eq!(names(&env), vec!["web".to_owned()]);

    // The killed processes held the deployment lock; the kernel released it, so nothing is stuck.
    let r = env.ferry_with(
        &["modify", "-d", "web", "--description", "later"],
        None,
        &[("FERRY_LOCK_TIMEOUT", "2")],
    );
    r.ok();
    env.ferry_in(&["import"], &doc).ok();
    assert_eq!(names(&env).len(), 51);
    assert_eq!(integrity(&env), "ok");
}

#[test]
fn killing_writers_at_random_moments_never_leaves_half_a_change() {
    // No hook here: a big import (one transaction) is killed after a varying delay, sometimes before it
    // started writing, sometimes during, sometimes after. Each time the state holds all of it or none of it.
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    env.ferry(&["create", "target.nix", "-d", "web"]).ok();
    let mut outcomes = (0, 0);
    for round in 0..12u64 {
        let mut doc = serde_json::Map::new();
        for i in 0..300 {
            let u = uuid::Uuid::new_v4().to_string();
            let resources: serde_json::Map<String, serde_json::Value> = (0..4)
                .map(|m| {
                    (
                        format!("m{m}"),
                        serde_json::json!({ "targetHost": format!("h{m}.example.org") }),
                    )
                })
                .collect();
            doc.insert(
                u,
                serde_json::json!({ "name": format!("r{round}-{i}"), "resources": resources }),
            );
        }
        let doc = serde_json::Value::Object(doc).to_string();
        let mut child = spawn(&env, &["import"], &[]);
        {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(doc.as_bytes())
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(20 + round * 110));
        let _ = child.kill();
        let status = child.wait().unwrap();
        assert_eq!(integrity(&env), "ok");
        let here = names(&env)
            .iter()
            .filter(|n| n.starts_with(&format!("r{round}-")))
            .count();
        assert!(
            here == 0 || here == 300,
            "round {round}: {here} of 300 deployments after the kill"
        );
        if status.success() {
            outcomes.1 += 1
        } else {
            outcomes.0 += 1
        }
    }
    eprintln!("killed {}, finished {}", outcomes.0, outcomes.1);
    // The delays must cover both cases, or the test proved nothing.
    assert!(outcomes.0 > 0, "no import was ever killed: {outcomes:?}");
}
