//! Attention-layer benchmark (criterion).

fn main() {}
