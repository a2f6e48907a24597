//! Deployment state: an SQLite database of deployments, their machines, keys and deploy log (NixOps's model,
//! kept in a real database). The state layer; sync (rusqlite), no tokio. It may use the store and network
//! layers' data types, never ssh, copy, deploy or cli.
//!
//! Guarantees:
//! - the file is created 0600 before SQLite writes a byte (it holds private keys), its directory 0700 when ferry
//!   creates it; SQLite gives its `-wal`/`-shm` files the database file's mode;
//! - WAL journal, `synchronous = FULL`, and every change is one `BEGIN IMMEDIATE` transaction: a crash at any
//!   point leaves the previous committed state;
//! - the schema is versioned with `PRAGMA user_version` ([`schema`]); a file from a newer ferry is refused
//!   untouched;
//! - commands that change a deployment take its lock ([`lock`]) first, so two processes never interleave;
//! - secrets only leave through [`State::secrets`] and [`State::machine_key`]; nothing here logs.

pub mod error;
pub mod export;
pub mod keys;
pub mod lock;
pub mod model;
pub mod nixops;
pub mod schema;

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

pub use error::{Error, Result};
pub use keys::{Secret, SigningKeyPair, SshKeyPair};
pub use lock::DeploymentLock;
pub use model::*;

/// How [`State::open`] treats a missing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist (every command but `create` and the imports).
    Existing,
    /// Create the file (0600) and its directory (0700) if missing.
    Create,
}

/// An open state file.
#[derive(Debug)]
pub struct State {
    conn: Connection,
    path: PathBuf,
}

/// The default state file: `~/.ferry/state.db`.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".ferry").join("state.db"))
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

