//! Path metadata as the daemon, narinfo files and `nix path-info` describe it, and the narinfo
//! fingerprint that signatures cover (`ValidPathInfo::fingerprint` in `store-api.cc`).
//!
//! Layer: store (pure, sync). No other ferry module.

use std::collections::BTreeSet;

use super::{Error, Hash, Result, StorePath};

/// Everything Nix records about a valid store path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidPathInfo {
    pub path: StorePath,
    pub deriver: Option<StorePath>,
    /// sha256 of the NAR serialisation.
    pub nar_hash: Hash,
    /// Full store paths; may include `path` itself.
    pub references: BTreeSet<StorePath>,
    /// Unix seconds; 0 = unknown (the daemon then uses "now").
    pub registration_time: u64,
    pub nar_size: u64,
    /// Built locally rather than copied (trusted without signatures).
    pub ultimate: bool,
    /// `keyname:base64sig`.
    pub sigs: BTreeSet<String>,
    /// Content address, e.g. `fixed:r:sha256:<nix32>` or `text:sha256:<nix32>`.
    pub ca: Option<String>,
}

impl ValidPathInfo {
    /// A path info with no references, deriver, signatures or content address.
    pub fn new(path: StorePath, nar_hash: Hash, nar_size: u64) -> ValidPathInfo {
        ValidPathInfo {
            path,
            deriver: None,
            nar_hash,
            references: BTreeSet::new(),
            registration_time: 0,
            nar_size,
            ultimate: false,
            sigs: BTreeSet::new(),
            ca: None,
        }
    }

    /// `1;<path>;<narHash as algo:nix32>;<narSize>;<ref1>,<ref2>…` with references as full paths
    /// in sorted order. Nix refuses when the NAR size is unknown (0).
    pub fn fingerprint(&self) -> Result<String> {
        if self.nar_size == 0 {
            return Err(Error::Fingerprint {
                path: self.path.to_string(),
                reason: "its NAR size is not known",
            });
        }
        // BTreeSet<StorePath> iterates by base name, which is the order of the full paths too,
        // because they all share the store directory prefix.
        let refs: Vec<String> = self.references.iter().map(|r| r.to_absolute()).collect();
        Ok(format!(
            "1;{};{};{};{}",
            self.path,
            self.nar_hash.to_typed_nix32(),
            self.nar_size,
            refs.join(",")
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// The snix test vector (curl-7.82.0-bin from cache.nixos.org), whose signature by
    /// cache.nixos.org-1 is checked in `signature.rs`.
    pub(crate) fn curl() -> ValidPathInfo {
        let mut info = ValidPathInfo::new(
            StorePath::from_absolute_path(
                "/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin",
            )
            .unwrap(),
            Hash::parse_typed("sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0")
                .unwrap(),
            196040,
        );
        for r in [
            "/nix/store/yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n",
            "/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0",
            "/nix/store/j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12",
            "/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115",
        ] {
            info.references
                .insert(StorePath::from_absolute_path(r).unwrap());
        }
        info
    }

    #[test]
    fn fingerprint_vector() {
        assert_eq!(
            curl().fingerprint().unwrap(),
            "1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin;sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0;196040;/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115,/nix/store/j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12,/nix/store/yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n"
        );
        let mut unknown = curl();
        unknown.nar_size = 0;
        assert!(unknown.fingerprint().is_err());
    }
}
