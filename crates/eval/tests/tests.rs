//! The eval crate's integration tests, one binary (ripgrep's layout): one module per
//! topic; shared helpers in `common`. The sweep test is its own binary.

mod common;
mod diagnostics;
mod findings;
mod geometry;
mod honest;
mod icl;
mod report;
mod scaling;
mod stats;
