//! The deployment commands end to end, on temp state files, through the real `ferry` binary: the life cycle
//! (create, list, info, modify, export, import, destroy, delete) with golden output, permissions, keys that
//! real OpenSSH accepts, secrets that stay out of every listing, and clear errors for bad input.
#![allow(clippy::unwrap_used)]

mod state_support;

use ferry::state::{DeployRequest, MachineResult, OpenMode, Outcome, State};
use state_support::*;

fn deploy(env: &Env, uuid: &str, results: &[(&str, Option<&str>, Outcome)]) {
    let mut st = State::open(&env.state(), OpenMode::Existing).unwrap();
    let request = DeployRequest {
        requested_by: "tester@host".into(),
        machines: results.iter().map(|r| r.0.to_owned()).collect(),
        options: serde_json::json!({}),
    };
    let results: Vec<MachineResult> = results
        .iter()
        .map(|(m, toplevel, outcome)| MachineResult {
            machine: (*m).to_owned(),
            target_host: Some(format!("{m}.example.org")),
            toplevel: toplevel.map(str::to_owned),
            outcome: *outcome,
            message: String::new(),
        })
        .collect();
    st.record_deploy(uuid, &request, &results).unwrap();
}

const SYS1: &str = "/nix/store/9v8jqh5izq81nb60rzcindc6nr7cqwxx-nixos-system-target-20.03";
const SYS2: &str = "/nix/store/hx5bmim1n8d0whl28dpqcwh12d5cw1vb-nixos-system-db-20.03";

#[test]
fn life_cycle() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    env.write("config.nix", CONFIG_NIX);
    let mut t = String::new();

    let created = env.ferry(&["create", "./target.nix", "./config.nix", "-d", "target"]);
    created.ok();
    let uuid = created.stdout.trim().to_owned();
    assert!(uuid::Uuid::parse_str(&uuid).is_ok(), "{uuid}");
    assert_eq!(created.stderr, format!("created deployment '{uuid}'\n"));
    t += &created.transcript();

    t += &env.ferry(&["list"]).ok().transcript();
    t += &env.ferry(&["info", "-d", "target"]).ok().transcript();

    // Two deploys, as the deploy layer will record them: the first reaches both machines, the second only
    // `target` (db failed), so db is Outdated.
    deploy(
        &env,
        &uuid,
        &[
            ("db", Some(SYS2), Outcome::Success),
            ("target", Some(SYS1), Outcome::Success),
        ],
    );
    t += &env.ferry(&["info"]).ok().transcript();
    deploy(
        &env,
        &uuid,
        &[
            ("db", None, Outcome::Failed),
            ("target", Some(SYS1), Outcome::Success),
        ],
    );
    t += &env.ferry(&["info", "--plain"]).ok().transcript();
    t += &env.ferry(&["info", "--json"]).ok().transcript();
    t += &env.ferry(&["list"]).ok().transcript();

    // db leaves the network: recorded but no longer defined.
    env.write("config2.nix", CONFIG_NO_DB_NIX);
    t += &env
        .ferry(&[
            "modify",
            "./target.nix",
            "./config2.nix",
            "-d",
            "target",
            "-n",
            "prod",
        ])
        .ok()
        .transcript();
    t += &env.ferry(&["info", "-d", "prod"]).ok().transcript();
    t += &env.ferry(&["list", "--json"]).ok().transcript();

    let public = env.ferry(&["ssh-key", "-d", "prod", "--public"]);
    t += &public.ok().transcript();
    let export_keys = env.ferry(&["export", "-d", "prod", "--include-keys"]);
    export_keys.ok();
    t += &env.ferry(&["export"]).ok().transcript();

    // delete refuses while machines are recorded as deployed; destroy forgets them after a y/N.
    t += &env.ferry(&["delete", "-d", "prod"]).failed().transcript();
    t += &env
        .ferry_in(&["destroy", "-d", "prod", "--include", "db"], "n\n")
        .ok()
        .transcript();
    t += &env
        .ferry_in(&["destroy", "-d", "prod", "--include", "db"], "y\n")
        .ok()
        .transcript();
    t += &env
        .ferry(&["destroy", "-d", "prod", "--confirm"])
        .ok()
        .transcript();
    t += &env.ferry(&["delete", "-d", "prod"]).ok().transcript();
    t += &env.ferry(&["list"]).ok().transcript();

    // Import brings it back with the same keys.
    let imported = env.ferry_in(&["import", "--include-keys"], &export_keys.stdout);
    t += &imported.ok().transcript();
    let again = env.ferry(&["ssh-key", "-d", "prod", "--public"]);
    assert_eq!(
        again.ok().stdout,
        public.stdout,
        "import --include-keys keeps the SSH key"
    );
    t += &env.ferry(&["info", "-d", "prod"]).ok().transcript();
    t += &env
        .ferry_in(&["import", "--include-keys"], &export_keys.stdout)
        .failed()
        .transcript();

    insta::assert_snapshot!("life_cycle", env.redact(&t));
}

