//! Request encodings and reply decodings of the operations ferry uses, gated on the negotiated
//! version. Pure: no I/O.
//!
//! Layer: `daemon` (pure core). Depends on `store` for its types; must not depend on tokio.
//!
//! Layouts (`C→D` after the u64 op code; every reply comes after the stderr loop's `STDERR_LAST`):
//!
//! ```text
//! IsValidPath (1)            C→D path                                  D→C bool
//! QueryValidPaths (31)       C→D paths [≥1.27: bool substitute]        D→C paths
//! QueryPathInfo (26)         C→D path                                  D→C [≥1.17: bool valid] [UnkeyedValidPathInfo]
//! UnkeyedValidPathInfo       deriver narHash(base16) refs regTime narSize [≥1.16: ultimate sigs ca]
//! ValidPathInfo              path ‖ UnkeyedValidPathInfo
//! NarFromPath (38)           C→D path                                  D→C raw NAR, unframed
//! AddToStoreNar (39)         C→D ValidPathInfo(≥1.16 layout) repair dontCheckSigs ‖ framed NAR
//! AddMultipleToStore (44)    C→D repair dontCheckSigs ‖ framed(u64 n ‖ n × (ValidPathInfo ‖ NAR))
//! AddToStore (7, ≥1.25)      C→D name camStr refs repair ‖ framed dump D→C ValidPathInfo
//! AddTextToStore (8, <1.25)  C→D name text refs                        D→C path
//! BuildPaths (9)             C→D derivedPaths [≥1.15: mode]            D→C u64 1
//! BuildPathsWithResults (46) C→D derivedPaths mode                     D→C n × (derivedPath BuildResult)
//! BuildDerivation (36)       C→D drvPath BasicDerivation mode          D→C BuildResult
//! BuildResult                status errorMsg [≥1.29: timesBuilt isNonDet start stop]
//!                            [≥1.28: map<drvOutputId, realisationJson>]
//! QueryMissing (40)          C→D derivedPaths                          D→C willBuild willSubst unknown dlSize narSize
//! QueryDerivationOutputMap (41) C→D drvPath                            D→C map<name, path or "">
//! AddTempRoot (11), EnsurePath (10)  C→D path                          D→C u64 1
//! AddSignatures (37)         C→D path sigs                             D→C u64 1
//! SetOptions (19)            C→D 12 words [≥1.12: map<string,string>]  D→C nothing
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::store::{Hash, HashAlgo, StorePath, ValidPathInfo};

use super::op::Op;
use super::stderr::Verbosity;
use super::version::ProtocolVersion;
use super::wire::{DResult, DecodeError, Decoder, Encoder, invalid};

/// Start a request: the op code.
pub fn begin(e: &mut Encoder, op: Op) {
    if let Some(code) = op.code() {
        e.u64(code);
    }
}

pub fn put_path(e: &mut Encoder, p: &StorePath) {
    e.str(&p.to_absolute());
}

pub fn put_opt_path(e: &mut Encoder, p: Option<&StorePath>) {
    match p {
        Some(p) => put_path(e, p),
        None => {
            e.str("");
        }
    }
}

pub fn put_paths<'a, I>(e: &mut Encoder, paths: I)
where
    I: IntoIterator<Item = &'a StorePath>,
    I::IntoIter: ExactSizeIterator,
{
    let it = paths.into_iter();
    e.u64(it.len() as u64);
    for p in it {
        put_path(e, p);
    }
}

fn store_err<T>(what: &str, s: &str, e: impl fmt::Display) -> DResult<T> {
    invalid(format!("invalid {what} {s:?} from the daemon: {e}"))
}

pub fn get_path(d: &mut Decoder<'_>) -> DResult<StorePath> {
    let s = d.string()?;
    match StorePath::from_absolute_path(&s) {
        Ok(p) => Ok(p),
        Err(e) => store_err("store path", &s, e),
    }
}

