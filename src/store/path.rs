//! Store paths: `/nix/store/<32 nix32 chars>-<name>`, validated once at the edge, and their
//! computation from contents (`makeStorePath`, `store-api.cc` in Nix 2.8).
//!
//! Layer: store (pure, sync). No other ferry module.

use std::fmt;

use super::hash::{Hash, HashAlgo, hex};
use super::{Error, Result, excerpt, nixbase32};

/// The store directory. ferry only deals with the default store location.
pub const STORE_DIR: &str = "/nix/store";

/// Length of the hash part of a store path's base name.
pub const HASH_PART_LEN: usize = 32;

/// Longest name Nix 2.8 allows (`checkName`).
pub const MAX_NAME_LEN: usize = 211;

/// A validated store path. Ordered by base name (hash part first), as Nix orders `StorePath`s.
/// `Debug` shows the absolute path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    // `base` first so that the derived `Ord` compares base names; `digest` is a function of it.
    base: Box<str>,
    digest: [u8; 20],
}

impl StorePath {
    /// Parse `<32 nix32 chars>-<name>`.
    pub fn from_base_name(s: &str) -> Result<StorePath> {
        let bad = |reason: String| Error::BadStorePath {
            path: excerpt(s),
            reason,
        };
        let (hash, name) = match (s.get(..HASH_PART_LEN), s.get(HASH_PART_LEN..)) {
            (Some(h), Some(rest)) if rest.starts_with('-') => (h, &rest[1..]),
            _ => return Err(bad("expected '<32-char hash>-<name>'".to_owned())),
        };
        let digest = nixbase32::decode(hash).map_err(|e| bad(format!("bad hash part: {e}")))?;
        let digest: [u8; 20] = digest
            .try_into()
            .map_err(|_| bad("hash part is not 20 bytes".to_owned()))?;
        check_name(name).map_err(|e| bad(e.to_string()))?;
        Ok(StorePath {
            base: s.into(),
            digest,
        })
    }

    /// Parse `/nix/store/<base>` exactly, with no trailing components or slashes.
    pub fn from_absolute_path(s: &str) -> Result<StorePath> {
        let base = strip_store_dir(s)?;
        if base.contains('/') {
            return Err(Error::BadStorePath {
                path: excerpt(s),
                reason: "has components after the store path".to_owned(),
            });
        }
        StorePath::from_base_name(base)
    }

    /// Split `/nix/store/<base>/sub/dir` into the store path and `/sub/dir` (empty when there is none).
    pub fn from_absolute_path_prefix(s: &str) -> Result<(StorePath, String)> {
        let rest = strip_store_dir(s)?;
        let (base, sub) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        Ok((StorePath::from_base_name(base)?, sub.to_owned()))
    }

    /// Build a store path from its digest and name.
    pub fn from_parts(digest: [u8; 20], name: &str) -> Result<StorePath> {
        check_name(name)?;
        Ok(StorePath {
            base: format!("{}-{}", nixbase32::encode(&digest), name).into(),
            digest,
        })
    }

    /// The 20-byte digest.
    pub fn digest(&self) -> &[u8; 20] {
        &self.digest
    }

    /// The 32-character nix32 hash part.
    pub fn hash_part(&self) -> String {
        self.base[..HASH_PART_LEN].to_owned()
    }

    /// The name after the hash part.
    pub fn name(&self) -> &str {
        &self.base[HASH_PART_LEN + 1..]
    }

    /// `<hash>-<name>`.
    pub fn base_name(&self) -> String {
        self.base.to_string()
    }

    /// `/nix/store/<hash>-<name>`.
    pub fn to_absolute(&self) -> String {
        format!("{STORE_DIR}/{}", self.base)
    }

    /// Whether the name ends with `.drv`.
    pub fn is_derivation(&self) -> bool {
        self.name().ends_with(".drv")
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({self})")
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STORE_DIR}/{}", self.base)
    }
}

impl std::str::FromStr for StorePath {
    type Err = Error;
    fn from_str(s: &str) -> Result<StorePath> {
        StorePath::from_absolute_path(s)
    }
}

