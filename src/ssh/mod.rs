//! (ssh layer: not written yet.)
