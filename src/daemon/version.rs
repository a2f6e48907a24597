//! Worker-protocol versions and the features each one introduced. Pure.
//!
//! Layer: `daemon` (pure core). Must not depend on tokio.
//!
//! A version is `major << 8 | minor`; the negotiated version is the minimum of what the client
//! advertises and what the daemon speaks. Every field that only exists from some version on is
//! gated on one of the constants below, each declared next to the version that introduced it.
//!
//! | Nix release            | Worker protocol | Notes                                              |
//! |------------------------|-----------------|----------------------------------------------------|
//! | 2.0                    | 1.20            | activities and results on the stderr channel       |
//! | 2.1 – 2.3              | 1.21            | AddToStoreNar data pulled with STDERR_READ         |
//! | 2.4 – 2.6              | 1.32            | framed uploads, AddMultipleToStore, error structs  |
//! | 2.7                    | 1.33            | daemon sends its Nix version                       |
//! | 2.8 – 2.14             | 1.34            | BuildPathsWithResults (Debian's 2.8.0)             |
//! | 2.15 – 2.19, Lix 2.9x  | 1.35            | trusted flag in the handshake                      |
//! | 2.20 – 2.23            | 1.37            | BuildResult cpuUser/cpuSystem                      |
//! | 2.24 –                 | 1.38            | feature-set exchange                               |
//!
//! ferry advertises [`ProtocolVersion::CLIENT`] (1.35): Nix 2.8 negotiates 1.34, Lix ≥ 2.94
//! requires 1.35, and staying below 1.37/1.38 keeps the BuildResult layout and the handshake
//! without a feature exchange.

use std::fmt;

/// A worker-protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(u16);

impl ProtocolVersion {
    pub const fn new(major: u8, minor: u8) -> Self {
        ProtocolVersion(((major as u16) << 8) | minor as u16)
    }

    /// Parse the wire value; `None` if it does not fit a version.
    pub fn from_wire(v: u64) -> Option<Self> {
        u16::try_from(v).ok().map(ProtocolVersion)
    }

    pub const fn to_wire(self) -> u64 {
        self.0 as u64
    }

    pub const fn major(self) -> u8 {
        (self.0 >> 8) as u8
    }

    pub const fn minor(self) -> u8 {
        (self.0 & 0xff) as u8
    }

    /// What ferry advertises.
    pub const CLIENT: Self = Self::new(1, 35);
    /// The oldest daemon ferry talks to: Nix 2.3. Older daemons lack QueryMissing, activities and
    /// the AddToStoreNar op in the form we send.
    pub const MINIMUM: Self = Self::new(1, 21);

    // Fields and ops, by the version that introduced them.
    /// reserveSpace word in the handshake.
    pub const RESERVE_SPACE: Self = Self::new(1, 11);
    /// SetOptions carries a map of setting overrides; QueryValidPaths exists.
    pub const SETTINGS_OVERRIDES: Self = Self::new(1, 12);
    /// CPU affinity word(s) in the handshake.
    pub const CPU_AFFINITY: Self = Self::new(1, 14);
    /// BuildPaths takes a build mode.
    pub const BUILD_MODE: Self = Self::new(1, 15);
    /// ValidPathInfo gains ultimate, sigs and ca.
    pub const PATH_INFO_SIGS: Self = Self::new(1, 16);
    /// QueryPathInfo answers with a `valid` flag instead of failing; NarFromPath exists.
    pub const PATH_INFO_VALID_FLAG: Self = Self::new(1, 17);
    /// QueryMissing.
    pub const QUERY_MISSING: Self = Self::new(1, 19);
    /// Activities and results on the stderr channel.
    pub const ACTIVITIES: Self = Self::new(1, 20);
    /// QueryDerivationOutputMap.
    pub const DERIVATION_OUTPUT_MAP: Self = Self::new(1, 22);
    /// AddToStoreNar data is framed (1.21–1.22 pull it with STDERR_READ, which ferry does not do).
    pub const FRAMED_NAR: Self = Self::new(1, 23);
    /// New AddToStore (name, method, refs, repair, framed dump) replacing AddTextToStore.
    pub const NEW_ADD_TO_STORE: Self = Self::new(1, 25);
    /// STDERR_ERROR carries a structured error.
    pub const ERROR_STRUCT: Self = Self::new(1, 26);
    /// QueryValidPaths takes a `substitute` flag.
    pub const QUERY_VALID_SUBSTITUTE: Self = Self::new(1, 27);
    /// BuildResult carries builtOutputs.
    pub const BUILT_OUTPUTS: Self = Self::new(1, 28);
    /// BuildResult carries timesBuilt, isNonDeterministic, startTime, stopTime.
    pub const BUILD_TIMES: Self = Self::new(1, 29);
    /// DerivedPath syntax `drv!out1,out2` / `drv!*`.
    pub const DERIVED_PATH: Self = Self::new(1, 30);
    /// AddMultipleToStore.
    pub const ADD_MULTIPLE: Self = Self::new(1, 32);
    /// The daemon sends its Nix version after the handshake.
    pub const NIX_VERSION: Self = Self::new(1, 33);
    /// BuildPathsWithResults.
    pub const BUILD_WITH_RESULTS: Self = Self::new(1, 34);
    /// The daemon tells the client whether it is trusted.
    pub const TRUST_FLAG: Self = Self::new(1, 35);

    /// True if this (negotiated) version includes `feature`.
    pub fn has(self, feature: ProtocolVersion) -> bool {
        self >= feature
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wire_values() {
        assert_eq!(ProtocolVersion::new(1, 34).to_wire(), 0x122);
        assert_eq!(ProtocolVersion::CLIENT.to_wire(), 0x123);
        assert_eq!(
            ProtocolVersion::from_wire(0x122).map(|v| v.minor()),
            Some(34)
        );
        assert_eq!(ProtocolVersion::from_wire(1 << 20), None);
        assert!(ProtocolVersion::new(1, 34).has(ProtocolVersion::BUILD_WITH_RESULTS));
        assert!(!ProtocolVersion::new(1, 34).has(ProtocolVersion::TRUST_FLAG));
        assert_eq!(ProtocolVersion::new(1, 34).to_string(), "1.34");
    }
}