pub fn get_opt_path(d: &mut Decoder<'_>) -> DResult<Option<StorePath>> {
    let s = d.string()?;
    if s.is_empty() {
        return Ok(None);
    }
    match StorePath::from_absolute_path(&s) {
        Ok(p) => Ok(Some(p)),
        Err(e) => store_err("store path", &s, e),
    }
}

pub fn get_paths(d: &mut Decoder<'_>) -> DResult<BTreeSet<StorePath>> {
    let n = d.count()?;
    let mut set = BTreeSet::new();
    for _ in 0..n {
        set.insert(get_path(d)?);
    }
    Ok(set)
}

/// NAR hashes travel as base16 without a prefix when Nix writes them; Nix's reader accepts any
/// base, with or without `sha256:`, so we do too.
fn get_nar_hash(d: &mut Decoder<'_>) -> DResult<Hash> {
    let s = d.string()?;
    let parsed = if s.contains(':') || s.contains('-') {
        Hash::parse_typed(&s)
    } else {
        Hash::parse_untyped(HashAlgo::Sha256, &s)
    };
    match parsed {
        Ok(h) if h.algo() == HashAlgo::Sha256 => Ok(h),
        Ok(h) => invalid(format!("NAR hash {s:?} is {}, not sha256", h.algo().name())),
        Err(e) => store_err("NAR hash", &s, e),
    }
}

/// Everything of a path info after the path (`UnkeyedValidPathInfo`).
pub fn get_unkeyed_path_info(
    d: &mut Decoder<'_>,
    path: StorePath,
    v: ProtocolVersion,
) -> DResult<ValidPathInfo> {
    let deriver = get_opt_path(d)?;
    let nar_hash = get_nar_hash(d)?;
    let references = get_paths(d)?;
    let registration_time = d.u64()?;
    let nar_size = d.u64()?;
    let (ultimate, sigs, ca) = if v.has(ProtocolVersion::PATH_INFO_SIGS) {
        let ultimate = d.bool()?;
        let sigs = d.strings()?.into_iter().collect();
        let ca = d.string()?;
        (ultimate, sigs, if ca.is_empty() { None } else { Some(ca) })
    } else {
        (false, BTreeSet::new(), None)
    };
    Ok(ValidPathInfo {
        path,
        deriver,
        nar_hash,
        references,
        registration_time,
        nar_size,
        ultimate,
        sigs,
        ca,
    })
}

/// A full `ValidPathInfo` (path first), in the layout of version `v`.
pub fn get_path_info(d: &mut Decoder<'_>, v: ProtocolVersion) -> DResult<ValidPathInfo> {
    let path = get_path(d)?;
    get_unkeyed_path_info(d, path, v)
}

/// A full `ValidPathInfo` in the ≥1.16 layout (what AddToStoreNar and AddMultipleToStore send,
/// whatever the negotiated version).
pub fn put_path_info(e: &mut Encoder, info: &ValidPathInfo) {
    put_path(e, &info.path);
    put_opt_path(e, info.deriver.as_ref());
    e.str(&info.nar_hash.to_base16());
    put_paths(e, &info.references);
    e.u64(info.registration_time);
    e.u64(info.nar_size);
    e.bool(info.ultimate);
    e.strs(&info.sigs);
    e.str(info.ca.as_deref().unwrap_or(""));
}

/// QueryPathInfo reply: `None` if the path is not valid (≥1.17; older daemons send an error).
pub fn get_query_path_info_reply(
    d: &mut Decoder<'_>,
    path: &StorePath,
    v: ProtocolVersion,
) -> DResult<Option<ValidPathInfo>> {
    if v.has(ProtocolVersion::PATH_INFO_VALID_FLAG) && !d.bool()? {
        return Ok(None);
    }
    get_unkeyed_path_info(d, path.clone(), v).map(Some)
}