impl State {
    /// Open (or, with [`OpenMode::Create`], create) the state file at `path`, migrating it to the current schema.
    pub fn open(path: &Path, mode: OpenMode) -> Result<State> {
        let path = path.to_path_buf();
        let mut loose = false;
        match fs::metadata(&path) {
            Ok(meta) => loose = meta.permissions().mode() & 0o077 != 0,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if mode == OpenMode::Existing {
                    return Err(Error::Missing { path });
                }
                create_file(&path)?;
            }
            Err(source) => {
                return Err(Error::Io {
                    op: "stat",
                    path,
                    source,
                });
            }
        }

        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let sql = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source: rusqlite::Error| {
                if is_corrupt(&source) {
                    Error::Corrupt { path, source }
                } else {
                    Error::Sqlite { op, path, source }
                }
            }
        };
        let mut conn = Connection::open_with_flags(&path, flags).map_err(sql("open", &path))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(sql("set busy timeout", &path))?;
        // Classify the file before changing anything in it (even the journal mode rewrites the header): a
        // non-database, a newer ferry's file or someone else's database is refused byte for byte untouched.
        let found = schema::classify(&conn).map_err(sql("read schema version", &path))?;
        match found {
            schema::Migration::TooNew(found) => {
                return Err(Error::TooNew {
                    path,
                    found,
                    supported: schema::CURRENT,
                });
            }
            schema::Migration::Foreign => return Err(not_ferry(&conn, path)),
            _ => {}
        }
        // Tighten a file someone made readable to others; it holds private keys.
        if loose {
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        }
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(sql("enable WAL", &path))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
            .map_err(sql("set pragmas", &path))?;

        // Readers of an up-to-date file skip the migration's write transaction.
        let migrated = if found == schema::Migration::UpToDate {
            found
        } else {
            schema::migrate(&mut conn).map_err(sql("migrate schema", &path))?
        };
        match migrated {
            schema::Migration::UpToDate
            | schema::Migration::Created
            | schema::Migration::From(_) => {}
            schema::Migration::TooNew(found) => {
                return Err(Error::TooNew {
                    path,
                    found,
                    supported: schema::CURRENT,
                });
            }
            schema::Migration::Foreign => return Err(not_ferry(&conn, path)),
        }
        Ok(State { conn, path })
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file (always [`schema::CURRENT`] after [`State::open`]).
    pub fn schema_version(&self) -> Result<i64> {
        schema::version(&self.conn).map_err(|e| self.sql("read schema version", e))
    }

    fn sql(&self, op: &'static str, source: rusqlite::Error) -> Error {
        if is_corrupt(&source) {
            Error::Corrupt {
                path: self.path.clone(),
                source,
            }
        } else {
            Error::Sqlite {
                op,
                path: self.path.clone(),
                source,
            }
        }
    }

    fn write_tx(&mut self) -> Result<Transaction<'_>> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| Error::Sqlite {
                op: "begin transaction",
                path,
                source,
            })
    }

    /// Take the lock of a deployment (see [`lock`]), waiting up to `timeout`.
    pub fn lock(
        &self,
        deployment: &Deployment,
        holder: &str,
        timeout: Duration,
    ) -> Result<DeploymentLock> {
        lock::acquire(
            &self.path,
            &deployment.uuid,
            &deployment.name,
            holder,
            timeout,
        )
    }

    /// All deployments, sorted by name (as `nixops list`).
    pub fn list(&self) -> Result<Vec<DeploymentSummary>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.uuid, d.name, d.description, \
                        (SELECT count(*) FROM machines m WHERE m.deployment = d.uuid), \
                        (SELECT group_concat(b, ',') FROM \
                            (SELECT DISTINCT backend AS b FROM machines m WHERE m.deployment = d.uuid ORDER BY b)) \
                 FROM deployments d ORDER BY d.name, d.uuid",
            )
            .map_err(|e| self.sql("list deployments", e))?;
        let rows = stmt
            .query_map([], |r| {
                let types: Option<String> = r.get(4)?;
                Ok(DeploymentSummary {
                    uuid: r.get(0)?,
                    name: r.get(1)?,
                    description: r.get(2)?,
                    machines: usize::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    types: types
                        .map(|t| t.split(',').map(str::to_owned).collect())
                        .unwrap_or_default(),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql("list deployments", e))?;
        Ok(rows)
    }

    /// Find the deployment `selector` names (a name or a UUID). Without a selector, the only deployment.
    pub fn resolve(&self, selector: Option<&str>) -> Result<Deployment> {
        // One indexed lookup in the common case; the names of all deployments only for an error message.
        let (query, key) = match selector {
            Some(sel) => (
                "SELECT uuid FROM deployments WHERE uuid = ?1 OR name = ?1 LIMIT 2",
                sel,
            ),
            None => ("SELECT uuid FROM deployments WHERE ?1 = ?1 LIMIT 2", ""),
        };
        let mut stmt = self
            .conn
            .prepare(query)
            .map_err(|e| self.sql("find deployment", e))?;
        let found = stmt
            .query_map([key], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql("find deployment", e))?;
        if let [uuid] = found.as_slice() {
            return self.deployment(uuid);
        }
        let names: Vec<String> = self.list()?.into_iter().map(|d| d.name).collect();
        Err(match (selector, found.is_empty()) {
            (None, true) => Error::NoDeployments {
                path: self.path.clone(),
            },
            (None, false) => Error::Ambiguous {
                path: self.path.clone(),
                names,
            },
            (Some(sel), _) => {
                // Names never look like UUIDs (validate_deployment_name), so a selector matches at most one.
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                Error::UnknownDeployment {
                    name: sel.to_owned(),
                    path: self.path.clone(),
                    suggestions: closest(sel, &refs),
                }
            }
        })
    }

    /// The deployment with this UUID.
    pub fn deployment(&self, uuid: &str) -> Result<Deployment> {
        let row = self
            .conn
            .query_row(
                "SELECT uuid, name, description, created_at, ssh_public_key, signing_public_key, nix_path \
                 FROM deployments WHERE uuid = ?1",
                [uuid],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.sql("read deployment", e))?;
        let Some((
            uuid,
            name,
            description,
            created_at,
            ssh_public_key,
            signing_public_key,
            nix_path,
        )) = row
        else {
            return Err(Error::UnknownDeployment {
                name: uuid.to_owned(),
                path: self.path.clone(),
                suggestions: Vec::new(),
            });
        };
        let nix_path: Vec<String> =
            serde_json::from_str(&nix_path).map_err(|e| Error::Malformed {
                path: self.path.clone(),
                uuid: uuid.clone(),
                what: "nix_path",
                reason: e.to_string(),
            })?;

        let mut stmt = self
            .conn
            .prepare("SELECT path FROM network_files WHERE deployment = ?1 ORDER BY position")
            .map_err(|e| self.sql("read network files", e))?;
        let network_files = stmt
            .query_map([&uuid], |r| r.get::<_, String>(0).map(PathBuf::from))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql("read network files", e))?;

        let mut stmt = self
            .conn
            .prepare("SELECT name, kind, value FROM args WHERE deployment = ?1 ORDER BY name")
            .map_err(|e| self.sql("read arguments", e))?;
        let raw = stmt
            .query_map([&uuid], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql("read arguments", e))?;
        let mut args = Vec::with_capacity(raw.len());
        for (name, kind, value) in raw {
            let kind = ArgKind::from_sql(&kind).ok_or_else(|| Error::Malformed {
                path: self.path.clone(),
                uuid: uuid.clone(),
                what: "argument kind",
                reason: kind.clone(),
            })?;
            args.push(Arg { name, kind, value });
        }

        Ok(Deployment {
            uuid,
            name,
            description,
            created_at,
            network_files,
            args,
            nix_path,
            ssh_public_key,
            signing_public_key,
        })
    }

    /// Create a deployment with fresh SSH and signing keys.
    pub fn create(&mut self, new: NewDeployment) -> Result<Deployment> {
        validate_deployment_name(&new.name)?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let secrets = DeploymentSecrets {
            ssh: keys::generate_ssh_keypair(&format!("ferry deployment {}", new.name))?,
            signing: keys::generate_signing_keypair(&format!("ferry-{}-1", new.name))?,
        };
        let full = export::FullDeployment {
            deployment: Deployment {
                uuid: uuid.clone(),
                name: new.name,
                description: new.description,
                created_at: now(),
                network_files: new.network_files,
                args: new.args,
                nix_path: new.nix_path,
                ssh_public_key: secrets.ssh.public.clone(),
                signing_public_key: secrets.signing.public.clone(),
            },
            secrets,
            machines: Vec::new(),
            known_hosts: Vec::new(),
            deploys: Vec::new(),
        };
        self.insert_all(std::slice::from_ref(&full))?;
        self.deployment(&uuid)
    }

    /// Insert whole deployments (import, import-nixops), all in one transaction: all or nothing.
    pub fn insert_all(&mut self, deployments: &[export::FullDeployment]) -> Result<()> {
        for full in deployments {
            validate_deployment_name(&full.deployment.name)?;
            for (m, _) in &full.machines {
                validate_machine_name(&m.name)?;
            }
        }
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let sql = |op| sql_error(&path, op);
        for full in deployments {
            let d = &full.deployment;
            let clash = tx
                .query_row(
                    "SELECT uuid, name FROM deployments WHERE uuid = ?1 OR name = ?2",
                    params![d.uuid, d.name],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()
                .map_err(sql("check for duplicates"))?;
            if let Some((uuid, name)) = clash {
                return Err(if uuid == d.uuid {
                    Error::DuplicateUuid { uuid, name }
                } else {
                    Error::DuplicateName { name, uuid }
                });
            }
            let nix_path = serde_json::to_string(&d.nix_path).unwrap_or_else(|_| "[]".to_owned());
            tx.execute(
                "INSERT INTO deployments (uuid, name, description, created_at, ssh_public_key, ssh_private_key, \
                 signing_public_key, signing_secret_key, nix_path) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    d.uuid,
                    d.name,
                    d.description,
                    d.created_at,
                    full.secrets.ssh.public,
                    full.secrets.ssh.private.expose(),
                    full.secrets.signing.public,
                    full.secrets.signing.secret.expose(),
                    nix_path
                ],
            )
            .map_err(sql("insert deployment"))?;
            write_files_and_args(&tx, &d.uuid, Some(&d.network_files), Some(&d.args))
                .map_err(sql("insert files"))?;
            for (m, key) in &full.machines {
                tx.execute(
                    "INSERT INTO machines (deployment, name, backend, target_host, toplevel, generation, deployed_at, \
                     deployed_by, ssh_public_key, ssh_private_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        d.uuid,
                        m.name,
                        m.backend,
                        m.target_host,
                        m.toplevel,
                        m.generation,
                        m.deployed_at,
                        m.deployed_by,
                        key.as_ref().map(|k| k.public.as_str()).or(m.ssh_public_key.as_deref()),
                        key.as_ref().map(|k| k.private.expose())
                    ],
                )
                .map_err(sql("insert machine"))?;
            }
            for h in &full.known_hosts {
                tx.execute(
                    "INSERT OR IGNORE INTO known_hosts (deployment, host, key) VALUES (?1, ?2, ?3)",
                    params![d.uuid, h.host, h.key],
                )
                .map_err(sql("insert known host"))?;
            }
            for rec in &full.deploys {
                insert_deploy(&tx, &d.uuid, rec).map_err(sql("insert deploy log"))?;
            }
        }
        commit(tx, &path)
    }

    /// Change a deployment (`ferry modify`).
    pub fn modify(&mut self, uuid: &str, changes: &Changes) -> Result<Deployment> {
        if let Some(name) = &changes.name {
            validate_deployment_name(name)?;
        }
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let sql = |op| sql_error(&path, op);
        if let Some(name) = &changes.name {
            let clash: Option<String> = tx
                .query_row(
                    "SELECT uuid FROM deployments WHERE name = ?1 AND uuid <> ?2",
                    params![name, uuid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql("check for duplicates"))?;
            if let Some(other) = clash {
                return Err(Error::DuplicateName {
                    name: name.clone(),
                    uuid: other,
                });
            }
            tx.execute(
                "UPDATE deployments SET name = ?1 WHERE uuid = ?2",
                params![name, uuid],
            )
            .map_err(sql("rename deployment"))?;
        }
        if let Some(description) = &changes.description {
            tx.execute(
                "UPDATE deployments SET description = ?1 WHERE uuid = ?2",
                params![description, uuid],
            )
            .map_err(sql("update description"))?;
        }
        if let Some(nix_path) = &changes.nix_path {
            let json = serde_json::to_string(nix_path).unwrap_or_else(|_| "[]".to_owned());
            tx.execute(
                "UPDATE deployments SET nix_path = ?1 WHERE uuid = ?2",
                params![json, uuid],
            )
            .map_err(sql("update nix path"))?;
        }
        write_files_and_args(
            &tx,
            uuid,
            changes.network_files.as_deref(),
            changes.args.as_deref(),
        )
        .map_err(sql("update network files"))?;
        commit(tx, &path)?;
        self.deployment(uuid)
    }

    /// The machines recorded for a deployment, sorted by name.
    pub fn machines(&self, uuid: &str) -> Result<Vec<Machine>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, backend, target_host, toplevel, generation, deployed_at, deployed_by, ssh_public_key \
                 FROM machines WHERE deployment = ?1 ORDER BY name",
            )
            .map_err(|e| self.sql("read machines", e))?;
        stmt.query_map([uuid], |r| {
            Ok(Machine {
                name: r.get(0)?,
                backend: r.get(1)?,
                target_host: r.get(2)?,
                toplevel: r.get(3)?,
                generation: r.get(4)?,
                deployed_at: r.get(5)?,
                deployed_by: r.get(6)?,
                ssh_public_key: r.get(7)?,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| self.sql("read machines", e))
    }

    /// The latest deploy generation of a deployment (`None` before the first deploy).
    pub fn current_generation(&self, uuid: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT max(generation) FROM deploys WHERE deployment = ?1",
                [uuid],
                |r| r.get(0),
            )
            .map_err(|e| self.sql("read generation", e))
    }

    /// The deployment's private keys.
    pub fn secrets(&self, uuid: &str) -> Result<DeploymentSecrets> {
        self.conn
            .query_row(
                "SELECT ssh_public_key, ssh_private_key, signing_public_key, signing_secret_key \
                 FROM deployments WHERE uuid = ?1",
                [uuid],
                |r| {
                    Ok(DeploymentSecrets {
                        ssh: SshKeyPair {
                            public: r.get(0)?,
                            private: Secret::new(r.get::<_, String>(1)?),
                        },
                        signing: SigningKeyPair {
                            public: r.get(2)?,
                            secret: Secret::new(r.get::<_, String>(3)?),
                        },
                    })
                },
            )
            .map_err(|e| self.sql("read keys", e))
    }

    /// A machine's own SSH keypair, if it has one (imported from NixOps).
    pub fn machine_key(&self, uuid: &str, machine: &str) -> Result<Option<MachineKey>> {
        let row: Option<(Option<String>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT ssh_public_key, ssh_private_key FROM machines WHERE deployment = ?1 AND name = ?2",
                params![uuid, machine],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql("read machine key", e))?;
        Ok(match row {
            Some((Some(public), Some(private))) => Some(MachineKey {
                public,
                private: Secret::new(private),
            }),
            _ => None,
        })
    }

    /// The known host keys of a deployment.
    pub fn known_hosts(&self, uuid: &str) -> Result<Vec<KnownHost>> {
        let mut stmt = self
            .conn
            .prepare("SELECT host, key FROM known_hosts WHERE deployment = ?1 ORDER BY host, key")
            .map_err(|e| self.sql("read known hosts", e))?;
        stmt.query_map([uuid], |r| {
            Ok(KnownHost {
                host: r.get(0)?,
                key: r.get(1)?,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| self.sql("read known hosts", e))
    }

    /// Remember a host key (trust on first use happens in the ssh layer; this only stores the answer).
    pub fn add_known_host(&mut self, uuid: &str, host: &KnownHost) -> Result<()> {
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let sql = |op| sql_error(&path, op);
        tx.execute(
            "INSERT OR IGNORE INTO known_hosts (deployment, host, key) VALUES (?1, ?2, ?3)",
            params![uuid, host.host, host.key],
        )
        .map_err(sql("add known host"))?;
        commit(tx, &path)
    }

    /// Forget machines (`destroy` with the "none" backend): `None` forgets all. Returns the names forgotten.
    pub fn forget_machines(
        &mut self,
        deployment: &Deployment,
        only: Option<&[String]>,
    ) -> Result<Vec<String>> {
        let recorded: Vec<String> = self
            .machines(&deployment.uuid)?
            .into_iter()
            .map(|m| m.name)
            .collect();
        let targets: Vec<String> = match only {
            None => recorded.clone(),
            Some(names) => {
                for n in names {
                    if !recorded.contains(n) {
                        let refs: Vec<&str> = recorded.iter().map(String::as_str).collect();
                        return Err(Error::UnknownMachine {
                            deployment: deployment.name.clone(),
                            machine: n.clone(),
                            suggestions: closest(n, &refs),
                        });
                    }
                }
                names.to_vec()
            }
        };
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let sql = |op| sql_error(&path, op);
        for name in &targets {
            tx.execute(
                "DELETE FROM machines WHERE deployment = ?1 AND name = ?2",
                params![deployment.uuid, name],
            )
            .map_err(sql("forget machine"))?;
        }
        commit(tx, &path)?;
        Ok(targets)
    }

    /// Delete a deployment. Without `force`, refuses while machines are recorded as deployed.
    pub fn delete(&mut self, deployment: &Deployment, force: bool) -> Result<()> {
        let deployed: Vec<String> = self
            .machines(&deployment.uuid)?
            .into_iter()
            .filter(|m| m.toplevel.is_some())
            .map(|m| m.name)
            .collect();
        if !deployed.is_empty() && !force {
            return Err(Error::StillDeployed {
                name: deployment.name.clone(),
                machines: deployed,
            });
        }
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let sql = |op| sql_error(&path, op);
        tx.execute(
            "DELETE FROM deployments WHERE uuid = ?1",
            [&deployment.uuid],
        )
        .map_err(sql("delete deployment"))?;
        commit(tx, &path)?;
        // The lock file is not removed: another process may be waiting on it, and an empty file costs nothing.
        Ok(())
    }

    /// Start a deploy: allocate the next generation and log the request.
    pub fn begin_deploy(&mut self, uuid: &str, request: &DeployRequest) -> Result<DeployHandle> {
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let sql = |op| sql_error(&path, op);
        let generation: i64 = tx
            .query_row(
                "SELECT coalesce(max(generation), 0) + 1 FROM deploys WHERE deployment = ?1",
                [uuid],
                |r| r.get(0),
            )
            .map_err(sql("allocate generation"))?;
        let json = serde_json::to_string(request).unwrap_or_else(|_| "{}".to_owned());
        tx.execute(
            "INSERT INTO deploys (deployment, generation, started_at, requested_by, request) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![uuid, generation, now(), request.requested_by, json],
        )
        .map_err(sql("log deploy"))?;
        let id = tx.last_insert_rowid();
        commit(tx, &path)?;
        Ok(DeployHandle { id, generation })
    }

    /// Record one machine's result; on success the machine's row gets the toplevel, generation, time and user.
    pub fn record_result(
        &mut self,
        uuid: &str,
        deploy: DeployHandle,
        result: &MachineResult,
    ) -> Result<()> {
        self.record_results(uuid, deploy, std::slice::from_ref(result))
    }

    /// Record several machines' results in one transaction.
    pub fn record_results(
        &mut self,
        uuid: &str,
        deploy: DeployHandle,
        results: &[MachineResult],
    ) -> Result<()> {
        for r in results {
            validate_machine_name(&r.machine)?;
        }
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let sql = |op| sql_error(&path, op);
        let requested_by: String = tx
            .query_row(
                "SELECT requested_by FROM deploys WHERE id = ?1",
                [deploy.id],
                |r| r.get(0),
            )
            .map_err(sql("read deploy"))?;
        let at = now();
        for r in results {
            record_one(&tx, uuid, deploy, r, at, &requested_by).map_err(sql("record result"))?;
        }
        commit(tx, &path)
    }

    /// Mark a deploy finished.
    pub fn finish_deploy(&mut self, deploy: DeployHandle) -> Result<()> {
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let sql = |op| sql_error(&path, op);
        tx.execute(
            "UPDATE deploys SET finished_at = ?1 WHERE id = ?2",
            params![now(), deploy.id],
        )
        .map_err(sql("finish deploy"))?;
        commit(tx, &path)
    }

    /// A whole deploy (request, every result, finish) in one transaction.
    pub fn record_deploy(
        &mut self,
        uuid: &str,
        request: &DeployRequest,
        results: &[MachineResult],
    ) -> Result<i64> {
        for r in results {
            validate_machine_name(&r.machine)?;
        }
        let at = now();
        let record = DeployRecord {
            generation: 0,
            started_at: at,
            finished_at: Some(at),
            requested_by: request.requested_by.clone(),
            request: request.clone(),
            results: results.to_vec(),
        };
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let sql = |op| sql_error(&path, op);
        let generation = insert_deploy(&tx, uuid, &record).map_err(sql("log deploy"))?;
        commit(tx, &path)?;
        Ok(generation)
    }

    /// The deploy log of a deployment, oldest first.
    pub fn deploy_log(&self, uuid: &str) -> Result<Vec<DeployRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, generation, started_at, finished_at, requested_by, request FROM deploys \
                 WHERE deployment = ?1 ORDER BY generation",
            )
            .map_err(|e| self.sql("read deploy log", e))?;
        let heads = stmt
            .query_map([uuid], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql("read deploy log", e))?;
        let mut out = Vec::with_capacity(heads.len());
        for (id, generation, started_at, finished_at, requested_by, request) in heads {
            let malformed = |what, reason: String| Error::Malformed {
                path: self.path.clone(),
                uuid: uuid.to_owned(),
                what,
                reason,
            };
            let request: DeployRequest = serde_json::from_str(&request)
                .map_err(|e| malformed("deploy request", e.to_string()))?;
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT r.machine, r.toplevel, r.outcome, r.message, m.target_host FROM deploy_results r \
                     LEFT JOIN machines m ON m.deployment = ?2 AND m.name = r.machine \
                     WHERE r.deploy = ?1 ORDER BY r.machine",
                )
                .map_err(|e| self.sql("read deploy results", e))?;
            let raw = stmt
                .query_map(params![id, uuid], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.sql("read deploy results", e))?;
            let mut results = Vec::with_capacity(raw.len());
            for (machine, toplevel, outcome, message, target_host) in raw {
                let outcome = Outcome::from_sql(&outcome)
                    .ok_or_else(|| malformed("deploy outcome", outcome))?;
                results.push(MachineResult {
                    machine,
                    target_host,
                    toplevel,
                    outcome,
                    message,
                });
            }
            out.push(DeployRecord {
                generation,
                started_at,
                finished_at,
                requested_by,
                request,
                results,
            });
        }
        Ok(out)
    }

    /// Everything about one deployment, secrets included (export, tests).
    pub fn full(&self, uuid: &str) -> Result<export::FullDeployment> {
        let deployment = self.deployment(uuid)?;
        let secrets = self.secrets(uuid)?;
        let mut machines = Vec::new();
        for m in self.machines(uuid)? {
            let key = self.machine_key(uuid, &m.name)?;
            machines.push((m, key));
        }
        Ok(export::FullDeployment {
            deployment,
            secrets,
            machines,
            known_hosts: self.known_hosts(uuid)?,
            deploys: self.deploy_log(uuid)?,
        })
    }
}