#[test]
fn export_import_round_trip() {
    let a = Env::new();
    a.write("target.nix", TARGET_NIX);
    a.write("config.nix", CONFIG_NIX);
    let uuid = a
        .ferry(&[
            "create",
            "target.nix",
            "config.nix",
            "-d",
            "web",
            "--argstr",
            "env",
            "prod",
            "--arg",
            "n",
            "3",
        ])
        .ok()
        .stdout
        .trim()
        .to_owned();
    a.ferry(&[
        "create",
        "target.nix",
        "-d",
        "other",
        "--description",
        "second",
        "-I",
        "nixpkgs=/srv/nixpkgs",
    ])
    .ok();
    deploy(
        &a,
        &uuid,
        &[
            ("db", Some(SYS2), Outcome::Success),
            ("target", Some(SYS1), Outcome::Success),
        ],
    );
    deploy(
        &a,
        &uuid,
        &[
            ("db", None, Outcome::Failed),
            ("target", Some(SYS1), Outcome::Success),
        ],
    );
    {
        let mut st = State::open(&a.state(), OpenMode::Existing).unwrap();
        st.add_known_host(
            &uuid,
            &ferry::state::KnownHost {
                host: "db.example.org".into(),
                key: "ssh-ed25519 AAAAX".into(),
            },
        )
        .unwrap();
    }
    let full = a.ferry(&["export", "--include-keys"]).ok().stdout.clone();

    let b = Env::new();
    b.ferry_in(&["import", "--include-keys"], &full).ok();
    let back = b.ferry(&["export", "--include-keys"]).ok().stdout.clone();
    let va: serde_json::Value = serde_json::from_str(&full).unwrap();
    let vb: serde_json::Value = serde_json::from_str(&back).unwrap();
    assert_eq!(va, vb, "export → import → export changes nothing");
    assert_eq!(va.as_object().unwrap().len(), 2);
    assert_eq!(va[&uuid]["deployLog"].as_array().unwrap().len(), 2);

    // Without --include-keys, the document has no private key and the importer makes fresh keys.
    let public_doc = a.ferry(&["export"]).ok().stdout.clone();
    assert!(!public_doc.contains("PRIVATE KEY"));
    let c = Env::new();
    let r = c.ferry_in(&["import"], &public_doc);
    r.ok();
    assert!(r.stderr.contains("generated new keys"), "{}", r.stderr);
    let kc = c
        .ferry(&["ssh-key", "-d", "web", "--public"])
        .ok()
        .stdout
        .clone();
    let ka = a
        .ferry(&["ssh-key", "-d", "web", "--public"])
        .ok()
        .stdout
        .clone();
    assert_ne!(kc, ka);
    // Importing a document with keys without --include-keys ignores them, and says so.
    let d = Env::new();
    let r = d.ferry_in(&["import"], &full);
    assert!(
        r.ok().stderr.contains("private keys were ignored"),
        "{}",
        r.stderr
    );
}