/// Replies that are a bare `u64 1` (EnsurePath, AddTempRoot, AddSignatures, BuildPaths).
pub fn get_ok(d: &mut Decoder<'_>) -> DResult<()> {
    match d.u64()? {
        1 => Ok(()),
        v => invalid(format!("expected 1, got {v}")),
    }
}

/// Which outputs of a derivation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputsSpec {
    All,
    Names(BTreeSet<String>),
}

/// What to build or query: an existing path, or outputs of a derivation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DerivedPath {
    Opaque(StorePath),
    Built {
        drv: StorePath,
        outputs: OutputsSpec,
    },
}

impl DerivedPath {
    /// All outputs of a `.drv`, or the path itself otherwise.
    pub fn from_path(p: StorePath) -> Self {
        if p.is_derivation() {
            DerivedPath::Built {
                drv: p,
                outputs: OutputsSpec::All,
            }
        } else {
            DerivedPath::Opaque(p)
        }
    }

    /// The wire form: `drv!*` / `drv!a,b` from 1.30 on, `StorePathWithOutputs` before that (a
    /// bare `.drv` means all outputs).
    pub fn to_wire(&self, v: ProtocolVersion) -> String {
        match self {
            DerivedPath::Opaque(p) => p.to_absolute(),
            DerivedPath::Built { drv, outputs } => match outputs {
                OutputsSpec::All if v.has(ProtocolVersion::DERIVED_PATH) => {
                    format!("{}!*", drv.to_absolute())
                }
                OutputsSpec::All => drv.to_absolute(),
                OutputsSpec::Names(names) => {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    format!("{}!{}", drv.to_absolute(), names.join(","))
                }
            },
        }
    }
}

impl fmt::Display for DerivedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire(ProtocolVersion::CLIENT))
    }
}

pub fn put_derived_paths(e: &mut Encoder, paths: &[DerivedPath], v: ProtocolVersion) {
    e.u64(paths.len() as u64);
    for p in paths {
        e.str(&p.to_wire(v));
    }
}

/// Build mode for BuildPaths, BuildPathsWithResults and BuildDerivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildMode {
    #[default]
    Normal = 0,
    /// Trusted clients only.
    Repair = 1,
    Check = 2,
}

/// Outcome of a build (`BuildResult::Status`, append-only in Nix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStatus {
    Built,
    Substituted,
    AlreadyValid,
    PermanentFailure,
    InputRejected,
    OutputRejected,
    TransientFailure,
    CachedFailure,
    TimedOut,
    MiscFailure,
    DependencyFailed,
    LogLimitExceeded,
    NotDeterministic,
    ResolvesToAlreadyValid,
    NoSubstituters,
    Other(u64),
}

impl BuildStatus {
    pub fn from_wire(v: u64) -> Self {
        use BuildStatus::*;
        match v {
            0 => Built,
            1 => Substituted,
            2 => AlreadyValid,
            3 => PermanentFailure,
            4 => InputRejected,
            5 => OutputRejected,
            6 => TransientFailure,
            7 => CachedFailure,
            8 => TimedOut,
            9 => MiscFailure,
            10 => DependencyFailed,
            11 => LogLimitExceeded,
            12 => NotDeterministic,
            13 => ResolvesToAlreadyValid,
            14 => NoSubstituters,
            v => Other(v),
        }
    }

    pub fn is_success(self) -> bool {
        matches!(
            self,
            BuildStatus::Built
                | BuildStatus::Substituted
                | BuildStatus::AlreadyValid
                | BuildStatus::ResolvesToAlreadyValid
        )
    }
}

/// The result of building one derived path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    pub status: BuildStatus,
    pub error_msg: String,
    pub times_built: u64,
    pub is_non_deterministic: bool,
    pub start_time: u64,
    pub stop_time: u64,
    /// Output name → output path, from the realisations (≥1.28).
    pub built_outputs: BTreeMap<String, StorePath>,
}