fn write_files_and_args(
    tx: &Transaction<'_>,
    uuid: &str,
    files: Option<&[PathBuf]>,
    args: Option<&[Arg]>,
) -> rusqlite::Result<()> {
    if let Some(files) = files {
        tx.execute("DELETE FROM network_files WHERE deployment = ?1", [uuid])?;
        for (i, f) in files.iter().enumerate() {
            tx.execute(
                "INSERT INTO network_files (deployment, position, path) VALUES (?1, ?2, ?3)",
                params![
                    uuid,
                    i64::try_from(i).unwrap_or(i64::MAX),
                    f.to_string_lossy()
                ],
            )?;
        }
    }
    if let Some(args) = args {
        tx.execute("DELETE FROM args WHERE deployment = ?1", [uuid])?;
        for a in args {
            tx.execute(
                "INSERT OR REPLACE INTO args (deployment, name, kind, value) VALUES (?1, ?2, ?3, ?4)",
                params![uuid, a.name, a.kind.as_sql(), a.value],
            )?;
        }
    }
    Ok(())
}

fn record_one(
    tx: &Transaction<'_>,
    uuid: &str,
    deploy: DeployHandle,
    r: &MachineResult,
    at: i64,
    by: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO deploy_results (deploy, machine, toplevel, outcome, message) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            deploy.id,
            r.machine,
            r.toplevel,
            r.outcome.as_sql(),
            r.message
        ],
    )?;
    if r.outcome == Outcome::Success {
        tx.execute(
            "INSERT INTO machines (deployment, name, target_host, toplevel, generation, deployed_at, deployed_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (deployment, name) DO UPDATE SET target_host = excluded.target_host, \
               toplevel = excluded.toplevel, generation = excluded.generation, \
               deployed_at = excluded.deployed_at, deployed_by = excluded.deployed_by",
            params![uuid, r.machine, r.target_host, r.toplevel, deploy.generation, at, by],
        )?;
    }
    Ok(())
}

