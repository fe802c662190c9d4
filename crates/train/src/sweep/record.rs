//! The sweep's own files in a run directory: `sweep_run.json` (what the sweep planned) and
//! `failure.json` (why and at which step a run failed), and the state a run is in.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PlannedRun;
use crate::guard::Diverged;
use crate::lock;
use crate::rundir::{self, read_json, write_json};

/// The plan a sweep made for a run directory.
pub const PLANNED_FILE: &str = "sweep_run.json";
/// A failed run's record.
pub const FAILURE_FILE: &str = "failure.json";

/// Contents of `sweep_run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedRecord {
    /// The run name (its directory name).
    pub name: String,
    /// The base's name.
    pub base: String,
    /// The grid values in full (a shortened name carries only a hash of them).
    pub grid: Vec<(String, Value)>,
    /// The run config the sweep planned.
    pub config: Value,
}

impl PlannedRecord {
    /// The record of `run`.
    pub fn of(run: &PlannedRun) -> Result<Self> {
        Ok(Self {
            name: run.name.clone(),
            base: run.base.clone(),
            grid: run.grid.clone(),
            config: run.config.to_value()?,
        })
    }
}

/// Reads the planned config of `dir`, if the sweep recorded one (also the older format, which
/// held the config alone).
pub fn planned_config(dir: &Path) -> Result<Option<Value>> {
    let path = dir.join(PLANNED_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let saved: Value = read_json(&path)?;
    Ok(Some(match saved.get("config") {
        Some(config) if saved.get("grid").is_some() => config.clone(),
        _ => saved,
    }))
}

/// Refuses a run directory made from a different config (the sweep file or a base config
/// changed since: skipping or resuming it would mix stale results into the report) or not made
/// by the sweep at all. Reads only; the sweep checks every run this way before anything trains.
pub fn preflight(run: &PlannedRun, dir: &Path) -> Result<()> {
    let planned = run.config.to_value()?;
    match planned_config(dir)? {
        Some(saved) if saved != planned => bail!(
            "{} was trained from a different config than the sweep now gives for run `{}` \
             (the sweep file or a base config changed): delete that directory to retrain it, \
             or sweep into another --out",
            dir.display(),
            run.name
        ),
        Some(_) => Ok(()),
        None if rundir::config_path(dir).is_file() || rundir::can_resume(dir) => bail!(
            "{} holds a run that this sweep did not plan (no {PLANNED_FILE}): delete it or sweep \
             into another --out",
            dir.display()
        ),
        None => Ok(()),
    }
}

/// [`preflight`], then records the plan in a directory that has none (under the run's claim).
pub fn check_planned(run: &PlannedRun, dir: &Path) -> Result<()> {
    preflight(run, dir)?;
    if !dir.join(PLANNED_FILE).is_file() {
        write_json(&dir.join(PLANNED_FILE), &PlannedRecord::of(run)?)?;
    }
    Ok(())
}

/// Why and where a run failed (`failure.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The run name.
    pub name: String,
    /// The step (1-based) that failed: one past the last step in `metrics.jsonl`.
    pub step: usize,
    /// Whether the loss became non-finite (the run diverged) rather than another error.
    pub diverged: bool,
    /// The error, with its chain of causes.
    pub error: String,
}

impl Failure {
    /// Records `error` as the failure of the run in `dir`. A [`Diverged`] error (found by
    /// downcasting, anywhere in the chain) gives the step it names; another error's step is one
    /// past the last training step in `metrics.jsonl`.
    pub fn record(name: &str, dir: &Path, error: &anyhow::Error) -> Result<Failure> {
        let diverged = error.chain().find_map(|e| e.downcast_ref::<Diverged>());
        let step = match diverged {
            Some(d) => d.step,
            None => {
                rundir::read_metrics(dir)
                    .map(|lines| {
                        lines
                            .iter()
                            .filter(|l| l.split == rundir::Split::Train)
                            .map(|l| l.step)
                            .max()
                            .unwrap_or(0)
                    })
                    .unwrap_or(0)
                    + 1
            }
        };
        let failure = Failure {
            name: name.to_string(),
            step,
            diverged: diverged.is_some(),
            error: format!("{error:#}"),
        };
        write_json(&dir.join(FAILURE_FILE), &failure)
            .with_context(|| format!("recording the failure of {}", dir.display()))?;
        Ok(failure)
    }

    /// The failure recorded in `dir`, if any.
    pub fn read(dir: &Path) -> Option<Failure> {
        read_json(&dir.join(FAILURE_FILE)).ok()
    }

    /// Removes the record (before the run is tried again).
    pub fn clear(dir: &Path) -> Result<()> {
        let path = dir.join(FAILURE_FILE);
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        Ok(())
    }

    /// One line for messages: `NAME diverged at step S` / `NAME failed at step S: error`.
    pub fn line(&self) -> String {
        if self.diverged {
            format!("{} diverged at step {}", self.name, self.step)
        } else {
            format!("{} failed at step {}: {}", self.name, self.step, self.error)
        }
    }
}

/// The state of a planned run's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// `summary.json` written for the planned number of steps.
    Finished,
    /// A failure is recorded.
    Failed,
    /// Another live process holds the run's lock.
    Running,
    /// Has a checkpoint to resume from.
    Interrupted,
    /// Not started.
    Pending,
}

impl RunState {
    /// The state of the run directory `dir`.
    pub fn of(dir: &Path) -> RunState {
        if lock::is_locked(dir) {
            RunState::Running
        } else if rundir::is_finished(dir) {
            RunState::Finished
        } else if dir.join(FAILURE_FILE).is_file() {
            RunState::Failed
        } else if rundir::can_resume(dir) {
            RunState::Interrupted
        } else {
            RunState::Pending
        }
    }

    /// The state's name in listings.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Running => "running(locked)",
            RunState::Interrupted => "pending(resumable)",
            RunState::Pending => "pending",
        }
    }
}
