//! (syntax layer: not written yet.)
