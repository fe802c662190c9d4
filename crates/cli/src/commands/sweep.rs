//! `attnlab sweep SWEEP.toml [--out DIR] [--jobs N] [--shard I/N] [--plan] [--report-only]
//! [--dry-run] [--retry-failed]`: train a grid of runs (train crate), then report on all of
//! them (eval crate).

mod plan;
mod report;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use attnlab_train::interrupt;
use attnlab_train::sweep::jobs::{Executor, SweepOptions};
use attnlab_train::sweep::one::RetryPolicy;
use attnlab_train::sweep::{self, Outcome, Shard};
use clap::Args;

/// Arguments of `attnlab sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Sweep file (TOML): `out`, `[[base]]` run configs, `[grid]` of dotted keys.
    pub sweep: PathBuf,
    /// Output directory (default: the sweep file's `out`). Runs go to OUT/runs, the report to OUT/report.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runs trained at once, each in its own process with the threads (`--threads`, default the
    /// cores) divided among them. Results do not depend on it.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Train only shard I of N (1-based; a run always lands in the same shard) and write no
    /// report; merge with `--report-only` once every shard has finished.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Print the planned runs (state, shard, directory) and how many are finished, running or pending.
    #[arg(long, conflicts_with_all = ["dry_run", "report_only"])]
    pub plan: bool,
    /// Write the report of the finished runs (e.g. after every shard ran) without training.
    #[arg(long, conflicts_with = "dry_run")]
    pub report_only: bool,
    /// List the run directories the sweep would train and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Train runs with a recorded failure again (by default they are reported as failed).
    #[arg(long)]
    pub retry_failed: bool,
    /// Keep finished runs trained on other inputs (an edited corpus or tokenizer) than the
    /// sweep's files now; by default the sweep refuses to start, naming them.
    #[arg(long)]
    pub keep_stale: bool,
}

/// Expands the grid, trains what has not finished, writes the report; exits non-zero naming
/// the runs that failed.
pub fn run(args: SweepArgs) -> Result<()> {
    let (file, runs) = sweep::load(&args.sweep)?;
    let margins = file.margins()?;
    let Some(out) = args.out.clone().or(file.out.clone()) else {
        bail!("the sweep file has no `out`; give --out DIR")
    };
    let shard = args.shard.unwrap_or(Shard::ALL);
    // With a `[tune]` key, the runs decided so far: the selection runs, and the other seeds at
    // the values chosen from the finished selection runs under `out`.
    let tuned = sweep::tune::tuned_key(&file)?;
    let decided = |out: &std::path::Path| match &tuned {
        Some(key) => sweep::tune::decided_runs(&runs, key, out),
        None => runs.clone(),
    };
    if args.dry_run {
        let listed = decided(&out);
        if let Some(key) = &tuned {
            eprintln!(
                "tuned `{key}`: {} runs decided so far (of {} in the untuned grid): every value at each \
                 configuration's first seed, then the other seeds at the value chosen on its validation loss",
                listed.len(),
                runs.len()
            );
        }
        let mut stdout = std::io::stdout().lock();
        for r in listed.iter().filter(|r| shard.holds(&r.name)) {
            // A closed pipe (`| head`) just ends the listing.
            if writeln!(stdout, "{}", r.dir(&out).display()).is_err() {
                break;
            }
        }
        return Ok(());
    }
    if args.plan {
        return plan::print(&decided(&out), &out, shard);
    }
    let tuning = |out: &std::path::Path| {
        tuned.as_ref().map(|key| {
            let choices = sweep::tune::choices(&runs, key, out);
            let dirs = |rs: Vec<&sweep::PlannedRun>| rs.iter().map(|r| r.dir(out)).collect();
            attnlab_eval::tuning::Tuned {
                key: key.clone(),
                selection: dirs(sweep::tune::selection_runs(&runs, key)),
                chosen: dirs(sweep::tune::chosen_runs(&runs, key, &choices)),
            }
        })
    };
    if args.report_only {
        return report::write(&decided(&out), &out, &margins, tuning(&out));
    }
    if args.jobs == 0 {
        bail!("--jobs must be at least 1")
    }
    interrupt::install_handler()?;
    let exe = std::env::current_exe().context("locating the attnlab binary for the sweep's jobs")?;
    let threads = (candle_core::utils::get_num_threads() / args.jobs).max(1);
    let opts = SweepOptions {
        executor: Executor::Children { exe, jobs: args.jobs, threads },
        shard,
        retry: RetryPolicy { retry_failed: args.retry_failed },
        keep_stale: args.keep_stale,
    };
    let start = Instant::now();
    let result = match &tuned {
        Some(key) => sweep::tune::run_tuned_sweep(&runs, key, &out, &opts)?,
        None => sweep::run_sweep(&runs, &out, &opts)?,
    };
    let count = |f: fn(&Outcome) -> bool| result.outcomes.iter().filter(|(_, o)| f(o)).count();
    println!(
        "{} runs of shard {shard} ({} trained, {} resumed, {} already finished, {} failed, {} claimed elsewhere) \
         in {:.1} s with {} job(s) x {threads} thread(s); peak memory {}",
        result.outcomes.len(),
        count(|o| matches!(o, Outcome::Trained)),
        count(|o| matches!(o, Outcome::Resumed)),
        count(|o| matches!(o, Outcome::Skipped)),
        count(|o| matches!(o, Outcome::Failed { .. })),
        count(|o| matches!(o, Outcome::Busy { .. })),
        start.elapsed().as_secs_f64(),
        args.jobs,
        result.peak_rss_mib.map(|m| format!("{m:.0} MiB (sum of the jobs)")).unwrap_or("unknown".into()),
    );
    if shard == Shard::ALL {
        report::write(&decided(&out), &out, &margins, tuning(&out))
    } else {
        report::fail_on_failures(&result.outcomes)
    }
}
