//! ed25519 keys in OpenSSH format: generating ferry's deployment key and loading private keys safely.
//!
//! Layer: `ssh`, synchronous file access. The private key is created with `O_CREAT|O_EXCL` and mode 0600 in the
//! same `open(2)`, so there is no moment where it exists with looser permissions, and an existing key is never
//! overwritten.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};

use super::error::{Error, Result};

/// The `.pub` file next to a private key.
pub fn public_key_path(private: &Path) -> PathBuf {
    let mut s = private.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Generates an ed25519 key pair: the private key at `path` (OpenSSH format, 0600, must not exist yet) and the
/// public key at `path.pub`. Returns the public key.
pub fn generate_ed25519_keypair(path: &Path, comment: &str) -> Result<PublicKey> {
    let seed: [u8; 32] = rand::random();
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    let pem = key.to_openssh(LineEnding::LF).map_err(|e| Error::Key {
        path: path.to_path_buf(),
        reason: format!("encoding the new key: {e}"),
    })?;
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io {
            op,
            path: p,
            source,
        }
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("creating private key", path))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io("writing private key", path))?;
    let public = key.public_key().clone();
    let line = public.to_openssh().map_err(|e| Error::Key {
        path: path.to_path_buf(),
        reason: format!("encoding the public key: {e}"),
    })?;
    let pub_path = public_key_path(path);
    std::fs::write(&pub_path, format!("{line}\n")).map_err(io("writing public key", &pub_path))?;
    Ok(public)
}

/// Loads an unencrypted private key (OpenSSH or PEM format). Refuses a key file that group or others can
/// access, like OpenSSH does.
pub fn load_private_key(path: &Path) -> Result<PrivateKey> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        op: "reading private key",
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        op: "reading private key",
        path: path.to_path_buf(),
        source,
    })?;
    russh::keys::decode_secret_key(&text, None).map_err(|e| Error::Key {
        path: path.to_path_buf(),
        reason: match e {
            russh::keys::Error::KeyIsEncrypted => {
                "is encrypted with a passphrase; add it to ssh-agent instead".to_string()
            }
            other => format!("cannot parse: {other}"),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_0600_openssh_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        let public = generate_ed25519_keypair(&path, "ferry test").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let loaded = load_private_key(&path).unwrap();
        assert_eq!(loaded.public_key().key_data(), public.key_data());
        let pub_text = std::fs::read_to_string(public_key_path(&path)).unwrap();
        assert!(
            pub_text.starts_with("ssh-ed25519 AAAA") && pub_text.trim_end().ends_with("ferry test")
        );
        // A second generation must fail rather than replace the key.
        assert!(generate_ed25519_keypair(&path, "again").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // Loosened permissions are refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_private_key(&path),
            Err(Error::KeyPermissions { mode: 0o644, .. })
        ));
    }
}