#[test]
fn state_file_and_locks_are_private_whatever_the_umask() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    let sh = |cmd: &str| {
        let out = env
            .command()
            .env("FERRY", ferry_bin())
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success());
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask 000; {cmd}"))
            .current_dir(env.path())
            .env("FERRY_STATE", env.state())
            .env("HOME", env.path())
            .env("NIX_PATH", "")
            .env("FERRY", ferry_bin())
            .output()
            .unwrap()
    };
    let out = sh("\"$FERRY\" create target.nix -d web");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&env.state()), 0o600, "state file");
    assert_eq!(
        mode(env.state().parent().unwrap()),
        0o700,
        "state directory"
    );

    // While a command holds the deployment (destroy waits for its y/N), look at the WAL files and the lock.
    deploy(
        &env,
        &ferry_uuid(&env, "web"),
        &[("target", Some(SYS1), Outcome::Success)],
    );
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$FERRY\" destroy -d web")
        .current_dir(env.path())
        .env("FERRY_STATE", env.state())
        .env("HOME", env.path())
        .env("FERRY", ferry_bin())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let locks = env.state().parent().unwrap().join("state.db.locks");
    let lock = locks.join(ferry_uuid(&env, "web"));
    wait_for(|| {
        std::fs::read_to_string(&lock)
            .map(|s| s.contains("ferry destroy"))
            .unwrap_or(false)
    });
    assert_eq!(mode(&locks), 0o700, "lock directory");
    assert_eq!(mode(&lock), 0o600, "lock file");
    for suffix in ["-wal", "-shm"] {
        let p = env.state().with_file_name(format!("state.db{suffix}"));
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    }
    assert!(child.wait().unwrap().success());

    // A state file someone loosened is tightened on the next open.
    std::fs::set_permissions(
        env.state(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    env.ferry(&["list"]).ok();
    assert_eq!(mode(&env.state()), 0o600);
    let _ = sh;
}

fn ferry_uuid(env: &Env, name: &str) -> String {
    let st = State::open(&env.state(), OpenMode::Existing).unwrap();
    st.resolve(Some(name)).unwrap().uuid
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "timed out"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn ssh_key_is_accepted_by_openssh() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    env.ferry(&["create", "target.nix", "-d", "web"]).ok();
    let private = env.ferry(&["ssh-key", "-d", "web"]).ok().stdout.clone();
    let public = env.ferry(&["ssh-key", "--public"]).ok().stdout.clone();
    assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    let key = env.write("id_ferry", &private);
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -y: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let derived = String::from_utf8_lossy(&out.stdout);
    // ssh-keygen prints `type base64 comment`; the key parts must match ours.
    let ours: Vec<&str> = public.split_whitespace().take(2).collect();
    let theirs: Vec<&str> = derived.split_whitespace().take(2).collect();
    assert_eq!(ours, theirs);
    assert!(public.trim_end().ends_with("ferry deployment web"));
}

#[test]
fn signing_key_signs_paths_that_real_nix_verifies() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    let uuid = env
        .ferry(&["create", "target.nix", "-d", "web"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let st = State::open(&env.state(), OpenMode::Existing).unwrap();
    let secrets = st.secrets(&uuid).unwrap();
    let d = st.deployment(&uuid).unwrap();
    assert_eq!(d.signing_public_key, secrets.signing.public);

    // Real Nix reads the key file, signs a store path with it, and verifies the signature with the public key.
    // The path is built (input-addressed): Nix trusts content-addressed paths without any signature.
    let keyfile = env.write("signing.sec", secrets.signing.secret.expose());
    let expr = format!(
        "derivation {{ name = \"ferry-sign-test\"; system = builtins.currentSystem; builder = \"/bin/sh\"; \
         args = [ \"-c\" \"echo {uuid} > $out\" ]; }}"
    );
    let build = std::process::Command::new("nix-build")
        .args(["--no-out-link", "--option", "substituters", "", "-E", &expr])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "nix-build: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let path = String::from_utf8_lossy(&build.stdout).trim().to_owned();
    let nix = |args: &[&str]| {
        std::process::Command::new("nix")
            .args([
                "--extra-experimental-features",
                "nix-command",
                "--option",
                "substituters",
                "",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    // A locally built path is "ultimately trusted" and verifies without signatures; a copy in a second store
    // is not, so that is where the signature has to do the work.
    let chroot = format!("local?root={}", env.path().join("chroot-store").display());
    let copy = nix(&["copy", "--no-check-sigs", "--to", &chroot, &path]);
    assert!(
        copy.status.success(),
        "nix copy: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let sign = nix(&[
        "store",
        "sign",
        "--store",
        &chroot,
        "--key-file",
        keyfile.to_str().unwrap(),
        &path,
    ]);
    assert!(
        sign.status.success(),
        "nix store sign: {}",
        String::from_utf8_lossy(&sign.stderr)
    );
    let verify_with = |key: &str| {
        nix(&[
            "store",
            "verify",
            "--no-contents",
            "--store",
            &chroot,
            "--trusted-public-keys",
            key,
            &path,
        ])
    };
    let verify = verify_with(&d.signing_public_key);
    assert!(
        verify.status.success(),
        "nix store verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Control: with an unrelated key trusted instead, the same check must fail.
    let other = ferry::state::keys::generate_signing_keypair("ferry-other-1").unwrap();
    let verify = verify_with(&other.public);
    assert!(
        !verify.status.success(),
        "verify with an unrelated key must fail"
    );
}

#[test]
fn secrets_stay_out_of_listings_logs_and_lock_files() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    env.write("config.nix", CONFIG_NIX);
    let uuid = env
        .ferry(&["create", "target.nix", "config.nix", "-d", "web"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let st = State::open(&env.state(), OpenMode::Existing).unwrap();
    let secrets = st.secrets(&uuid).unwrap();
    drop(st);
    // The middle of the private key and the signing secret: strings that appear nowhere else.
    let ssh_marker = secrets
        .ssh
        .private
        .expose()
        .lines()
        .nth(2)
        .unwrap()
        .to_owned();
    let sign_marker = secrets
        .signing
        .secret
        .expose()
        .split(':')
        .nth(1)
        .unwrap()
        .to_owned();

    let mut seen = String::new();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["info"],
        &["info", "--json"],
        &["info", "--plain"],
        &["export"],
        &["ssh-key", "--public"],
        &["modify", "-d", "web", "--description", "x"],
        &["destroy", "--confirm"],
    ] {
        let r = env.ferry(args);
        seen += &r.stdout;
        seen += &r.stderr;
    }
    for entry in std::fs::read_dir(env.state().parent().unwrap().join("state.db.locks")).unwrap() {
        seen += &std::fs::read_to_string(entry.unwrap().path()).unwrap();
    }
    assert!(!seen.contains(&ssh_marker), "the SSH private key leaked");
    assert!(!seen.contains(&sign_marker), "the signing secret leaked");
    // Control: the markers are found where they belong, so the checks above can fail.
    let with_keys = env.ferry(&["export", "--include-keys"]).ok().stdout.clone();
    assert!(with_keys.contains(&ssh_marker) && with_keys.contains(&sign_marker));
}

#[test]
fn bad_input_gets_clear_messages_and_loses_nothing() {
    let env = Env::new();
    let mut t = String::new();
    // No state file yet.
    t += &env.ferry(&["list"]).failed().transcript();
    assert!(
        !env.state().exists(),
        "a read command must not create the state file"
    );

    env.write("target.nix", TARGET_NIX);
    env.write("config.nix", CONFIG_NIX);
    t += &env
        .ferry(&["create", "missing.nix", "-d", "web"])
        .failed()
        .transcript();
    t += &env.ferry(&["create", "target.nix"]).failed().transcript();
    env.ferry(&["create", "target.nix", "config.nix", "-d", "web"])
        .ok();
    env.ferry(&["create", "target.nix", "-d", "staging"]).ok();
    t += &env
        .ferry(&["create", "target.nix", "-d", "web"])
        .failed()
        .transcript();
    t += &env
        .ferry(&[
            "create",
            "target.nix",
            "-d",
            "12345678-1234-1234-1234-123456789abc",
        ])
        .failed()
        .transcript();
    t += &env.ferry(&["info", "-d", "wbe"]).failed().transcript();
    t += &env.ferry(&["info"]).failed().transcript();
    t += &env
        .ferry(&["destroy", "-d", "web", "--include", "tagret"])
        .failed()
        .transcript();
    t += &env
        .ferry(&["modify", "-d", "staging", "-n", "web"])
        .failed()
        .transcript();

    // The network files move away: info says so, and the deployment is intact.
    std::fs::rename(
        env.path().join("config.nix"),
        env.path().join("config-moved.nix"),
    )
    .unwrap();
    t += &env.ferry(&["info", "-d", "web"]).failed().transcript();
    env.ferry(&["modify", "-d", "web", "target.nix", "config-moved.nix"])
        .ok();
    env.ferry(&["info", "-d", "web"]).ok();

    // A corrupt file and a file from a newer ferry are refused and left byte for byte as they were.
    let corrupt = env.write("corrupt.db", &"this is not sqlite ".repeat(300));
    let before = std::fs::read(&corrupt).unwrap();
    t += &env
        .ferry(&["list", "-s", corrupt.to_str().unwrap()])
        .failed()
        .transcript();
    assert!(
        std::fs::read(&corrupt).unwrap() == before,
        "the corrupt file was changed"
    );

    let newer = env.path().join("newer.db");
    {
        let c = rusqlite::Connection::open(&newer).unwrap();
        c.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap();
    }
    let before = std::fs::read(&newer).unwrap();
    t += &env
        .ferry(&["--state", newer.to_str().unwrap(), "list"])
        .failed()
        .transcript();
    assert!(
        std::fs::read(&newer).unwrap() == before,
        "the newer ferry's file was changed"
    );

    // A NixOps state file given as ferry's state gets a hint.
    let nixops = env.path().join("deployments.nixops");
    {
        let c = rusqlite::Connection::open(&nixops).unwrap();
        c.execute_batch("CREATE TABLE Deployments (uuid text primary key);")
            .unwrap();
    }
    t += &env
        .ferry(&["info", "--state", nixops.to_str().unwrap()])
        .failed()
        .transcript();

    t += &env.ferry(&["list"]).ok().transcript();
    insta::assert_snapshot!("bad_input", env.redact(&t));
}

#[test]
fn deployment_defaults_to_the_only_one_and_to_ferry_deployment() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    env.ferry(&["create", "target.nix", "-d", "one"]).ok();
    assert!(
        env.ferry(&["info", "--json"])
            .ok()
            .stdout
            .contains("\"name\": \"one\"")
    );
    env.ferry(&["create", "target.nix", "-d", "two"]).ok();
    env.ferry(&["info"]).failed();
    let r = env.ferry_with(&["info", "--json"], None, &[("FERRY_DEPLOYMENT", "two")]);
    assert!(r.ok().stdout.contains("\"name\": \"two\""));
    // The default state path is ~/.ferry/state.db.
    let mut c = env.command();
    c.env_remove("FERRY_STATE")
        .args(["create", "target.nix", "-d", "home"]);
    assert!(c.output().unwrap().status.success());
    assert_eq!(mode(&env.path().join(".ferry/state.db")), 0o600);
    assert_eq!(mode(&env.path().join(".ferry")), 0o700);
}

#[test]
fn info_says_where_nixpkgs_comes_from() {
    let env = Env::new();
    env.write("target.nix", TARGET_NIX);
    env.write(
        "pinned.nix",
        "{ network.nixpkgs = /srv/nixpkgs-23.11; web = { deployment.targetHost = \"10.0.0.1\"; }; }\n",
    );
    let fake = env.path().join("nixpkgs");
    env.write("nixpkgs/lib/default.nix", "{ }\n");
    env.ferry(&[
        "create",
        "target.nix",
        "-d",
        "flag",
        "-I",
        "nixpkgs=/srv/nixpkgs-24.05",
    ])
    .ok();
    env.ferry(&["create", "pinned.nix", "-d", "network"]).ok();
    env.ferry(&["create", "target.nix", "-d", "path"]).ok();
    let nixpkgs = |d: &str, nix_path: &str| {
        let r = env.ferry_with(
            &["info", "-d", d, "--json"],
            None,
            &[("NIX_PATH", nix_path)],
        );
        let v: serde_json::Value = serde_json::from_str(&r.ok().stdout).unwrap();
        v["nixpkgs"].as_str().unwrap().to_owned()
    };
    assert_eq!(nixpkgs("flag", ""), "/srv/nixpkgs-24.05 (pinned)");
    assert_eq!(
        nixpkgs("network", ""),
        "/srv/nixpkgs-23.11 (network.nixpkgs)"
    );
    assert_eq!(
        nixpkgs("path", ""),
        "not pinned, and <nixpkgs> is not on the search path"
    );
    let from_path = nixpkgs("path", &format!("nixpkgs={}", fake.display()));
    assert_eq!(
        from_path,
        format!("{} (from the search path, not pinned)", fake.display())
    );
}

#[test]
fn the_command_line_definition_is_consistent() {
    // clap checks its definition only when a command is parsed, in debug builds: a global `-s` clashed with
    // `path-info -s` (size) once, and only a run of `ferry path-info` showed it. Check every command here.
    use clap::CommandFactory as _;
    ferry::cli::Cli::command().debug_assert();
}
