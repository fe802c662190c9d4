//! One module per subcommand; each is glue over the library crates.

pub mod bench;
pub mod metrics;
