//! (deploy layer: not written yet.)