fn get_realisation(d: &mut Decoder<'_>) -> DResult<(String, StorePath)> {
    let id = d.string()?;
    let json = d.string()?;
    // The id is "sha256:<hex>!<output>"; only the output name is meaningful to us.
    let Some((_, name)) = id.rsplit_once('!') else {
        return invalid(format!("malformed realisation id {id:?}"));
    };
    let value: serde_json::Value = match serde_json::from_str(&json) {
        Ok(v) => v,
        Err(e) => return invalid(format!("malformed realisation JSON: {e}")),
    };
    let Some(out) = value.get("outPath").and_then(|v| v.as_str()) else {
        return invalid("realisation without outPath");
    };
    // outPath is a base name; accept an absolute path too.
    let parsed = if out.starts_with('/') {
        StorePath::from_absolute_path(out)
    } else {
        StorePath::from_base_name(out)
    };
    match parsed {
        Ok(p) => Ok((name.to_owned(), p)),
        Err(e) => store_err("realisation outPath", out, e),
    }
}

pub fn get_build_result(d: &mut Decoder<'_>, v: ProtocolVersion) -> DResult<BuildResult> {
    let status = BuildStatus::from_wire(d.u64()?);
    let error_msg = d.lossy_string()?;
    let (mut times_built, mut is_non_deterministic, mut start_time, mut stop_time) =
        (0, false, 0, 0);
    if v.has(ProtocolVersion::BUILD_TIMES) {
        times_built = d.u64()?;
        is_non_deterministic = d.bool()?;
        start_time = d.u64()?;
        stop_time = d.u64()?;
    }
    let mut built_outputs = BTreeMap::new();
    if v.has(ProtocolVersion::BUILT_OUTPUTS) {
        let n = d.count()?;
        for _ in 0..n {
            let (name, path) = get_realisation(d)?;
            built_outputs.insert(name, path);
        }
    }
    Ok(BuildResult {
        status,
        error_msg,
        times_built,
        is_non_deterministic,
        start_time,
        stop_time,
        built_outputs,
    })
}

/// A build result together with the derived path it is for (as the daemon echoed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedBuildResult {
    pub path: String,
    pub result: BuildResult,
}

pub fn get_keyed_build_results(
    d: &mut Decoder<'_>,
    v: ProtocolVersion,
) -> DResult<Vec<KeyedBuildResult>> {
    let n = d.count()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let path = d.string()?;
        let result = get_build_result(d, v)?;
        out.push(KeyedBuildResult { path, result });
    }
    Ok(out)
}

/// QueryMissing's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Missing {
    pub will_build: BTreeSet<StorePath>,
    pub will_substitute: BTreeSet<StorePath>,
    pub unknown: BTreeSet<StorePath>,
    pub download_size: u64,
    pub nar_size: u64,
}

pub fn get_missing(d: &mut Decoder<'_>) -> DResult<Missing> {
    Ok(Missing {
        will_build: get_paths(d)?,
        will_substitute: get_paths(d)?,
        unknown: get_paths(d)?,
        download_size: d.u64()?,
        nar_size: d.u64()?,
    })
}

pub fn get_output_map(d: &mut Decoder<'_>) -> DResult<BTreeMap<String, Option<StorePath>>> {
    let n = d.count()?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let name = d.string()?;
        let path = get_opt_path(d)?;
        m.insert(name, path);
    }
    Ok(m)
}

/// One output of a [`BasicDerivation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivationOutput {
    /// `None` for floating content-addressed outputs.
    pub path: Option<StorePath>,
    /// "" for input-addressed, "sha256" flat, "r:sha256" recursive.
    pub hash_algo: String,
    /// base16 for fixed outputs, "" otherwise.
    pub hash: String,
}

/// A derivation as BuildDerivation sends it: input derivations already resolved into
/// `input_srcs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicDerivation {
    pub outputs: BTreeMap<String, DerivationOutput>,
    pub input_srcs: BTreeSet<StorePath>,
    pub platform: String,
    pub builder: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