/// Insert a finished deploy record; `rec.generation == 0` allocates the next one. Returns the generation.
fn insert_deploy(tx: &Transaction<'_>, uuid: &str, rec: &DeployRecord) -> rusqlite::Result<i64> {
    let generation = if rec.generation > 0 {
        rec.generation
    } else {
        tx.query_row(
            "SELECT coalesce(max(generation), 0) + 1 FROM deploys WHERE deployment = ?1",
            [uuid],
            |r| r.get(0),
        )?
    };
    let json = serde_json::to_string(&rec.request).unwrap_or_else(|_| "{}".to_owned());
    tx.execute(
        "INSERT INTO deploys (deployment, generation, started_at, finished_at, requested_by, request) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![uuid, generation, rec.started_at, rec.finished_at, rec.requested_by, json],
    )?;
    let handle = DeployHandle {
        id: tx.last_insert_rowid(),
        generation,
    };
    let at = rec.finished_at.unwrap_or(rec.started_at);
    for r in &rec.results {
        tx.execute(
            "INSERT OR REPLACE INTO deploy_results (deploy, machine, toplevel, outcome, message) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                handle.id,
                r.machine,
                r.toplevel,
                r.outcome.as_sql(),
                r.message
            ],
        )?;
        // Imported logs only describe history; the machine rows were inserted with their own values.
        if rec.generation == 0 {
            record_one(tx, uuid, handle, r, at, &rec.requested_by)?;
        }
    }
    Ok(generation)
}

