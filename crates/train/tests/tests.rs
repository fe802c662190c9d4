//! The train crate's integration tests, one binary (ripgrep's layout): one module per
//! topic; shared helpers in `common`.

mod bad_input;
mod common;
mod compute;
mod config;
mod dropout;
mod full_disk;
mod fuzz;
mod hub;
mod interp;
mod nanogpt;
mod optim;
mod overfit;
mod recall;
mod regression;
mod reliability;
mod resume;
mod rundir;
mod same_seed;
mod sweep_plan;
mod task_report;
mod token_ids;
mod tokenizer;
mod tune;