pub fn put_basic_derivation(e: &mut Encoder, drv: &BasicDerivation) {
    e.u64(drv.outputs.len() as u64);
    for (name, out) in &drv.outputs {
        e.str(name);
        put_opt_path(e, out.path.as_ref());
        e.str(&out.hash_algo).str(&out.hash);
    }
    put_paths(e, &drv.input_srcs);
    e.str(&drv.platform).str(&drv.builder).strs(&drv.args);
    e.u64(drv.env.len() as u64);
    for (k, v) in &drv.env {
        e.str(k).str(v);
    }
}

/// How AddToStore hashes what it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentAddressMethod {
    /// `text:sha256`: the data is the file's contents (like `builtins.toFile`).
    Text,
    /// `fixed:<algo>`: the data is a flat file's contents.
    Flat(HashAlgo),
    /// `fixed:r:<algo>`: the data is a NAR.
    Recursive(HashAlgo),
}

impl ContentAddressMethod {
    pub fn to_wire(self) -> String {
        match self {
            ContentAddressMethod::Text => "text:sha256".to_owned(),
            ContentAddressMethod::Flat(a) => format!("fixed:{}", a.name()),
            ContentAddressMethod::Recursive(a) => format!("fixed:r:{}", a.name()),
        }
    }
}

/// The SetOptions settings ferry sends. Untrusted clients only get a few overrides honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub keep_failed: bool,
    pub keep_going: bool,
    pub try_fallback: bool,
    pub verbosity: Verbosity,
    /// Never 0: that means "no local builds".
    pub max_build_jobs: u64,
    pub max_silent_time: u64,
    pub verbose_build: bool,
    /// 0 = all cores.
    pub build_cores: u64,
    pub use_substitutes: bool,
    pub overrides: BTreeMap<String, String>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            keep_failed: false,
            keep_going: false,
            try_fallback: false,
            verbosity: Verbosity::Error,
            max_build_jobs: 1,
            max_silent_time: 0,
            verbose_build: true,
            build_cores: 0,
            use_substitutes: true,
            overrides: BTreeMap::new(),
        }
    }
}

pub fn put_settings(e: &mut Encoder, s: &ClientSettings, v: ProtocolVersion) {
    e.bool(s.keep_failed)
        .bool(s.keep_going)
        .bool(s.try_fallback)
        .u64(s.verbosity as u64)
        .u64(s.max_build_jobs.max(1))
        .u64(s.max_silent_time)
        .u64(1) // obsolete useBuildHook
        // The daemon sets verboseBuild = (value == lvlError).
        .u64(if s.verbose_build {
            Verbosity::Error as u64
        } else {
            Verbosity::Vomit as u64
        })
        .u64(0) // obsolete logType
        .u64(0) // obsolete printBuildTrace
        .u64(s.build_cores)
        .bool(s.use_substitutes);
    if v.has(ProtocolVersion::SETTINGS_OVERRIDES) {
        e.u64(s.overrides.len() as u64);
        for (k, val) in &s.overrides {
            e.str(k).str(val);
        }
    }
}