/// The error for an SQLite file that ferry did not write, with a hint when it is NixOps state.
fn not_ferry(conn: &Connection, path: PathBuf) -> Error {
    let nixops = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE name = 'Deployments'",
            [],
            |_| Ok(()),
        )
        .optional()
        .ok()
        .flatten()
        .is_some();
    let hint = if nixops {
        format!(
            " (it looks like NixOps state: `ferry import-nixops --nixops-state {}`)",
            path.display()
        )
    } else {
        String::new()
    };
    Error::NotFerry { path, hint }
}

/// A `map_err` adapter for a SQLite failure during `op` on the state file at `path`.
pub(crate) fn sql_error(path: &Path, op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Sqlite { op, path, source }
}

/// Commit a write transaction.
///
/// Debug builds honour `FERRY_TEST_PAUSE_BEFORE_COMMIT=<file>`: with every write of the transaction done, the
/// process creates that file and sleeps, so that a test can kill it at the worst moment and check that the
/// previous state survives (tests/state_concurrency.rs, tests/state_migrations.rs). Release builds contain no such hook.
fn commit(tx: Transaction<'_>, path: &Path) -> Result<()> {
    test_pause_before_commit();
    tx.commit().map_err(sql_error(path, "commit"))
}

/// The test hook described at [`commit`]; a no-op in release builds.
pub(crate) fn test_pause_before_commit() {
    #[cfg(debug_assertions)]
    if let Some(marker) = std::env::var_os("FERRY_TEST_PAUSE_BEFORE_COMMIT") {
        let _ = fs::write(&marker, std::process::id().to_string());
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn create_file(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| Error::Io {
                    op: "create directory",
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
    }
    // create_new + 0600: the file never exists with a looser mode, not even for an instant.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Io {
            op: "create state file",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The candidates closest to `wanted`, best first (for "did you mean").
pub fn closest(wanted: &str, candidates: &[&str]) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(wanted, c), *c))
        .filter(|(s, c)| *s >= 0.8 || strsim::levenshtein(wanted, c) <= 2)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_owned())
        .collect()
}
