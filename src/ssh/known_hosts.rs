//! OpenSSH `known_hosts` files: lookup (plain, wildcard, negated and hashed `|1|salt|hmac` host fields,
//! `[host]:port` names, `@revoked`), and appending new keys to ferry's own file.
//!
//! Layer: `ssh`, synchronous file access only. Malformed lines are skipped, as OpenSSH does; a file that
//! does not exist is empty.
//!
//! Grammar of a line: `[@marker] hosts keytype base64 [comment]`, where `hosts` is a comma-separated list of
//! patterns (`*`, `?`, `!negated`) or one hashed entry `|1|base64(salt)|base64(hmac_sha1(salt, name))`, and
//! `name` is `host` for port 22 and `[host]:port` otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use russh::keys::{Algorithm, HashAlg, PublicKey};
use sha1::{Digest, Sha1};

use super::config::pattern_list_match;
use super::error::{Error, Result};

/// The name under which a host's key is recorded: `host`, or `[host]:port` when the port isn't 22.
pub fn host_key_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The SHA256 fingerprint OpenSSH prints (`SHA256:base64`), prefixed with the key type.
pub fn fingerprint(key: &PublicKey) -> String {
    format!(
        "{} {}",
        key.algorithm().as_str(),
        key.fingerprint(HashAlg::Sha256)
    )
}

/// HMAC-SHA1 (RFC 2104), the MAC of hashed known_hosts entries. Hand-written to avoid a dependency for
/// 15 lines; checked against entries written by `ssh-keygen -H` in the tests.
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    let mut out = [0u8; 20];
    out.copy_from_slice(&outer.finalize());
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Hosts {
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    Patterns(Vec<(bool, String)>),
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                hmac_sha1(salt, name.as_bytes()).as_slice() == hash.as_slice()
            }
            Hosts::Patterns(p) => pattern_list_match(p, name),
        }
    }
}

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Marker,
    hosts: Hosts,
    key: PublicKey,
}

fn parse_line(line: &str, number: usize) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let hosts = if let Some(rest) = first.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        Hosts::Hashed {
            salt: B64.decode(salt).ok()?,
            hash: B64.decode(hash).ok()?,
        }
    } else {
        Hosts::Patterns(
            first
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| match p.strip_prefix('!') {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, p.to_string()),
                })
                .collect(),
        )
    };
    let alg = fields.next()?;
    let b64 = fields.next()?;
    let key = PublicKey::from_openssh(&format!("{alg} {b64}")).ok()?;
    Some(Entry {
        line: number,
        marker,
        hosts,
        key,
    })
}

fn read_entries(path: &Path) -> Result<Vec<Entry>> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                op: "reading known_hosts",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    Ok(text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| parse_line(l, i + 1))
        .collect())
}

/// What the known_hosts files say about a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line records exactly this key for this host.
    Trusted { file: PathBuf, line: usize },
    /// No line mentions this host.
    Unknown,
    /// The host is recorded with another key (of the same type if there is one, else of any type).
    Changed {
        file: PathBuf,
        line: usize,
        known_fingerprint: String,
    },
    /// The key is marked `@revoked`.
    Revoked { file: PathBuf, line: usize },
}

/// Checks `key` for `host:port` against `files`, in order. A revocation anywhere wins; then a match anywhere;
/// then a recorded key of the same algorithm (a changed key); then any recorded key.
pub fn check(files: &[PathBuf], host: &str, port: u16, key: &PublicKey) -> Result<Verdict> {
    let name = host_key_name(host, port);
    let mut trusted = None;
    let mut same_alg = None;
    let mut other_alg = None;
    for file in files {
        for e in read_entries(file)? {
            if e.marker == Marker::CertAuthority {
                continue;
            }
            let key_matches = e.key.key_data() == key.key_data();
            if e.marker == Marker::Revoked {
                if key_matches {
                    return Ok(Verdict::Revoked {
                        file: file.clone(),
                        line: e.line,
                    });
                }
                continue;
            }
            if !e.hosts.matches(&name) {
                continue;
            }
            let here = (file.clone(), e.line, fingerprint(&e.key));
            if key_matches {
                trusted.get_or_insert(here);
            } else if e.key.algorithm() == key.algorithm() {
                same_alg.get_or_insert(here);
            } else {
                other_alg.get_or_insert(here);
            }
        }
    }
    Ok(match (trusted, same_alg.or(other_alg)) {
        (Some((file, line, _)), _) => Verdict::Trusted { file, line },
        (None, Some((file, line, known_fingerprint))) => Verdict::Changed {
            file,
            line,
            known_fingerprint,
        },
        (None, None) => Verdict::Unknown,
    })
}