/// Run one of the reply decoders (chosen by `selector`) over `data` and return how many bytes it
/// consumed. This is the fuzzing entry point (`fuzz/fuzz_targets/daemon_reply.rs`): every decoder
/// must return `Ok`, `Incomplete` or `Invalid` on any input, never panic, and never allocate more
/// than the input justifies. Bit 7 of `selector` picks the 1.34 layouts, otherwise 1.25 (no
/// BuildResult times, old error format).
pub fn decode_reply_for_fuzzing(selector: u8, data: &[u8]) -> DResult<usize> {
    let v = if selector & 0x80 != 0 {
        ProtocolVersion::new(1, 34)
    } else {
        ProtocolVersion::new(1, 25)
    };
    let mut d = Decoder::new(data);
    match (selector & 0x7f) % 10 {
        0 => get_path_info(&mut d, v).map(drop),
        1 => {
            let p = match StorePath::from_base_name("00000000000000000000000000000000-x") {
                Ok(p) => p,
                Err(_) => return invalid("fixture"),
            };
            get_query_path_info_reply(&mut d, &p, v).map(drop)
        }
        2 => get_paths(&mut d).map(drop),
        3 => get_keyed_build_results(&mut d, v).map(drop),
        4 => get_build_result(&mut d, v).map(drop),
        5 => get_missing(&mut d).map(drop),
        6 => get_output_map(&mut d).map(drop),
        7 => super::stderr::decode(&mut d, v).map(drop),
        8 => d.strings().map(drop),
        _ => super::handshake::decode_server_version(&mut d, ProtocolVersion::CLIENT)
            .and_then(|(dv, n)| super::handshake::decode_server_info(&mut d, dv, n))
            .map(drop),
    }?;
    Ok(d.position())
}

