//! (state layer: not written yet.)