impl serde::Serialize for StorePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for StorePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StorePath, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        StorePath::from_absolute_path(&s).map_err(serde::de::Error::custom)
    }
}

fn strip_store_dir(s: &str) -> Result<&str> {
    s.strip_prefix(STORE_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| Error::BadStorePath {
            path: excerpt(s),
            reason: format!("not in {STORE_DIR}"),
        })
}

/// Nix's name rules: 1–211 characters of `[0-9a-zA-Z+-._?=]`. Like newer Nix, also refuse
/// `.`, `..` and names starting with `.-` or `..-`, which 2.8 allowed by accident.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |reason| Error::BadName {
        name: excerpt(name),
        reason,
    };
    if name.is_empty() {
        return Err(bad("name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("name is longer than 211 characters"));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"+-._?=".contains(&c))
    {
        return Err(bad("name contains a character outside [0-9a-zA-Z+-._?=]"));
    }
    if name == "." || name == ".." || name.starts_with(".-") || name.starts_with("..-") {
        return Err(bad("name is '.' or '..' (optionally followed by '-')"));
    }
    Ok(())
}

/// XOR-fold a digest into `N` bytes (`compressHash`).
pub fn compress_hash<const N: usize>(digest: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in digest.iter().enumerate() {
        out[i % N] ^= b;
    }
    out
}

/// `makeStorePath(type, hash, name)`: `sha256("<type>:sha256:<hex>:/nix/store:<name>")`, folded to 20 bytes.
pub fn make_store_path(path_type: &str, inner: &Hash, name: &str) -> Result<StorePath> {
    check_name(name)?;
    let s = format!(
        "{path_type}:{}:{}:{STORE_DIR}:{name}",
        inner.algo(),
        inner.to_base16()
    );
    let h = Hash::sha256_of(s.as_bytes());
    StorePath::from_parts(compress_hash::<20>(h.digest()), name)
}

/// The type string of text and source paths: `<kind>:<ref1>:<ref2>…[:self]`.
fn type_with_refs<'a>(
    kind: &str,
    references: impl IntoIterator<Item = &'a StorePath>,
    has_self_reference: bool,
) -> String {
    let mut refs: Vec<String> = references.into_iter().map(|r| r.to_absolute()).collect();
    refs.sort();
    let mut t = kind.to_owned();
    for r in refs {
        t.push(':');
        t.push_str(&r);
    }
    if has_self_reference {
        t.push_str(":self");
    }
    t
}

/// How the contents of a content-addressed path were hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileIngestionMethod {
    /// The file's bytes (`nix-store --print-fixed-path` without `--recursive`).
    Flat,
    /// The NAR serialisation of the tree (`--recursive`, `nix-store --add`).
    Recursive,
}

/// The store path of a text file (`builtins.toFile`, `.drv` files): `makeTextPath`.
/// `content_hash` is sha256 of the contents.
pub fn make_text_path<'a>(
    name: &str,
    content_hash: &Hash,
    references: impl IntoIterator<Item = &'a StorePath>,
) -> Result<StorePath> {
    if content_hash.algo() != HashAlgo::Sha256 {
        return Err(Error::BadHash {
            input: content_hash.to_string(),
            reason: "text paths are hashed with sha256".to_owned(),
        });
    }
    make_store_path(
        &type_with_refs("text", references, false),
        content_hash,
        name,
    )
}

