//! One module per subcommand; each is glue over the library crates.

pub mod augment;
pub mod bench;
pub mod eval;
pub mod metrics;
pub mod sample;
pub mod sweep;
pub mod sweep_run;
pub mod train;
