//! The state schema and its migrations. Part of the state layer; plain SQL over rusqlite.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Migrations only ever get appended: a released
//! migration is never edited, because state files in the wild were written by it. Opening a file whose version
//! is higher than [`CURRENT`] fails without touching it (a newer ferry wrote it).

use rusqlite::{Connection, TransactionBehavior};

/// Migration `i` brings a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: deployments, their network files and arguments, machines.
    r#"
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
    "#,
    // 2: the nixpkgs pin (NIX_PATH entries), known host keys, per-machine SSH keys (NixOps generated one per
    // machine; imported deployments keep them until ferry's own key is authorised), and the deploy log.
    r#"
    ALTER TABLE deployments ADD COLUMN nix_path TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE machines ADD COLUMN ssh_public_key TEXT;
    ALTER TABLE machines ADD COLUMN ssh_private_key TEXT;
    CREATE TABLE known_hosts (
        deployment TEXT NOT NULL REFERENCES deployments(uuid) ON DELETE CASCADE,
        host       TEXT NOT NULL,
        key        TEXT NOT NULL,
        PRIMARY KEY (deployment, host, key)
    );
    CREATE TABLE deploys (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment   TEXT NOT NULL REFERENCES deployments(uuid) ON DELETE CASCADE,
        generation   INTEGER NOT NULL,
        started_at   INTEGER NOT NULL,
        finished_at  INTEGER,
        requested_by TEXT NOT NULL,
        request      TEXT NOT NULL,
        UNIQUE (deployment, generation)
    );
    CREATE TABLE deploy_results (
        deploy   INTEGER NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
        machine  TEXT NOT NULL,
        toplevel TEXT,
        outcome  TEXT NOT NULL CHECK (outcome IN ('success', 'failed', 'skipped')),
        message  TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (deploy, machine)
    );
    "#,
];

/// The schema version this ferry writes.
pub const CURRENT: i64 = MIGRATIONS.len() as i64;

/// Outcome of [`migrate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// Already current.
    UpToDate,
    /// A new, empty database got the whole schema.
    Created,
    /// Upgraded from this version.
    From(i64),
    /// The database was written by a newer ferry.
    TooNew(i64),
    /// `user_version` is 0 but tables exist: not a ferry database.
    Foreign,
}

/// Read the schema version.
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// What [`migrate`] would do, found without writing anything: `TooNew`, `Foreign`, `UpToDate`, `Created` (an
/// empty database) or `From(version)`.
pub fn classify(conn: &Connection) -> rusqlite::Result<Migration> {
    let found = version(conn)?;
    if found > CURRENT {
        return Ok(Migration::TooNew(found));
    }
    if found == CURRENT {
        return Ok(Migration::UpToDate);
    }
    if found == 0 {
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        return Ok(if tables > 0 {
            Migration::Foreign
        } else {
            Migration::Created
        });
    }
    Ok(Migration::From(found))
}

/// Bring the database to [`CURRENT`], all migrations in one transaction: a crash leaves the old version.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Migration> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found > CURRENT {
        return Ok(Migration::TooNew(found));
    }
    if found == CURRENT {
        return Ok(Migration::UpToDate);
    }
    if found == 0 {
        let tables: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 {
            return Ok(Migration::Foreign);
        }
    }
    for sql in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.execute_batch(sql)?;
    }
    // PRAGMA takes no bound parameters; CURRENT is our own constant.
    tx.execute_batch(&format!("PRAGMA user_version = {CURRENT}"))?;
    super::test_pause_before_commit();
    tx.commit()?;
    Ok(if found == 0 {
        Migration::Created
    } else {
        Migration::From(found)
    })
}
