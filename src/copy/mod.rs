//! (copy layer: not written yet.)
