//! The cli crate's integration tests, one binary (ripgrep's layout): one module per
//! topic.

mod bench;
mod checkpoints;
mod common;
mod faults;
mod slurm;
mod sweep;
mod train_sample;
