//! `ferry import-nixops` on NixOps state files built by hand: the schema is NixOps's own (nixops/statefile.py,
//! schema 3, and schema 2 with its older `Machines`/`MachineAttrs` table names), filled the way NixOps fills it
//! (attribute names from nixops/deployment.py and backends/none.py; the machine key made by `ssh-keygen`, as
//! NixOps's `create_key_pair` does).
#![allow(clippy::unwrap_used)]

mod state_support;

use std::path::{Path, PathBuf};

use state_support::*;

const HERON_UUID: &str = "f56d276b-af54-11ea-b171-02422b1a33b6";
const UNNAMED_UUID: &str = "6883071e-df3c-11ea-bd95-0242dcf913a0";
const SPACED_UUID: &str = "0a7c1a52-af55-11ea-b171-02422b1a33b6";
const HERON_SYSTEM: &str = "/nix/store/9v8jqh5izq81nb60rzcindc6nr7cqwxx-nixos-system-heron-20.09";

/// NixOps's schema (statefile.py `_create_schema`), with the resource tables named as in `schema`.
fn nixops_schema(version: i64) -> String {
    let (res, attrs) = if version >= 3 {
        ("Resources", "ResourceAttrs")
    } else {
        ("Machines", "MachineAttrs")
    };
    format!(
        "pragma journal_mode = wal;
         pragma foreign_keys = 1;
         create table if not exists SchemaVersion(version integer not null);
         insert into SchemaVersion(version) values ({version});
         create table if not exists Deployments(uuid text primary key);
         create table if not exists DeploymentAttrs(
           deployment text not null, name text not null, value text not null,
           primary key(deployment, name),
           foreign key(deployment) references Deployments(uuid) on delete cascade);
         create table if not exists {res}(
           id integer primary key autoincrement, deployment text not null, name text not null, type text not null,
           foreign key(deployment) references Deployments(uuid) on delete cascade);
         create table if not exists {attrs}(
           machine integer not null, name text not null, value text not null,
           primary key(machine, name),
           foreign key(machine) references {res}(id) on delete cascade);"
    )
}

/// `ssh-keygen -t ed25519`, as NixOps's `create_key_pair` runs it: (private, public).
fn ssh_keygen(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            &format!("NixOps client key for {name}"),
            "-f",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let private = std::fs::read_to_string(&path).unwrap();
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (private, public.trim().to_owned())
}

struct NixopsFile {
    path: PathBuf,
    heron_key: (String, String),
}

