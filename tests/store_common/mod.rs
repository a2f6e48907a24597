//! Shared helpers of the `store_*` integration tests: running real Nix, the vendored vectors, and
//! random trees. Tests fail loudly when Nix is missing; CI installs it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `vendor/store` in the source tree.
pub fn vendor() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor/store")
}

/// Run a command, panic with its stderr if it fails, return stdout.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?} (is Nix installed? CI installs nix-bin): {e}")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Like [`run`], trimmed text.
pub fn run_text(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd)).unwrap().trim().to_owned()
}

/// A Nix command with substituters off (there is no network; Nix would wait on cache.nixos.org).
pub fn nix(program: &str) -> Command {
    let mut c = Command::new(program);
    c.args(["--option", "substituters", ""]);
    c
}

/// `nix` with the nix-command experimental feature (Nix 2.8).
pub fn nix_cmd() -> Command {
    let mut c = Command::new("nix");
    c.args([
        "--extra-experimental-features",
        "nix-command",
        "--option",
        "substituters",
        "",
    ]);
    c
}

/// Build one of the vendored trees with `vendor/store/make-tree.sh`.
pub fn make_tree(tree: &str, dest: &Path) {
    run(Command::new("sh")
        .arg(vendor().join("make-tree.sh"))
        .arg(tree)
        .arg(dest));
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce from the printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// A valid NAR entry name: 1–20 bytes, any byte but NUL and '/', not "." or "..".
    pub fn entry_name(&mut self) -> Vec<u8> {
        loop {
            let len = 1 + self.below(20) as usize;
            let name: Vec<u8> = (0..len)
                .map(|_| match self.below(4) {
                    // Mostly printable, sometimes any byte, to exercise bytewise sorting.
                    0 => 1 + self.below(255) as u8,
                    _ => b"abcXYZ019._-+ ~"[self.below(15) as usize],
                })
                .map(|b| if b == b'/' { b'_' } else { b })
                .collect();
            if name != b"." && name != b".." {
                return name;
            }
        }
    }
}

/// Write a random tree with every node type at `path`; `depth` bounds nesting.
pub fn random_tree(rng: &mut Rng, path: &Path, depth: u32) {
    // At the depth limit only leaves (file or symlink).
    let kind = if depth == 0 {
        rng.below(2)
    } else {
        rng.below(5)
    };
    match kind {
        0 => {
            let size = match rng.below(4) {
                0 => rng.below(17) as usize,
                1 => rng.below(5000) as usize,
                2 => 0,
                _ => rng.below(100_000) as usize,
            };
            std::fs::write(path, rng.bytes(size)).unwrap();
            let mode = if rng.below(3) == 0 { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        1 => {
            let target = rng.entry_name();
            std::os::unix::fs::symlink(OsStr::from_bytes(&target), path).unwrap();
        }
        _ => {
            std::fs::create_dir(path).unwrap();
            for _ in 0..rng.below(7) {
                let child = path.join(OsStr::from_bytes(&rng.entry_name()));
                if std::fs::symlink_metadata(&child).is_err() {
                    random_tree(rng, &child, depth.saturating_sub(1));
                }
            }
        }
    }
}

/// Parse a narinfo into (key, value) lines.
pub fn narinfo_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The path info a narinfo describes (references and deriver are base names there).
pub fn narinfo_to_path_info(text: &str) -> ferry::store::ValidPathInfo {
    use ferry::store::{Hash, StorePath, ValidPathInfo};
    let f = narinfo_fields(text);
    let get = |k: &str| f.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let mut info = ValidPathInfo::new(
        StorePath::from_absolute_path(&get("StorePath").unwrap()).unwrap(),
        Hash::parse_typed(&get("NarHash").unwrap()).unwrap(),
        get("NarSize").unwrap().parse().unwrap(),
    );
    for r in get("References").unwrap_or_default().split_whitespace() {
        info.references
            .insert(StorePath::from_base_name(r).unwrap());
    }
    info.deriver = get("Deriver").map(|d| StorePath::from_base_name(&d).unwrap());
    for (k, v) in &f {
        if k == "Sig" {
            info.sigs.insert(v.clone());
        }
    }
    info
}
