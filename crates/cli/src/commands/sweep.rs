//! `attnlab sweep SWEEP.toml [--out DIR]`: train a grid of runs, then report on all of them.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use attnlab_eval::sweep::{self, Outcome};
use attnlab_train::{TrainOptions, interrupt};
use candle_core::Device;
use clap::Args;

/// Arguments of `attnlab sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Sweep file (TOML): `out`, `[[base]]` run configs, `[grid]` of dotted keys.
    pub sweep: PathBuf,
    /// Output directory (default: the sweep file's `out`). Runs go to OUT/runs, the report to OUT/report.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// List the runs the sweep would train and exit.
    #[arg(long)]
    pub dry_run: bool,
}

/// Expands the grid, trains what has not finished, writes the report.
pub fn run(args: SweepArgs) -> Result<()> {
    let (file, runs) = sweep::load(&args.sweep)?;
    let Some(out) = args.out.or(file.out) else { bail!("the sweep file has no `out`; give --out DIR") };
    if args.dry_run {
        let mut stdout = std::io::stdout().lock();
        for r in &runs {
            // A closed pipe (`| head`) just ends the listing.
            if writeln!(stdout, "{}", out.join("runs").join(&r.name).display()).is_err() {
                break;
            }
        }
        return Ok(());
    }
    interrupt::install_handler()?;
    let device = Device::cuda_if_available(0)?;
    let opts = TrainOptions::new(&device);
    let start = Instant::now();
    let outcomes = sweep::run_sweep(&runs, &out, &opts)?;
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    println!(
        "{} runs ({} trained, {} resumed, {} already finished) in {:.1} s; report: {}",
        runs.len(),
        count(Outcome::Trained),
        count(Outcome::Resumed),
        count(Outcome::Skipped),
        start.elapsed().as_secs_f64(),
        out.join("report").join("report.md").display()
    );
    Ok(())
}
