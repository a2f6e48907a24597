//! The worker-protocol handshake as pure encode/decode steps.
//!
//! Layer: `daemon` (pure core). Must not depend on tokio.
//!
//! ```text
//! C→D  u64 WORKER_MAGIC_1 ‖ u64 clientVersion ‖ u64 0 (no CPU affinity, ≥1.14) ‖ u64 0 (reserveSpace, ≥1.11)
//! D→C  u64 WORKER_MAGIC_2 ‖ u64 daemonVersion
//! D→C  string nixVersion (≥1.33) ‖ u64 trusted (≥1.35: 0 unknown, 1 trusted, 2 not trusted)
//! D→C  stderr messages … STDERR_LAST
//! ```
//!
//! ferry sends its whole hello in one write, without waiting for the daemon's magic: the daemon
//! decides which words to read from the *client's* version, and ours (1.35) is known up front.
//! Nix 2.8 accepts this (checked against the real daemon); Nix ≥ 2.24 clients do the same. Since we
//! advertise 1.35, a newer daemon negotiates 1.35 and skips the 1.38 feature exchange.

use super::version::ProtocolVersion;
use super::wire::{DResult, Decoder, Encoder, invalid};

pub const WORKER_MAGIC_1: u64 = 0x6e69_7863;
pub const WORKER_MAGIC_2: u64 = 0x6478_696f;

/// Whether the daemon trusts this client (from the 1.35 handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The daemon did not say (protocol < 1.35, or it sent 0).
    Unknown,
    Trusted,
    NotTrusted,
}

/// What the daemon said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The daemon's own protocol version.
    pub daemon_version: ProtocolVersion,
    /// min(ours, daemon's): every gated field uses this.
    pub negotiated: ProtocolVersion,
    /// The daemon's Nix version, e.g. "2.8.0" (≥1.33).
    pub nix_version: Option<String>,
    pub trust: Trust,
}

/// The client's hello, sent in one write.
pub fn client_hello(client: ProtocolVersion) -> Vec<u8> {
    let mut e = Encoder::new();
    e.u64(WORKER_MAGIC_1).u64(client.to_wire());
    if client.has(ProtocolVersion::CPU_AFFINITY) {
        e.u64(0);
    }
    if client.has(ProtocolVersion::RESERVE_SPACE) {
        e.u64(0);
    }
    e.into_bytes()
}

/// Decode the daemon's magic and version, and negotiate.
pub fn decode_server_version(
    d: &mut Decoder<'_>,
    client: ProtocolVersion,
) -> DResult<(ProtocolVersion, ProtocolVersion)> {
    let magic = d.u64()?;
    if magic != WORKER_MAGIC_2 {
        return invalid(format!(
            "not a Nix daemon: expected magic {WORKER_MAGIC_2:#x}, got {magic:#x}"
        ));
    }
    let raw = d.u64()?;
    let Some(daemon) = ProtocolVersion::from_wire(raw) else {
        return invalid(format!("daemon sent an invalid protocol version {raw:#x}"));
    };
    if daemon.major() != 1 {
        return invalid(format!("daemon protocol version {daemon} is not supported"));
    }
    let negotiated = daemon.min(client);
    if negotiated < ProtocolVersion::MINIMUM {
        return invalid(format!(
            "daemon protocol version {daemon} is too old (ferry needs {} or newer, Nix 2.3+)",
            ProtocolVersion::MINIMUM
        ));
    }
    Ok((daemon, negotiated))
}

/// Decode what follows the version: the daemon's Nix version and trust flag (the stderr
/// messages after it are read by the stderr loop).
pub fn decode_server_info(
    d: &mut Decoder<'_>,
    daemon_version: ProtocolVersion,
    negotiated: ProtocolVersion,
) -> DResult<ServerInfo> {
    let nix_version = if negotiated.has(ProtocolVersion::NIX_VERSION) {
        Some(d.string()?)
    } else {
        None
    };
    let trust = if negotiated.has(ProtocolVersion::TRUST_FLAG) {
        match d.u64()? {
            0 => Trust::Unknown,
            1 => Trust::Trusted,
            2 => Trust::NotTrusted,
            t => return invalid(format!("unknown trust flag {t}")),
        }
    } else {
        Trust::Unknown
    };
    Ok(ServerInfo {
        daemon_version,
        negotiated,
        nix_version,
        trust,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hello_matches_the_verified_bytes() {
        let h = client_hello(ProtocolVersion::CLIENT);
        let mut want = Vec::new();
        want.extend_from_slice(&[0x63, 0x78, 0x69, 0x6e, 0, 0, 0, 0]);
        want.extend_from_slice(&[0x23, 0x01, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0u8; 16]);
        assert_eq!(h, want);
    }

    #[test]
    fn negotiates_down_to_nix_2_8() {
        let b = [
            0x6f, 0x69, 0x78, 0x64, 0, 0, 0, 0, 0x22, 0x01, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0,
            0, b'2', b'.', b'8', b'.', b'0', 0, 0, 0,
        ];
        let mut d = Decoder::new(&b);
        let (daemon, neg) = decode_server_version(&mut d, ProtocolVersion::CLIENT).unwrap();
        assert_eq!(neg, ProtocolVersion::new(1, 34));
        let info = decode_server_info(&mut d, daemon, neg).unwrap();
        assert_eq!(info.nix_version.as_deref(), Some("2.8.0"));
        assert_eq!(info.trust, Trust::Unknown);
        d.finish().unwrap();
    }

    #[test]
    fn rejects_wrong_magic_and_old_daemons() {
        let mut e = Encoder::new();
        e.u64(1).u64(0x122);
        let b = e.into_bytes();
        assert!(decode_server_version(&mut Decoder::new(&b), ProtocolVersion::CLIENT).is_err());
        let mut e = Encoder::new();
        e.u64(WORKER_MAGIC_2).u64(0x10a);
        let b = e.into_bytes();
        assert!(decode_server_version(&mut Decoder::new(&b), ProtocolVersion::CLIENT).is_err());
    }
}