/// The store path of a content-addressed path (`makeFixedOutputPath`): recursive sha256 gives a
/// "source" path that may have references (what `nix-store --add` makes); anything else gives an
/// `output:out` path over `fixed:out:[r:]<algo>:<hex>:` and must have no references.
pub fn make_fixed_output_path<'a>(
    name: &str,
    method: FileIngestionMethod,
    hash: &Hash,
    references: impl IntoIterator<Item = &'a StorePath>,
    has_self_reference: bool,
) -> Result<StorePath> {
    if method == FileIngestionMethod::Recursive && hash.algo() == HashAlgo::Sha256 {
        return make_store_path(
            &type_with_refs("source", references, has_self_reference),
            hash,
            name,
        );
    }
    if references.into_iter().next().is_some() || has_self_reference {
        return Err(Error::BadStorePath {
            path: name.to_owned(),
            reason: "a fixed-output path other than recursive sha256 cannot have references"
                .to_owned(),
        });
    }
    let r = if method == FileIngestionMethod::Recursive {
        "r:"
    } else {
        ""
    };
    let inner = format!("fixed:out:{r}{}:{}:", hash.algo(), hex(hash.digest()));
    make_store_path("output:out", &Hash::sha256_of(inner.as_bytes()), name)
}

/// A content address, as in the `ca` field of path infos (`content-address.cc`):
/// `text:sha256:<hash>`, `fixed:r:<algo>:<hash>` (NAR) or `fixed:<algo>:<hash>` (flat file).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ContentAddress {
    /// A text file (`builtins.toFile`, `.drv`), hashed with sha256.
    Text(Hash),
    /// A fixed-output path.
    Fixed(FileIngestionMethod, Hash),
}

impl ContentAddress {
    /// Parse a `ca` string; the hash may be in any base Nix accepts.
    pub fn parse(s: &str) -> Result<ContentAddress> {
        let bad = |reason: &str| Error::BadHash {
            input: excerpt(s),
            reason: format!("invalid content address: {reason}"),
        };
        if let Some(rest) = s.strip_prefix("text:") {
            let h = Hash::parse_typed(rest)?;
            if h.algo() != HashAlgo::Sha256 {
                return Err(bad("text content addresses use sha256"));
            }
            return Ok(ContentAddress::Text(h));
        }
        if let Some(rest) = s.strip_prefix("fixed:") {
            let (method, rest) = match rest.strip_prefix("r:") {
                Some(r) => (FileIngestionMethod::Recursive, r),
                None => (FileIngestionMethod::Flat, rest),
            };
            return Ok(ContentAddress::Fixed(method, Hash::parse_typed(rest)?));
        }
        Err(bad("expected 'text:' or 'fixed:'"))
    }

    /// The store path of an object with this content address, name and references.
    pub fn store_path<'a>(
        &self,
        name: &str,
        references: impl IntoIterator<Item = &'a StorePath>,
        has_self_reference: bool,
    ) -> Result<StorePath> {
        match self {
            ContentAddress::Text(h) => {
                if has_self_reference {
                    return Err(Error::BadStorePath {
                        path: name.to_owned(),
                        reason: "a text path cannot refer to itself".to_owned(),
                    });
                }
                make_text_path(name, h, references)
            }
            ContentAddress::Fixed(m, h) => {
                make_fixed_output_path(name, *m, h, references, has_self_reference)
            }
        }
    }
}

