//! Schema migrations: an empty file gets the whole schema, a file written by the first schema (v1) is upgraded
//! with its data intact, and every open of a current file leaves the version alone.
#![allow(clippy::unwrap_used)]

mod state_support;

use ferry::state::{OpenMode, State, schema};
use state_support::*;

/// The schema as ferry's first state version created it (migration 1), kept here verbatim: a state file in
/// the wild looks like this, whatever later code does.
const V1: &str = r#"
CREATE TABLE deployments (
    uuid               TEXT PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL UNIQUE,
    description        TEXT,
    created_at         INTEGER NOT NULL,
    ssh_public_key     TEXT NOT NULL,
    ssh_private_key    TEXT NOT NULL,
    signing_public_key TEXT NOT NULL,
    signing_secret_key TEXT NOT NULL
);
CREATE TABLE network_files (
    deployment TEXT NOT NULL REFERENCES deployments(uuid) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    path       TEXT NOT NULL,
    PRIMARY KEY (deployment, position)
);
CREATE TABLE args (
    deployment TEXT NOT NULL REFERENCES deployments(uuid) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('expr', 'str')),
    value      TEXT NOT NULL,
    PRIMARY KEY (deployment, name)
);
CREATE TABLE machines (
    deployment  TEXT NOT NULL REFERENCES deployments(uuid) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    backend     TEXT NOT NULL DEFAULT 'none',
    target_host TEXT,
    toplevel    TEXT,
    generation  INTEGER,
    deployed_at INTEGER,
    deployed_by TEXT,
    PRIMARY KEY (deployment, name)
);
PRAGMA user_version = 1;
"#;

fn user_version(env: &Env) -> i64 {
    let c = rusqlite::Connection::open(env.state()).unwrap();
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_empty_file_gets_the_current_schema() {
    let env = Env::new();
    std::fs::create_dir_all(env.state().parent().unwrap()).unwrap();
    std::fs::write(env.state(), b"").unwrap();
    env.ferry(&["list", "--json"]).ok();
    assert_eq!(user_version(&env), schema::CURRENT);
    let st = State::open(&env.state(), OpenMode::Existing).unwrap();
    assert_eq!(st.schema_version().unwrap(), schema::CURRENT);
    let c = rusqlite::Connection::open(env.state()).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// A v1 state file with one deployment (two network files, an argument, a deployed machine).
fn write_v1(env: &Env) -> (&'static str, ferry::state::SshKeyPair) {
    env.write("target.nix", TARGET_NIX);
    env.write("config.nix", CONFIG_NIX);
    let uuid = "6883071e-df3c-11ea-bd95-0242dcf913a0";
    let pair = ferry::state::keys::ssh_keypair_from_seed(
        &[3; 32],
        [1, 2, 3, 4],
        "ferry deployment target",
    );
    let signing = ferry::state::keys::signing_keypair_from_seed("ferry-target-1", &[4; 32]);
    std::fs::create_dir_all(env.state().parent().unwrap()).unwrap();
    {
        let c = rusqlite::Connection::open(env.state()).unwrap();
        c.execute_batch(V1).unwrap();
        c.execute(
            "INSERT INTO deployments VALUES (?1, 'target', 'old description', 1600000000, ?2, ?3, ?4, ?5)",
            rusqlite::params![uuid, pair.public, pair.private.expose(), signing.public, signing.secret.expose()],
        )
        .unwrap();
        for (i, f) in ["target.nix", "config.nix"].iter().enumerate() {
            c.execute(
                "INSERT INTO network_files VALUES (?1, ?2, ?3)",
                rusqlite::params![uuid, i as i64, env.path().join(f).to_string_lossy()],
            )
            .unwrap();
        }
        c.execute("INSERT INTO args VALUES (?1, 'env', 'str', 'prod')", [uuid])
            .unwrap();
        c.execute(
            "INSERT INTO machines VALUES (?1, 'target', 'none', '123.122.111.110', \
             '/nix/store/9v8jqh5izq81nb60rzcindc6nr7cqwxx-nixos-system', NULL, 1600000100, 'me@laptop')",
            [uuid],
        )
        .unwrap();
    }
    std::fs::set_permissions(
        env.state(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    assert_eq!(user_version(env), 1);
    (uuid, pair)
}

#[test]
fn a_v1_file_is_upgraded_with_its_data() {
    let env = Env::new();
    let (uuid, pair) = write_v1(&env);

    let info = env.ferry(&["info", "-d", "target", "--json"]);
    info.ok();
    assert_eq!(user_version(&env), schema::CURRENT);
    let v: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(v["uuid"], uuid);
    assert_eq!(v["description"], "old description");
    assert_eq!(v["nixPath"], serde_json::json!([]));
    assert_eq!(
        v["args"],
        serde_json::json!([{ "name": "env", "kind": "str", "value": "prod" }])
    );
    let target = v["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "target")
        .unwrap();
    assert_eq!(
        target["toplevel"],
        "/nix/store/9v8jqh5izq81nb60rzcindc6nr7cqwxx-nixos-system"
    );
    assert_eq!(target["deployedBy"], "me@laptop");
    // A v1 machine has no generation, so it cannot be the latest deploy's: Outdated until ferry deploys it.
    assert_eq!(target["status"], "Up / Outdated");
    let db = v["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "db")
        .unwrap();
    assert_eq!(db["status"], "New");

    // The keys survived, and the tables of v2 work.
    let private = env.ferry(&["ssh-key", "-d", "target"]).ok().stdout.clone();
    assert_eq!(private, pair.private.expose());
    let mut st = State::open(&env.state(), OpenMode::Existing).unwrap();
    st.add_known_host(
        uuid,
        &ferry::state::KnownHost {
            host: "target".into(),
            key: "ssh-ed25519 AAAA".into(),
        },
    )
    .unwrap();
    assert_eq!(st.known_hosts(uuid).unwrap().len(), 1);
    drop(st);

    // Opening again changes nothing.
    env.ferry(&["list"]).ok();
    assert_eq!(user_version(&env), schema::CURRENT);
}

#[test]
fn a_migration_killed_before_commit_leaves_the_v1_file() {
    let env = Env::new();
    let (uuid, _) = write_v1(&env);
    let marker = env.path().join("paused");
    let mut child = env
        .command()
        .args(["list"])
        .env("FERRY_TEST_PAUSE_BEFORE_COMMIT", &marker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the migration never reached its commit"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Still v1, still readable by v1's rules, nothing of v2 half-applied.
    assert_eq!(user_version(&env), 1);
    let c = rusqlite::Connection::open(env.state()).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let v2_tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('known_hosts', 'deploys')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v2_tables, 0);
    drop(c);
    // The next run migrates.
    let r = env.ferry(&["info", "-d", "target", "--json"]);
    assert!(r.ok().stdout.contains(uuid));
    assert_eq!(user_version(&env), schema::CURRENT);
}
