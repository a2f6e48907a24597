//! `src/store/` compiled on its own for fuzzing: `crate::store` resolves to the same paths as in
//! ferry. See Cargo.toml for why.

#[path = "../src/store/mod.rs"]
pub mod store;
