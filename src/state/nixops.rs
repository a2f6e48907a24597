//! Reading a NixOps 1.x/2.x state file (`~/.nixops/deployments.nixops`) so that `ferry import-nixops` can bring
//! its deployments over. Part of the state layer; sync, read-only on the NixOps file.
//!
//! The NixOps schema (nixops/statefile.py), as NixOps creates it:
//!
//! ```text
//! SchemaVersion(version)                                   absent in schema 1; 3 since NixOps 1.0
//! Deployments(uuid)
//! DeploymentAttrs(deployment, name, value)                 key/value per deployment
//! Resources(id, deployment, name, type)                    "Machines" before schema 3
//! ResourceAttrs(machine, name, value)                      "MachineAttrs" before schema 3
//! ```
//!
//! Deployment attributes used: `name`, `description`, `nixExprs` (JSON list of paths), `nixPath` (JSON list of
//! `-I` entries), `args` (JSON object: name → Nix expression; `--argstr` values are stored as Nix string
//! literals). Machine attributes used: `targetHost` (the "none" backend), `publicIpv4`/`privateIpv4` (cloud
//! backends), `toplevel` (the system last deployed), `none.sshPrivateKey`/`none.sshPublicKey` (the key NixOps
//! generated for that machine), `publicHostKey` (the machine's SSH host key). Resources that are not machines
//! (key pairs, security groups, …) are reported and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::error::{Error, Result};
use super::export::FullDeployment;
use super::keys::{self};
use super::model::*;
use super::now;

/// The description NixOps shows for a network without one; not worth importing.
const NIXOPS_DEFAULT_DESCRIPTION: &str = "Unnamed NixOps network";

/// One deployment read from NixOps, and what could not come along.
#[derive(Debug)]
pub struct Imported {
    pub full: FullDeployment,
    /// NixOps resources that are not machines, as `name (type)`.
    pub skipped_resources: Vec<String>,
    /// The deployment was renamed: it had no name in NixOps (`Some("")`), or one ferry refuses (`Some(old)`).
    pub renamed_from: Option<String>,
}

fn nixops_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Nixops {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Turn a NixOps `args` value (a Nix expression) into an argument: a plain string literal, as `--argstr`
/// stores it, becomes a string argument again; anything else stays an expression.
pub fn parse_arg(name: &str, expr: &str) -> Arg {
    let as_str = expr
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .and_then(|body| {
            let mut out = String::with_capacity(body.len());
            let mut chars = body.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next()? {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        other => out.push(other),
                    },
                    // An unescaped quote or interpolation means this is not one plain literal.
                    '"' => return None,
                    '$' if chars.clone().next() == Some('{') => return None,
                    c => out.push(c),
                }
            }
            Some(out)
        });
    match as_str {
        Some(value) => Arg {
            name: name.to_owned(),
            kind: ArgKind::Str,
            value,
        },
        None => Arg {
            name: name.to_owned(),
            kind: ArgKind::Expr,
            value: expr.to_owned(),
        },
    }
}

