//! Worker-protocol operation codes and the version that introduced each. Pure.
//!
//! Layer: `daemon` (pure core). Must not depend on tokio.

use std::fmt;

use super::version::ProtocolVersion;

/// An operation ferry sends (plus the pseudo-op `Handshake`, used to name errors that happen
/// before any operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Handshake,
    IsValidPath,
    AddToStore,
    AddTextToStore,
    BuildPaths,
    EnsurePath,
    AddTempRoot,
    SetOptions,
    QueryPathInfo,
    QueryValidPaths,
    BuildDerivation,
    AddSignatures,
    NarFromPath,
    AddToStoreNar,
    QueryMissing,
    QueryDerivationOutputMap,
    AddMultipleToStore,
    BuildPathsWithResults,
}

impl Op {
    /// The op code on the wire; `None` for the pseudo-op.
    pub const fn code(self) -> Option<u64> {
        Some(match self {
            Op::Handshake => return None,
            Op::IsValidPath => 1,
            Op::AddToStore => 7,
            Op::AddTextToStore => 8,
            Op::BuildPaths => 9,
            Op::EnsurePath => 10,
            Op::AddTempRoot => 11,
            Op::SetOptions => 19,
            Op::QueryPathInfo => 26,
            Op::QueryValidPaths => 31,
            Op::BuildDerivation => 36,
            Op::AddSignatures => 37,
            Op::NarFromPath => 38,
            Op::AddToStoreNar => 39,
            Op::QueryMissing => 40,
            Op::QueryDerivationOutputMap => 41,
            Op::AddMultipleToStore => 44,
            Op::BuildPathsWithResults => 46,
        })
    }

    /// The first negotiated version at which ferry can send this op.
    pub const fn since(self) -> ProtocolVersion {
        match self {
            Op::QueryValidPaths => ProtocolVersion::SETTINGS_OVERRIDES,
            Op::NarFromPath => ProtocolVersion::PATH_INFO_VALID_FLAG,
            Op::QueryMissing => ProtocolVersion::QUERY_MISSING,
            Op::QueryDerivationOutputMap => ProtocolVersion::DERIVATION_OUTPUT_MAP,
            // ferry only sends framed NARs (1.21–1.22 would need STDERR_READ pulls).
            Op::AddToStoreNar => ProtocolVersion::FRAMED_NAR,
            Op::AddMultipleToStore => ProtocolVersion::ADD_MULTIPLE,
            Op::BuildPathsWithResults => ProtocolVersion::BUILD_WITH_RESULTS,
            _ => ProtocolVersion::new(1, 0),
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Op::Handshake => "handshake",
            Op::IsValidPath => "IsValidPath",
            Op::AddToStore => "AddToStore",
            Op::AddTextToStore => "AddTextToStore",
            Op::BuildPaths => "BuildPaths",
            Op::EnsurePath => "EnsurePath",
            Op::AddTempRoot => "AddTempRoot",
            Op::SetOptions => "SetOptions",
            Op::QueryPathInfo => "QueryPathInfo",
            Op::QueryValidPaths => "QueryValidPaths",
            Op::BuildDerivation => "BuildDerivation",
            Op::AddSignatures => "AddSignatures",
            Op::NarFromPath => "NarFromPath",
            Op::AddToStoreNar => "AddToStoreNar",
            Op::QueryMissing => "QueryMissing",
            Op::QueryDerivationOutputMap => "QueryDerivationOutputMap",
            Op::AddMultipleToStore => "AddMultipleToStore",
            Op::BuildPathsWithResults => "BuildPathsWithResults",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
