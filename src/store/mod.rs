//! Store formats: store paths, hashes, nixbase32, NAR and signatures.
//!
//! Layer: lowest. Pure and synchronous; must not depend on tokio or on any other ferry module.