/// Read every deployment of the NixOps state file at `path`. The file is opened read-only.
pub fn read(path: &Path) -> Result<Vec<Imported>> {
    if !path.exists() {
        return Err(nixops_err(path, "no such file"));
    }
    let sql = |op| super::sql_error(path, op);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql("open NixOps state"))?;
    if !table_exists(&conn, "Deployments").map_err(sql("read NixOps schema"))? {
        return Err(nixops_err(
            path,
            "not a NixOps state file (no Deployments table)",
        ));
    }
    let version: i64 = if table_exists(&conn, "SchemaVersion").map_err(sql("read NixOps schema"))? {
        conn.query_row("SELECT version FROM SchemaVersion", [], |r| r.get(0))
            .map_err(sql("read NixOps schema"))?
    } else {
        1
    };
    if version > 3 {
        return Err(nixops_err(
            path,
            format!("NixOps schema version {version} is newer than the 3 ferry knows"),
        ));
    }
    let (resources, resource_attrs) =
        if table_exists(&conn, "Resources").map_err(sql("read NixOps schema"))? {
            ("Resources", "ResourceAttrs")
        } else {
            ("Machines", "MachineAttrs")
        };

    let mut stmt = conn
        .prepare("SELECT uuid FROM Deployments ORDER BY uuid")
        .map_err(sql("read deployments"))?;
    let uuids = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(sql("read deployments"))?;

    let mut out = Vec::with_capacity(uuids.len());
    for uuid in uuids {
        if uuid::Uuid::parse_str(&uuid).is_err() {
            return Err(nixops_err(
                path,
                format!("deployment uuid '{uuid}' is not a UUID"),
            ));
        }
        let attrs = attr_map(
            &conn,
            "SELECT name, value FROM DeploymentAttrs WHERE deployment = ?1",
            &uuid,
        )
        .map_err(sql("read deployment attributes"))?;
        let (name, renamed_from) = importable_name(attrs.get("name").map(String::as_str), &uuid);
        let bad = |what: &str, e: serde_json::Error| {
            nixops_err(path, format!("deployment '{name}': {what}: {e}"))
        };
        let network_files: Vec<PathBuf> = match attrs.get("nixExprs") {
            Some(v) => serde_json::from_str(v).map_err(|e| bad("nixExprs", e))?,
            None => Vec::new(),
        };
        let nix_path: Vec<String> = match attrs.get("nixPath") {
            Some(v) => serde_json::from_str(v).map_err(|e| bad("nixPath", e))?,
            None => Vec::new(),
        };
        let args: BTreeMap<String, String> = match attrs.get("args") {
            Some(v) => serde_json::from_str(v).map_err(|e| bad("args", e))?,
            None => BTreeMap::new(),
        };
        let description = attrs
            .get("description")
            .filter(|d| d.as_str() != NIXOPS_DEFAULT_DESCRIPTION)
            .cloned();

        let query =
            format!("SELECT id, name, type FROM {resources} WHERE deployment = ?1 ORDER BY name");
        let mut stmt = conn.prepare(&query).map_err(sql("read machines"))?;
        let rows = stmt
            .query_map([&uuid], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sql("read machines"))?;
        let mut machines = Vec::new();
        let mut known_hosts = Vec::new();
        let mut skipped_resources = Vec::new();
        for (id, mname, backend) in rows {
            let query = format!("SELECT name, value FROM {resource_attrs} WHERE machine = ?1");
            let mattrs = attr_map_id(&conn, &query, id).map_err(sql("read machine attributes"))?;
            let target_host = mattrs
                .get("targetHost")
                .or_else(|| mattrs.get("publicIpv4"))
                .or_else(|| mattrs.get("privateIpv4"))
                .cloned();
            let toplevel = mattrs.get("toplevel").cloned();
            let is_machine = backend == "none" || target_host.is_some() || toplevel.is_some();
            if !is_machine {
                skipped_resources.push(format!("{mname} ({backend})"));
                continue;
            }
            let key = match (
                mattrs.get("none.sshPrivateKey"),
                mattrs.get("none.sshPublicKey"),
            ) {
                (Some(private), Some(public)) => Some(MachineKey {
                    public: public.trim().to_owned(),
                    private: keys::Secret::new(private.clone()),
                }),
                _ => None,
            };
            if let (Some(host), Some(hk)) = (&target_host, mattrs.get("publicHostKey")) {
                // NixOps stores `type base64` (sometimes with a comment); known_hosts wants `type base64`.
                let key: Vec<&str> = hk.split_whitespace().take(2).collect();
                if key.len() == 2 {
                    known_hosts.push(KnownHost {
                        host: host.clone(),
                        key: key.join(" "),
                    });
                }
            }
            machines.push((
                Machine {
                    name: mname,
                    backend,
                    target_host,
                    toplevel,
                    generation: None,
                    deployed_at: None,
                    deployed_by: None,
                    ssh_public_key: key.as_ref().map(|k| k.public.clone()),
                },
                key,
            ));
        }

        let secrets = DeploymentSecrets {
            ssh: keys::generate_ssh_keypair(&format!("ferry deployment {name}"))?,
            signing: keys::generate_signing_keypair(&format!("ferry-{name}-1"))?,
        };
        let full = FullDeployment {
            deployment: Deployment {
                uuid: uuid.clone(),
                name,
                description,
                created_at: now(),
                network_files,
                args: args.iter().map(|(n, v)| parse_arg(n, v)).collect(),
                nix_path,
                ssh_public_key: secrets.ssh.public.clone(),
                signing_public_key: secrets.signing.public.clone(),
            },
            secrets,
            machines,
            known_hosts,
            deploys: Vec::new(),
        };
        out.push(Imported {
            full,
            skipped_resources,
            renamed_from,
        });
    }
    Ok(out)
}

fn attr_map(
    conn: &Connection,
    query: &str,
    key: &str,
) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare(query)?;
    let rows = stmt.query_map([key], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    rows.collect()
}

fn attr_map_id(
    conn: &Connection,
    query: &str,
    key: i64,
) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare(query)?;
    let rows = stmt.query_map([key], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argstr_literals_come_back_as_strings() {
        let a = parse_arg("env", r#""prod \"eu\" \${x}""#);
        assert_eq!(
            (a.kind, a.value.as_str()),
            (ArgKind::Str, r#"prod "eu" ${x}"#)
        );
        let b = parse_arg("n", "3");
        assert_eq!((b.kind, b.value.as_str()), (ArgKind::Expr, "3"));
        let c = parse_arg("s", r#""a" + "b""#);
        assert_eq!(c.kind, ArgKind::Expr);
        let d = parse_arg("i", r#""x${y}""#);
        assert_eq!(d.kind, ArgKind::Expr);
    }
}
