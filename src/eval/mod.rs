//! (eval layer: not written yet.)
