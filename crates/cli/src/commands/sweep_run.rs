//! `attnlab sweep-run DIR` (hidden): one job of `attnlab sweep --jobs N`. Reads the run's plan
//! (JSON) from stdin, trains it in DIR as the sweep would in-process (claim, check, skip /
//! resume / train, failures recorded), and prints the outcome as one JSON line on stdout.
//! Ctrl-C saves and exits with 130, as `train` does.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use attnlab_train::sweep::one::{self, RetryPolicy};
use attnlab_train::sweep::record::PlannedRecord;
use attnlab_train::{TrainOptions, interrupt};
use candle_core::Device;
use clap::Args;

/// Arguments of `attnlab sweep-run`.
#[derive(Args, Debug)]
pub struct SweepRunArgs {
    /// The run directory (`OUT/runs/NAME`).
    pub dir: PathBuf,
    /// Train the run again if it has a recorded failure.
    #[arg(long)]
    pub retry_failed: bool,
}

/// Trains the planned run and prints its outcome.
pub fn run(args: SweepRunArgs) -> Result<()> {
    interrupt::install_handler()?;
    attnlab_train::sweep::jobs::die_with_sweep()?;
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("reading the run's plan from stdin")?;
    let record: PlannedRecord = serde_json::from_str(&text).context("parsing the run's plan (stdin)")?;
    let run = one::planned_run(record)?;
    let device = Device::cuda_if_available(0)?;
    let opts = TrainOptions::new(&device);
    let outcome = one::run_one(&run, &args.dir, &opts, RetryPolicy { retry_failed: args.retry_failed })?;
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}