/// The key algorithms recorded for `host:port`, in file order, so the client can ask the server for a key
/// type it already knows (as OpenSSH does), instead of failing on a host that has several key types.
pub fn known_algorithms(files: &[PathBuf], host: &str, port: u16) -> Vec<Algorithm> {
    let name = host_key_name(host, port);
    let mut out = Vec::new();
    for file in files {
        // Unreadable files are reported by `check`, which runs during the handshake.
        for e in read_entries(file).unwrap_or_default() {
            if e.marker == Marker::None
                && e.hosts.matches(&name)
                && !out.contains(&e.key.algorithm())
            {
                out.push(e.key.algorithm());
            }
        }
    }
    out
}

/// Appends `name keytype base64` to `path` (creating it and its directory), in plain (unhashed) form: it is
/// ferry's own file, and plain entries are easier to audit and to delete by hand.
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<()> {
    let io = |op: &'static str| {
        move |source| Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
    }
    let mut line = key.to_openssh().map_err(|e| Error::Key {
        path: path.to_path_buf(),
        reason: format!("encoding host key: {e}"),
    })?;
    // Drop the comment: known_hosts lines carry only `type base64`.
    if let Some((alg, rest)) = line.split_once(' ') {
        let b64 = rest.split_whitespace().next().unwrap_or_default();
        line = format!("{alg} {b64}");
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io("opening"))?;
    // Start on a fresh line even if the file lacks a trailing newline.
    let needs_nl = std::fs::read(path)
        .map(|b| b.last().is_some_and(|&c| c != b'\n'))
        .unwrap_or(false);
    let text = format!(
        "{}{} {line}\n",
        if needs_nl { "\n" } else { "" },
        host_key_name(host, port)
    );
    f.write_all(text.as_bytes()).map_err(io("appending to"))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // RFC 2202 test case 2.
    #[test]
    fn hmac_sha1_rfc2202() {
        let mac = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    fn key(seed: u8) -> PublicKey {
        let kp = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]);
        russh::keys::PrivateKey::from(kp).public_key().clone()
    }

    #[test]
    fn plain_port_hashed_and_changed() {
        let (key, other) = (key(1), key(2));
        #[allow(non_snake_case)]
        let (KEY, OTHER) = (key.to_openssh().unwrap(), other.to_openssh().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kh");
        let salt = b"0123456789abcdefghij";
        let hashed = format!(
            "|1|{}|{}",
            B64.encode(salt),
            B64.encode(hmac_sha1(salt, b"[hashed.example]:2200"))
        );
        std::fs::write(
            &path,
            format!(
                "# comment\ngarbage line\nweb1,web2 {KEY}\n[web3]:2222 {KEY}\n{hashed} {KEY}\n*.corp,!bad.corp {OTHER}\n"
            ),
        )
        .unwrap();
        let files = vec![path.clone()];
        assert_eq!(
            check(&files, "web2", 22, &key).unwrap(),
            Verdict::Trusted {
                file: path.clone(),
                line: 3
            }
        );
        assert_eq!(check(&files, "web3", 22, &key).unwrap(), Verdict::Unknown);
        assert!(matches!(
            check(&files, "web3", 2222, &key).unwrap(),
            Verdict::Trusted { line: 4, .. }
        ));
        assert!(matches!(
            check(&files, "hashed.example", 2200, &key).unwrap(),
            Verdict::Trusted { line: 5, .. }
        ));
        assert_eq!(
            check(&files, "hashed.example", 22, &key).unwrap(),
            Verdict::Unknown
        );
        assert!(matches!(
            check(&files, "web1", 22, &other).unwrap(),
            Verdict::Changed { line: 3, .. }
        ));
        assert!(matches!(
            check(&files, "a.corp", 22, &other).unwrap(),
            Verdict::Trusted { line: 6, .. }
        ));
        assert_eq!(
            check(&files, "bad.corp", 22, &other).unwrap(),
            Verdict::Unknown
        );
    }

    #[test]
    fn append_then_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let key = key(3);
        append(&path, "127.0.0.1", 2022, &key).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("[127.0.0.1]:2022 ssh-ed25519 AAAA"),
            "{text}"
        );
        assert!(matches!(
            check(&[path], "127.0.0.1", 2022, &key).unwrap(),
            Verdict::Trusted { line: 1, .. }
        ));
    }
}