impl fmt::Display for ContentAddress {
    /// The form Nix records: hashes in nix32 with their algorithm.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentAddress::Text(h) => write!(f, "text:{}", h.to_typed_nix32()),
            ContentAddress::Fixed(FileIngestionMethod::Recursive, h) => {
                write!(f, "fixed:r:{}", h.to_typed_nix32())
            }
            ContentAddress::Fixed(FileIngestionMethod::Flat, h) => {
                write!(f, "fixed:{}", h.to_typed_nix32())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: &str = "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-hello.txt";

    #[test]
    fn parse_and_print() {
        let p = StorePath::from_absolute_path(P).unwrap();
        assert_eq!(p.to_string(), P);
        assert_eq!(p.to_absolute(), P);
        assert_eq!(p.name(), "hello.txt");
        assert_eq!(p.hash_part(), "qa1w9gdfrba6jl2r57mb3c43863gqywp");
        assert_eq!(p.base_name(), "qa1w9gdfrba6jl2r57mb3c43863gqywp-hello.txt");
        assert!(!p.is_derivation());
        assert_eq!(StorePath::from_parts(*p.digest(), "hello.txt").unwrap(), p);
        let (q, sub) = StorePath::from_absolute_path_prefix(&format!("{P}/bin/sh")).unwrap();
        assert_eq!((q, sub.as_str()), (p.clone(), "/bin/sh"));
        let (q, sub) = StorePath::from_absolute_path_prefix(P).unwrap();
        assert_eq!((q, sub.as_str()), (p.clone(), ""));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{P}\""));
        assert_eq!(serde_json::from_str::<StorePath>(&json).unwrap(), p);
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "/nix/store",
            "/nix/store/",
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp",
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-",
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywe-x",
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqyw-x",
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-a b",
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-a/b",
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-hello.txt/",
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-..",
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-é",
            "/nix/storeqa1w9gdfrba6jl2r57mb3c43863gqywp-x",
            "/tmp/qa1w9gdfrba6jl2r57mb3c43863gqywp-x",
            "qa1w9gdfrba6jl2r57mb3c43863gqywp-x",
        ] {
            assert!(StorePath::from_absolute_path(bad).is_err(), "{bad:?}");
        }
        let long = format!(
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-{}",
            "a".repeat(212)
        );
        assert!(StorePath::from_absolute_path(&long).is_err());
        let ok = format!(
            "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-{}",
            "a".repeat(211)
        );
        assert!(StorePath::from_absolute_path(&ok).is_ok());
    }

    #[test]
    fn ordering_is_by_base_name() {
        let a = StorePath::from_base_name("00000000000000000000000000000000-z").unwrap();
        let b = StorePath::from_base_name("10000000000000000000000000000000-a").unwrap();
        assert!(a < b);
    }

    /// Reference computations from nix-protocol.md §7.4, checked against real Nix there; the
    /// differential tests in tests/store_paths.rs check many more against the installed Nix.
    #[test]
    fn computed_paths() {
        let contents = b"hello\n";
        let text = make_text_path("hello.txt", &Hash::sha256_of(contents), []).unwrap();
        assert_eq!(text.to_string(), P);
        let flat = make_fixed_output_path(
            "hello.txt",
            FileIngestionMethod::Flat,
            &Hash::sha256_of(contents),
            [],
            false,
        )
        .unwrap();
        assert_eq!(
            flat.to_string(),
            "/nix/store/gy454w1cxaq731grqwylhzf4pp9r5izh-hello.txt"
        );
    }

    #[test]
    fn content_addresses() {
        // The CA nix-store --add recorded for hello.txt (vendor/regen.sh's narinfo in a file:// cache).
        let ca = "fixed:r:sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw";
        let parsed = ContentAddress::parse(ca).unwrap();
        assert_eq!(parsed.to_string(), ca);
        assert_eq!(
            parsed
                .store_path("hello.txt", [], false)
                .unwrap()
                .to_string(),
            "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"
        );
        let text = ContentAddress::Text(Hash::sha256_of(b"hello\n"));
        assert_eq!(ContentAddress::parse(&text.to_string()).unwrap(), text);
        assert_eq!(
            text.store_path("hello.txt", [], false).unwrap().to_string(),
            P
        );
        let flat = ContentAddress::parse(&format!("fixed:sha1:{}", "0".repeat(40))).unwrap();
        assert!(matches!(
            flat,
            ContentAddress::Fixed(FileIngestionMethod::Flat, _)
        ));
        for bad in [
            "",
            "text:sha1:0000000000000000000000000000000000000000",
            "fixed:r:sha256",
            "nar:sha256:00",
        ] {
            assert!(ContentAddress::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn roundtrip(digest in any::<[u8; 20]>(), name in "[0-9a-zA-Z+._?=-]{1,211}") {
            prop_assume!(check_name(&name).is_ok());
            let p = StorePath::from_parts(digest, &name).unwrap();
            prop_assert_eq!(StorePath::from_absolute_path(&p.to_absolute()).unwrap(), p.clone());
            prop_assert_eq!(StorePath::from_base_name(&p.base_name()).unwrap(), p);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = StorePath::from_absolute_path(&s);
            let _ = StorePath::from_absolute_path_prefix(&s);
            let _ = StorePath::from_base_name(&s);
        }
    }
}
