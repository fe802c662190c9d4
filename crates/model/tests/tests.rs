//! The model crate's integration tests, one binary (ripgrep's layout): every module below is a
//! group of tests; `util` holds the helpers they share.

mod checkpoint;
#[cfg(feature = "cuda")]
mod cuda;
mod dropout;
mod fused_attention;
mod fused_gpt;
mod fused_layers;
mod gpt;
mod interp;
mod metric;
mod qk;
mod qk_tied;
mod route;
mod threads;
mod util;