/// The invariant the client's incremental reading relies on: if a decoder accepts `data` using
/// `n` bytes, it answers `Incomplete` for every shorter prefix (never `Invalid`, never a value).
pub fn check_prefix_invariant(selector: u8, data: &[u8]) -> bool {
    match decode_reply_for_fuzzing(selector, data) {
        Ok(n) => (0..n).all(|cut| {
            decode_reply_for_fuzzing(selector, &data[..cut]) == Err(DecodeError::Incomplete)
        }),
        Err(_) => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> StorePath {
        StorePath::from_base_name(s).unwrap()
    }

    #[test]
    fn path_info_round_trips_in_the_1_16_layout() {
        let info = ValidPathInfo {
            path: p("dcgxgfrhy8mb76rg8f1djpw23cl3fzmx-a"),
            deriver: Some(p("9kgc4kbilwricwa5g0y66zbnxkz66hkr-a.drv")),
            nar_hash: Hash::sha256_of(b"x"),
            references: [p("xmy64pbaynfirn4h6wwjanqsvy3129ps-b")].into(),
            registration_time: 1795305672,
            nar_size: 120,
            ultimate: true,
            sigs: ["k:abc".to_owned()].into(),
            ca: None,
        };
        let mut e = Encoder::new();
        put_path_info(&mut e, &info);
        let b = e.into_bytes();
        let mut d = Decoder::new(&b);
        assert_eq!(
            get_path_info(&mut d, ProtocolVersion::new(1, 34)).unwrap(),
            info
        );
        d.finish().unwrap();
        for cut in 0..b.len() {
            assert_eq!(
                get_path_info(&mut Decoder::new(&b[..cut]), ProtocolVersion::new(1, 34)),
                Err(DecodeError::Incomplete)
            );
        }
    }

    #[test]
    fn derived_paths_by_version() {
        let drv = p("9kgc4kbilwricwa5g0y66zbnxkz66hkr-a.drv");
        let all = DerivedPath::from_path(drv.clone());
        assert_eq!(
            all.to_wire(ProtocolVersion::new(1, 34)),
            "/nix/store/9kgc4kbilwricwa5g0y66zbnxkz66hkr-a.drv!*"
        );
        assert_eq!(
            all.to_wire(ProtocolVersion::new(1, 21)),
            "/nix/store/9kgc4kbilwricwa5g0y66zbnxkz66hkr-a.drv"
        );
        let named = DerivedPath::Built {
            drv,
            outputs: OutputsSpec::Names(["out".to_owned(), "dev".to_owned()].into()),
        };
        assert_eq!(
            named.to_wire(ProtocolVersion::new(1, 34)),
            "/nix/store/9kgc4kbilwricwa5g0y66zbnxkz66hkr-a.drv!dev,out"
        );
    }

    #[test]
    fn decodes_the_verified_build_result() {
        let mut e = Encoder::new();
        e.u64(1)
            .str("/nix/store/9kgc4kbilwricwa5g0y66zbnxkz66hkr-a.drv!*")
            .u64(2)
            .str("")
            .u64(0)
            .u64(0)
            .u64(0)
            .u64(0)
            .u64(1)
            .str("sha256:b9a7!out")
            .str(r#"{"dependentRealisations":{},"id":"sha256:b9a7!out","outPath":"dcgxgfrhy8mb76rg8f1djpw23cl3fzmx-a","signatures":[]}"#);
        let b = e.into_bytes();
        let mut d = Decoder::new(&b);
        let r = get_keyed_build_results(&mut d, ProtocolVersion::new(1, 34)).unwrap();
        d.finish().unwrap();
        assert_eq!(r[0].result.status, BuildStatus::AlreadyValid);
        assert_eq!(
            r[0].result.built_outputs.get("out"),
            Some(&p("dcgxgfrhy8mb76rg8f1djpw23cl3fzmx-a"))
        );
    }

    /// Valid replies of every decoder, to mutate.
    fn seeds() -> Vec<(u8, Vec<u8>)> {
        let info = ValidPathInfo {
            path: p("dcgxgfrhy8mb76rg8f1djpw23cl3fzmx-a"),
            deriver: Some(p("9kgc4kbilwricwa5g0y66zbnxkz66hkr-a.drv")),
            nar_hash: Hash::sha256_of(b"x"),
            references: [p("xmy64pbaynfirn4h6wwjanqsvy3129ps-b")].into(),
            registration_time: 1,
            nar_size: 120,
            ultimate: false,
            sigs: ["k:abc".to_owned()].into(),
            ca: Some("text:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s".into()),
        };
        let mut out = Vec::new();
        let mut e = Encoder::new();
        put_path_info(&mut e, &info);
        out.push((0x80, e.as_slice().to_vec()));
        let mut q = Encoder::new();
        q.u64(1).raw(&e.as_slice()[56..]);
        out.push((0x81, q.into_bytes()));
        let mut e = Encoder::new();
        e.u64(2)
            .str("/nix/store/dcgxgfrhy8mb76rg8f1djpw23cl3fzmx-a")
            .str("/nix/store/xmy64pbaynfirn4h6wwjanqsvy3129ps-b");
        out.push((0x82, e.into_bytes()));
        let mut e = Encoder::new();
        e.u64(0).u64(0).u64(0).u64(7).u64(9);
        out.push((0x85, e.into_bytes()));
        let mut e = Encoder::new();
        e.u64(1)
            .str("out")
            .str("/nix/store/dcgxgfrhy8mb76rg8f1djpw23cl3fzmx-a");
        out.push((0x86, e.into_bytes()));
        out
    }

    #[test]
    fn fuzz_entry_point_survives_garbage() {
        for op in 0..=255u8 {
            for data in [&[][..], &[0xff; 64][..], &[1, 0, 0, 0, 0, 0, 0, 0][..]] {
                let _ = decode_reply_for_fuzzing(op, data);
            }
        }
        for (sel, data) in seeds() {
            assert!(
                decode_reply_for_fuzzing(sel, &data).is_ok(),
                "seed {sel:#x}"
            );
            assert!(check_prefix_invariant(sel, &data));
        }
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic_on_random_bytes(sel in proptest::num::u8::ANY, data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            proptest::prop_assert!(check_prefix_invariant(sel, &data));
        }

        #[test]
        fn decoders_never_panic_on_mutated_replies(
            which in 0usize..5,
            flips in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 1..4),
            cut in proptest::num::usize::ANY,
        ) {
            let seeds = seeds();
            let (sel, mut data) = seeds[which % seeds.len()].clone();
            for (pos, val) in flips {
                let i = pos % data.len();
                data[i] = val;
            }
            let cut = cut % (data.len() + 1);
            proptest::prop_assert!(check_prefix_invariant(sel, &data[..cut]));
            proptest::prop_assert!(check_prefix_invariant(sel, &data));
        }
    }
}
