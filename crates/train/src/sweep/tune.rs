//! Tuned axes: `[tune] "train.lr" = [3e-4, 1e-3, 3e-3]` in a sweep file.
//!
//! The tuned key is expanded like a grid axis, but not every run is trained. The runs of one
//! *configuration* (same base and grid values, apart from the tuned key and `seed`) are trained
//! in two stages:
//!
//! 1. **Selection**: every tuned value at the configuration's first seed (the first value of
//!    its `seed` axis; the only seed when it has none).
//! 2. **Confirmation**: the remaining seeds at the chosen value only.
//!
//! The chosen value is the one whose first-seed run has the lowest final **validation** loss
//! (`summary.json` `final_val_loss`, the report's headline loss); a failed or diverged run is
//! never chosen. attnlab's tasks have no separate test split, so the rate is selected on the
//! same validation set the report then compares on: the first seed's number is optimistic by
//! the selection, the other seeds' are not. The choices are written to `OUT/tune.json`. A
//! configuration whose selection runs have not all finished (another shard still trains them)
//! gets no confirmation runs yet; running the sweep again once they have adds them.

use std::path::Path;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::Value;

use super::jobs::{SweepOptions, SweepResult, run_sweep};
use super::{PlannedRun, SweepFile};
use crate::rundir::{self, RunDir, Summary};

/// The file of the choices, in the sweep's output directory.
pub const TUNE_FILE: &str = "tune.json";

/// The grid key that holds the seed.
const SEED_KEY: &str = "seed";

/// The tuned key of a sweep file (`None` without a `[tune]` table); at most one key, with a
/// list of at least one value, and not also a grid axis.
pub fn tuned_key(sweep: &SweepFile) -> Result<Option<String>> {
    let mut keys = sweep.tune.iter();
    let Some((key, values)) = keys.next() else { return Ok(None) };
    if keys.next().is_some() {
        bail!("[tune] lists {} keys; one tuned key per sweep is supported", sweep.tune.len())
    }
    match values {
        toml::Value::Array(v) if !v.is_empty() => {}
        _ => bail!("[tune] `{key}` must list its values, e.g. [3e-4, 1e-3, 3e-3]"),
    }
    if key == SEED_KEY {
        bail!("[tune] cannot tune `seed`: the seeds are what a choice is confirmed on")
    }
    if sweep.grid.contains_key(key) || sweep.base.iter().any(|b| b.grid.contains_key(key)) {
        bail!("`{key}` is both tuned and a grid axis; list it in one of them")
    }
    Ok(Some(key.clone()))
}

/// One configuration's choice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    /// The configuration: base and grid values without the tuned key and the seed.
    pub config: String,
    /// The seed the selection ran at (`None`: the runs have no seed axis).
    pub seed: Option<Value>,
    /// Every tuned value with its selection run's final validation loss (`None`: failed,
    /// diverged or not finished).
    pub losses: Vec<(Value, Option<f64>)>,
    /// The chosen value; `None` while a selection run has not finished, or when all failed.
    pub chosen: Option<Value>,
}

/// A run's configuration label (base and grid without `key` and `seed`) and its seed.
fn config_of(run: &PlannedRun, key: &str) -> (String, Option<Value>) {
    let rest: Vec<String> =
        run.grid.iter().filter(|(k, _)| k != key && k != SEED_KEY).map(|(k, v)| format!("{k}={v}")).collect();
    let seed = run.grid.iter().find(|(k, _)| k == SEED_KEY).map(|(_, v)| v.clone());
    (format!("{} {}", run.base, rest.join(" ")).trim_end().to_string(), seed)
}

fn tuned_value<'a>(run: &'a PlannedRun, key: &str) -> Option<&'a Value> {
    run.grid.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The configurations in plan order, each with its first seed.
fn configs(runs: &[PlannedRun], key: &str) -> Vec<(String, Option<Value>)> {
    let mut out: Vec<(String, Option<Value>)> = Vec::new();
    for run in runs {
        let (config, seed) = config_of(run, key);
        if !out.iter().any(|(c, _)| *c == config) {
            out.push((config, seed));
        }
    }
    out
}

/// The selection runs: every tuned value at each configuration's first seed.
pub fn selection_runs<'a>(runs: &'a [PlannedRun], key: &str) -> Vec<&'a PlannedRun> {
    let firsts = configs(runs, key);
    runs.iter()
        .filter(|r| {
            let (config, seed) = config_of(r, key);
            firsts.iter().any(|(c, s)| *c == config && *s == seed)
        })
        .collect()
}