/// A state file as NixOps leaves it after `create` + `deploy` of seed 003's network (two of its machines), an
/// EC2 machine, a key-pair resource, and a second, unnamed deployment.
fn build_nixops_file(env: &Env, version: i64) -> NixopsFile {
    let network = env.write("nixos/configuration.nix", SEED_003_NIX);
    let path = env.path().join("deployments.nixops");
    let heron_key = ssh_keygen(env.path(), "heron");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(&nixops_schema(version)).unwrap();
    let (res, attrs) = if version >= 3 {
        ("Resources", "ResourceAttrs")
    } else {
        ("Machines", "MachineAttrs")
    };

    let set = |uuid: &str, name: &str, value: &str| {
        c.execute(
            "insert or replace into DeploymentAttrs(deployment, name, value) values (?, ?, ?)",
            rusqlite::params![uuid, name, value],
        )
        .unwrap();
    };
    c.execute("insert into Deployments(uuid) values (?)", [HERON_UUID])
        .unwrap();
    set(HERON_UUID, "name", "nixos");
    set(HERON_UUID, "description", "nixos");
    set(
        HERON_UUID,
        "nixExprs",
        &serde_json::to_string(&[network.to_string_lossy()]).unwrap(),
    );
    // set_argstr stores a Nix string literal; set_arg the expression as written.
    set(
        HERON_UUID,
        "args",
        r#"{"env": "\"prod \\\"eu\\\"\"", "replicas": "3"}"#,
    );
    set(HERON_UUID, "nixPath", r#"["nixpkgs=/srv/nixpkgs"]"#);
    set(HERON_UUID, "rollbackEnabled", "1");
    set(
        HERON_UUID,
        "configsPath",
        "/nix/store/cilysf8jk7kjvasabml97l17nbic8i5s-nixops-machines",
    );

    let resource = |uuid: &str, name: &str, ty: &str, values: &[(&str, &str)]| {
        c.execute(
            &format!("insert into {res}(deployment, name, type) values (?, ?, ?)"),
            [uuid, name, ty],
        )
        .unwrap();
        let id = c.last_insert_rowid();
        for (k, v) in values {
            c.execute(
                &format!("insert or replace into {attrs}(machine, name, value) values (?, ?, ?)"),
                rusqlite::params![id, k, v],
            )
            .unwrap();
        }
    };
    let vm_id = format!("nixops-{HERON_UUID}-heron");
    resource(
        HERON_UUID,
        "heron",
        "none",
        &[
            ("targetHost", "heron.local"),
            ("vmId", &vm_id),
            ("state", "1"),
            ("index", "0"),
            ("toplevel", HERON_SYSTEM),
            ("none.sshPrivateKey", &heron_key.0),
            ("none.sshPublicKey", &heron_key.1),
            ("none.sshPublicKeyDeployed", "1"),
            (
                "publicHostKey",
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeronHostKeyHeronHostKeyHeronHostKey1 root@heron",
            ),
            ("keys", "{}"),
        ],
    );
    // Created but never deployed (no toplevel, no key yet).
    resource(
        HERON_UUID,
        "pigeon",
        "none",
        &[("targetHost", "pigeon.local"), ("state", "0")],
    );
    resource(
        HERON_UUID,
        "cloudbox",
        "ec2",
        &[
            ("publicIpv4", "203.0.113.7"),
            ("privateIpv4", "10.0.0.7"),
            ("toplevel", HERON_SYSTEM),
        ],
    );
    resource(
        HERON_UUID,
        "deploy-key",
        "ec2-keypair",
        &[("keyPairName", "charon-key"), ("region", "eu-west-1")],
    );

    c.execute("insert into Deployments(uuid) values (?)", [UNNAMED_UUID])
        .unwrap();
    set(
        UNNAMED_UUID,
        "nixExprs",
        &serde_json::to_string(&[network.to_string_lossy()]).unwrap(),
    );
    // NixOps takes any string as a name.
    c.execute("insert into Deployments(uuid) values (?)", [SPACED_UUID])
        .unwrap();
    set(SPACED_UUID, "name", "my blog (staging)");
    drop(c);
    NixopsFile { path, heron_key }
}

/// Seed 003's network, trimmed to what evaluates without nixpkgs.
const SEED_003_NIX: &str = r#"{
  network.description = "nixos";
  network.enableRollback = true;
  heron = { deployment.targetHost = "heron.local"; };
  pigeon = { deployment.targetHost = "pigeon.local"; deployment.tags = [ "mail" ]; };
  tiger = { deployment.targetHost = "tiger.local"; };
}
"#;

