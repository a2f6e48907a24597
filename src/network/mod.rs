//! (network layer: not written yet.)