/// The final validation loss of a finished, finite run in `dir`.
fn val_loss(dir: &Path) -> Option<f64> {
    let run = RunDir::new(dir);
    if !rundir::is_finished(dir) {
        return None;
    }
    let summary: Summary = rundir::read_json(&run.summary_path()).ok()?;
    summary.final_val_loss.is_finite().then_some(summary.final_val_loss)
}

/// Whether a selection run is settled: finished, or failed (recorded by the sweep).
fn settled(dir: &Path) -> bool {
    rundir::is_finished(dir) || super::record::Failure::read(dir).is_some()
}

/// The choice of every configuration from the selection runs' results under `out`.
pub fn choices(runs: &[PlannedRun], key: &str, out: &Path) -> Vec<Choice> {
    let selection = selection_runs(runs, key);
    configs(runs, key)
        .into_iter()
        .map(|(config, seed)| {
            let mine: Vec<&&PlannedRun> =
                selection.iter().filter(|r| config_of(r, key).0 == config).collect();
            let losses: Vec<(Value, Option<f64>)> = mine
                .iter()
                .map(|r| (tuned_value(r, key).cloned().unwrap_or(Value::Null), val_loss(&r.dir(out))))
                .collect();
            let all_settled = mine.iter().all(|r| settled(&r.dir(out)));
            let best = losses
                .iter()
                .filter_map(|(v, l)| l.map(|l| (v, l)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(v, _)| v.clone());
            Choice { config, seed, losses, chosen: best.filter(|_| all_settled) }
        })
        .collect()
}

/// The confirmation runs: the other seeds of each configuration at its chosen value.
pub fn confirmation_runs<'a>(runs: &'a [PlannedRun], key: &str, choices: &[Choice]) -> Vec<&'a PlannedRun> {
    runs.iter()
        .filter(|r| {
            let (config, seed) = config_of(r, key);
            choices.iter().any(|c| {
                c.config == config
                    && seed != c.seed
                    && c.chosen.as_ref().is_some_and(|v| tuned_value(r, key) == Some(v))
            })
        })
        .collect()
}

/// The runs at each configuration's chosen value, every seed (what a report compares).
pub fn chosen_runs<'a>(runs: &'a [PlannedRun], key: &str, choices: &[Choice]) -> Vec<&'a PlannedRun> {
    runs.iter()
        .filter(|r| {
            let (config, _) = config_of(r, key);
            choices.iter().any(|c| {
                c.config == config && c.chosen.as_ref().is_some_and(|v| tuned_value(r, key) == Some(v))
            })
        })
        .collect()
}

/// The runs decided so far: the selection runs and the confirmation runs of the
/// configurations chosen under `out` (what `--plan`, `--dry-run` and the report cover).
pub fn decided_runs(runs: &[PlannedRun], key: &str, out: &Path) -> Vec<PlannedRun> {
    let chosen = choices(runs, key, out);
    let mut keep: Vec<&PlannedRun> = selection_runs(runs, key);
    keep.extend(confirmation_runs(runs, key, &chosen));
    runs.iter().filter(|r| keep.iter().any(|k| k.name == r.name)).cloned().collect()
}

/// Trains a tuned sweep: the selection runs, then (from their validation losses, written to
/// `out/tune.json`) the confirmation runs. Outcomes of both stages, in plan order.
pub fn run_tuned_sweep(
    runs: &[PlannedRun],
    key: &str,
    out: &Path,
    opts: &SweepOptions,
) -> Result<SweepResult> {
    let selection: Vec<PlannedRun> = selection_runs(runs, key).into_iter().cloned().collect();
    let first = run_sweep(&selection, out, opts)?;
    let chosen = choices(runs, key, out);
    rundir::write_json(&out.join(TUNE_FILE), &chosen)?;
    for c in &chosen {
        match &c.chosen {
            Some(v) => tracing::info!(config = %c.config, "{key} = {v} chosen on validation loss"),
            None => {
                tracing::warn!(config = %c.config, "no {key} chosen yet (selection runs unfinished or failed)")
            }
        }
    }
    let decided = decided_runs(runs, key, out);
    let second = run_sweep(&decided, out, opts)?;
    let mut outcomes = first.outcomes;
    outcomes.extend(second.outcomes.into_iter().filter(|(n, _)| !selection.iter().any(|s| s.name == *n)));
    let order = |n: &String| runs.iter().position(|r| &r.name == n);
    outcomes.sort_by_key(|(n, _)| order(n));
    let peak = match (first.peak_rss_mib, second.peak_rss_mib) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(SweepResult { outcomes, peak_rss_mib: peak })
}