#[test]
fn import_nixops_schema_3() {
    let env = Env::new();
    let nixops = build_nixops_file(&env, 3);
    let before = std::fs::read(&nixops.path).unwrap();
    let mut t = String::new();

    let r = env.ferry(&[
        "import-nixops",
        "--nixops-state",
        nixops.path.to_str().unwrap(),
    ]);
    t += &r.ok().transcript();
    assert!(
        std::fs::read(&nixops.path).unwrap() == before,
        "the NixOps file must only be read"
    );
    t += &env.ferry(&["list"]).ok().transcript();
    t += &env.ferry(&["info", "-d", "nixos"]).ok().transcript();
    insta::assert_snapshot!("import_nixops", env.redact(&t));

    // The facts, field by field, through ferry's own export.
    let doc: serde_json::Value =
        serde_json::from_str(&env.ferry(&["export", "--include-keys"]).ok().stdout).unwrap();
    let d = &doc[HERON_UUID];
    assert_eq!(d["name"], "nixos");
    assert_eq!(d["description"], "nixos");
    assert_eq!(
        d["nixExprs"],
        serde_json::json!([env.path().join("nixos/configuration.nix")])
    );
    assert_eq!(d["nixPath"], serde_json::json!(["nixpkgs=/srv/nixpkgs"]));
    assert_eq!(
        d["args"],
        serde_json::json!([
            { "name": "env", "kind": "str", "value": "prod \"eu\"" },
            { "name": "replicas", "kind": "expr", "value": "3" },
        ])
    );
    let heron = &d["resources"]["heron"];
    assert_eq!(heron["targetHost"], "heron.local");
    assert_eq!(heron["toplevel"], HERON_SYSTEM);
    assert_eq!(heron["sshPrivateKey"].as_str().unwrap(), nixops.heron_key.0);
    assert_eq!(heron["sshPublicKey"].as_str().unwrap(), nixops.heron_key.1);
    assert_eq!(
        d["resources"]["pigeon"]["toplevel"],
        serde_json::Value::Null
    );
    assert_eq!(d["resources"]["cloudbox"]["type"], "ec2");
    assert_eq!(d["resources"]["cloudbox"]["targetHost"], "203.0.113.7");
    assert!(
        d["resources"].get("deploy-key").is_none(),
        "a key pair is not a machine"
    );
    assert_eq!(
        d["knownHosts"],
        serde_json::json!([{ "host": "heron.local",
                             "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeronHostKeyHeronHostKeyHeronHostKey1" }])
    );
    // The deployment got its own ferry keys as well; NixOps had none at deployment level.
    assert!(
        d["sshPrivateKey"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
    );
    // `ssh-key --machine` prints NixOps's machine key (seed 002 dug it out of SQLite by hand).
    let key = env
        .ferry(&["ssh-key", "-d", "nixos", "--machine", "heron"])
        .ok()
        .stdout
        .clone();
    assert_eq!(key, nixops.heron_key.0);
    let public = env
        .ferry(&["ssh-key", "-d", "nixos", "--machine", "heron", "--public"])
        .ok()
        .stdout
        .clone();
    assert_eq!(public.trim_end(), nixops.heron_key.1);
    let r = env.ferry(&["ssh-key", "-d", "nixos", "--machine", "pigeon"]);
    assert!(
        r.failed().stderr.contains("no key of its own"),
        "{}",
        r.stderr
    );
    let r = env.ferry(&["ssh-key", "-d", "nixos", "--machine", "heorn"]);
    assert!(
        r.failed().stderr.contains("did you mean 'heron'"),
        "{}",
        r.stderr
    );
    // The unnamed deployment got a name derived from its UUID.
    assert_eq!(doc[UNNAMED_UUID]["name"], "nixops-6883071e");
    assert_eq!(doc[SPACED_UUID]["name"], "my-blog--staging-");

    // Importing twice is refused as a whole: nothing is duplicated.
    let again = env.ferry(&[
        "import-nixops",
        "--nixops-state",
        nixops.path.to_str().unwrap(),
    ]);
    assert!(
        again.failed().stderr.contains("already exists"),
        "{}",
        again.stderr
    );
    assert_eq!(
        env.ferry(&["list", "--json"])
            .ok()
            .stdout
            .matches("\"uuid\"")
            .count(),
        3
    );
}

#[test]
fn import_nixops_schema_2_from_nixops_state_env() {
    let env = Env::new();
    let nixops = build_nixops_file(&env, 2);
    let r = env.ferry_with(
        &["import-nixops", "-d", "nixos"],
        None,
        &[("NIXOPS_STATE", nixops.path.to_str().unwrap())],
    );
    r.ok();
    let doc: serde_json::Value = serde_json::from_str(&env.ferry(&["export"]).ok().stdout).unwrap();
    assert_eq!(doc.as_object().unwrap().len(), 1, "-d picks one deployment");
    assert_eq!(
        doc[HERON_UUID]["resources"]["heron"]["toplevel"],
        HERON_SYSTEM
    );
    // Without --include-keys, export shows no private key, not even the imported machine key.
    assert!(
        doc[HERON_UUID]["resources"]["heron"]
            .get("sshPrivateKey")
            .is_none()
    );
}

#[test]
fn import_nixops_refuses_what_is_not_nixops_state() {
    let env = Env::new();
    let r = env.ferry(&[
        "import-nixops",
        "--nixops-state",
        "/nonexistent/deployments.nixops",
    ]);
    assert!(r.failed().stderr.contains("no such file"), "{}", r.stderr);
    // The default is ~/.nixops/deployments.nixops.
    let r = env.ferry(&["import-nixops"]);
    assert!(
        r.failed().stderr.contains(".nixops/deployments.nixops"),
        "{}",
        r.stderr
    );
    let other = env.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("create table t(x);")
        .unwrap();
    let r = env.ferry(&["import-nixops", "--nixops-state", other.to_str().unwrap()]);
    assert!(
        r.failed().stderr.contains("not a NixOps state file"),
        "{}",
        r.stderr
    );
    assert!(!env.state().exists(), "nothing was created");
}

/// What `nixops export` prints for a state file (Deployment.export in nixops/deployment.py): every deployment
/// attribute as its raw string, and each resource's attributes plus its `type`.
fn nixops_export(path: &Path) -> serde_json::Value {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut doc = serde_json::Map::new();
    let uuids: Vec<String> = c
        .prepare("select uuid from Deployments")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for uuid in uuids {
        let mut d = serde_json::Map::new();
        let mut stmt = c
            .prepare("select name, value from DeploymentAttrs where deployment = ?")
            .unwrap();
        for row in stmt
            .query_map([&uuid], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .unwrap()
        {
            let (k, v) = row.unwrap();
            d.insert(k, serde_json::Value::String(v));
        }
        let mut resources = serde_json::Map::new();
        let mut stmt = c
            .prepare("select id, name, type from Resources where deployment = ?")
            .unwrap();
        let rows: Vec<(i64, String, String)> = stmt
            .query_map([&uuid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (id, name, ty) in rows {
            let mut r = serde_json::Map::new();
            let mut stmt = c
                .prepare("select name, value from ResourceAttrs where machine = ?")
                .unwrap();
            for row in stmt
                .query_map([id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .unwrap()
            {
                let (k, v) = row.unwrap();
                r.insert(k, serde_json::Value::String(v));
            }
            r.insert("type".into(), serde_json::Value::String(ty));
            resources.insert(name, serde_json::Value::Object(r));
        }
        d.insert("resources".into(), serde_json::Value::Object(resources));
        doc.insert(uuid, serde_json::Value::Object(d));
    }
    serde_json::Value::Object(doc)
}

#[test]
fn ferry_import_reads_nixops_export_documents() {
    let env = Env::new();
    let nixops = build_nixops_file(&env, 3);
    let doc = nixops_export(&nixops.path).to_string();
    assert!(
        doc.contains("none.sshPrivateKey"),
        "the document is NixOps-shaped"
    );

    // `nixops export | ferry import --include-keys` gives what import-nixops gives (apart from known hosts,
    // which NixOps's export carries as a raw machine attribute ferry does not read there).
    let r = env.ferry_in(&["import", "--include-keys"], &doc);
    assert!(
        r.ok()
            .stderr
            .contains("skipped resource deploy-key (ec2-keypair): not a machine"),
        "{}",
        r.stderr
    );
    let via_export: serde_json::Value =
        serde_json::from_str(&env.ferry(&["export", "--include-keys"]).ok().stdout).unwrap();

    let other = Env::new();
    other
        .ferry(&[
            "import-nixops",
            "--nixops-state",
            nixops.path.to_str().unwrap(),
        ])
        .ok();
    let via_reader: serde_json::Value =
        serde_json::from_str(&other.ferry(&["export", "--include-keys"]).ok().stdout).unwrap();

    for uuid in [HERON_UUID, UNNAMED_UUID, SPACED_UUID] {
        let (a, b) = (&via_export[uuid], &via_reader[uuid]);
        for field in ["description", "nixExprs", "nixPath", "args", "resources"] {
            assert_eq!(a[field], b[field], "{uuid} {field}");
        }
    }
    assert_eq!(via_export[HERON_UUID]["name"], "nixos");
    assert_eq!(via_export[UNNAMED_UUID]["name"], "nixops-6883071e");
    assert_eq!(
        via_export[HERON_UUID]["resources"]["heron"]["sshPrivateKey"]
            .as_str()
            .unwrap(),
        nixops.heron_key.0
    );
}
