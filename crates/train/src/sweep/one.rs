//! Training one planned run of a sweep, in this process: claim the directory, check the plan,
//! skip / resume / train, and record a failure instead of returning it.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::PlannedRun;
use super::record::{self, Failure, PlannedRecord};
use crate::interrupt::Interrupted;
use crate::lock::{self, RunLock};
use crate::rundir;
use crate::{RunConfig, TrainOptions, is_finished};

/// What happened to one run when the sweep ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Already finished; left alone.
    Skipped,
    /// Continued from its last checkpoint.
    Resumed,
    /// Trained from the start.
    Trained,
    /// Failed (now, or in an earlier sweep and not retried); recorded in `failure.json`.
    Failed {
        /// The record.
        failure: Failure,
    },
    /// Another live process holds the run's lock (another shard or sweep trains it).
    Busy {
        /// The holder written in the lock file.
        holder: Option<String>,
    },
}

impl Outcome {
    /// Whether the run's directory holds a finished run now.
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Skipped | Outcome::Resumed | Outcome::Trained)
    }
}

/// How a run is retried.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryPolicy {
    /// Train runs with a recorded failure again (otherwise they are reported as failed).
    pub retry_failed: bool,
}

/// Trains `run` in `dir` unless it has finished, resuming an interrupted one. A training error
/// is recorded in `dir/failure.json` and returned as [`Outcome::Failed`]; a stop request
/// (Ctrl-C) is returned as an [`Interrupted`] error; errors before training (a directory the
/// sweep did not plan, a stale plan) are returned as errors.
pub fn run_one(run: &PlannedRun, dir: &Path, opts: &TrainOptions, retry: RetryPolicy) -> Result<Outcome> {
    let Some(claim) = RunLock::try_claim(dir)? else {
        return Ok(Outcome::Busy { holder: lock::holder(dir) });
    };
    if let Some(previous) = &claim.took_over {
        tracing::warn!(run = %run.name, "taking over the stale claim of {previous} (that process is gone)");
    }
    record::check_planned(run, dir)?;
    if is_finished(dir) {
        return Ok(Outcome::Skipped);
    }
    if let Some(failure) = Failure::read(dir) {
        if !retry.retry_failed {
            return Ok(Outcome::Failed { failure });
        }
        Failure::clear(dir)?;
    }
    // A run interrupted or failed before its first checkpoint is started again from step 0 by
    // the trainer (its stale files are removed there).
    let mut opts = opts.clone();
    opts.resume = rundir::can_resume(dir);
    // Trained under the claim (one lock per process and directory), held until the outcome
    // (or the failure record) is written.
    match crate::train_claimed(&run.config, &claim, &opts) {
        Ok(_) if opts.resume => Ok(Outcome::Resumed),
        Ok(_) => Ok(Outcome::Trained),
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => Err(e),
        Err(e) => {
            let failure = Failure::record(&run.name, dir, &e)?;
            tracing::warn!(run = %run.name, "{}", failure.line());
            Ok(Outcome::Failed { failure })
        }
    }
}

/// The planned run a record describes (what a child process is given on its stdin).
pub fn planned_run(rec: PlannedRecord) -> Result<PlannedRun> {
    let config =
        RunConfig::from_value(rec.config).with_context(|| format!("the plan of run `{}`", rec.name))?;
    Ok(PlannedRun { name: rec.name, base: rec.base, grid: rec.grid, config })
}
