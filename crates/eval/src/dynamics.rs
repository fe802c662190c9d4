//! Training dynamics from the curves: steps to a per-task threshold (leaving the plateau), and
//! the largest learning rate that trained without divergence.

use std::collections::BTreeMap;

use attnlab_train::tasks::Threshold;
use serde::Serialize;
use serde_json::Value;

use crate::baseline::settings;
use crate::group::{TaskGroup, value_text};
use attnlab_train::rundir::MetricLine;

use crate::run::{Run, Split};

/// The first validation step of `run` that meets `threshold` (declared by the task in its
/// `TaskReport`): `Some(None)` for "never", `None` when the run's curves do not carry the
/// number (validation lines without `accuracy`).
pub fn first_step(threshold: Threshold, run: &Run) -> Option<Option<u64>> {
    let val: Vec<_> = run.split(Split::Val).collect();
    match threshold {
        Threshold::AccuracyAbove(x) => {
            let acc = |r: &&MetricLine| r.extra.get("accuracy").and_then(Value::as_f64);
            if !val.iter().any(|r| acc(r).is_some()) {
                return None;
            }
            Some(val.iter().find(|r| acc(r).is_some_and(|a| a > x)).map(|r| r.step as u64))
        }
        Threshold::LossBelow(x) => Some(val.iter().find(|r| r.loss < x).map(|r| r.step as u64)),
    }
}

/// Steps to the threshold over the seeds of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Escape {
    /// The configuration.
    pub label: String,
    /// The threshold.
    pub threshold: Threshold,
    /// Per run: `(name, first step meeting the threshold or None for never)`.
    pub runs: Vec<(String, Option<u64>)>,
    /// How many seeds got there.
    pub reached: usize,
    /// Mean steps over the seeds that got there.
    pub mean_steps: Option<f64>,
}

/// [`Escape`] of each seed group of `group`, or nothing when the task has no threshold or the
/// curves do not carry its number.
pub fn escapes(group: &TaskGroup, runs: &[Run], threshold: Option<Threshold>) -> Vec<Escape> {
    let Some(th) = threshold else { return Vec::new() };
    let mut out = Vec::new();
    for sg in &group.seed_groups {
        let steps: Option<Vec<(String, Option<u64>)>> =
            sg.runs.iter().map(|&i| Some((runs[i].name.clone(), first_step(th, &runs[i])?))).collect();
        let Some(steps) = steps else { continue };
        let got: Vec<f64> = steps.iter().filter_map(|(_, s)| s.map(|s| s as f64)).collect();
        let mean_steps = (!got.is_empty()).then(|| got.iter().sum::<f64>() / got.len() as f64);
        out.push(Escape {
            label: sg.label.clone(),
            threshold: th,
            reached: got.len(),
            runs: steps,
            mean_steps,
        });
    }
    out
}

/// How a run ended, for the learning-rate range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Finished with a final validation loss below its first.
    Trained,
    /// A non-finite loss, a divergence recorded by the sweep (`failure.json`; the trainer stops
    /// before a non-finite number is logged), or a final validation loss no lower than the first.
    Diverged,
    /// Not finished and not diverged (still running or interrupted).
    Unfinished,
}

/// The outcome of one run (see [`Outcome`]).
pub fn outcome(run: &Run) -> Outcome {
    let recorded = attnlab_train::sweep::Failure::read(&run.dir).is_some_and(|f| f.diverged);
    if recorded || run.records.iter().any(|r| !r.loss.is_finite()) {
        return Outcome::Diverged;
    }
    if !run.finished() {
        return Outcome::Unfinished;
    }
    let val: Vec<f64> = run.split(Split::Val).map(|r| r.loss).collect();
    match (val.first(), val.last()) {
        (Some(first), Some(last)) if val.len() > 1 && last >= first => Outcome::Diverged,
        _ => Outcome::Trained,
    }
}

/// The learning rates tried for one setting (everything but the rate and the seed).
#[derive(Debug, Clone, Serialize)]
pub struct LrRange {
    /// The setting: its differing keys other than the learning rate (e.g. `metric=idw`).
    pub label: String,
    /// Per rate: `(lr, runs trained, runs diverged, runs unfinished)`, ascending.
    pub rates: Vec<(f64, usize, usize, usize)>,
    /// The largest rate at which every finished seed trained, and no seed diverged.
    pub largest_stable: Option<f64>,
}

/// [`LrRange`] per setting of `group` whose runs span at least two learning rates.
pub fn lr_ranges(group: &TaskGroup, runs: &[Run], stopped: &[Run]) -> Vec<LrRange> {
    let key_of = |run: &Run| {
        let mut key = settings(&run.config);
        key.remove("train.lr");
        key.insert("model.metric".into(), Value::from(run.metric()));
        key
    };
    let mut by_setting: Vec<(BTreeMap<String, Value>, String, Vec<&Run>)> = Vec::new();
    for sg in &group.seed_groups {
        for &i in &sg.runs {
            let key = key_of(&runs[i]);
            let label = strip_lr(&sg.label);
            match by_setting.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, _, members)) => members.push(&runs[i]),
                None => by_setting.push((key, label, vec![&runs[i]])),
            }
        }
    }
    // Runs that stopped early join the setting they belong to (none of their own: a setting all
    // of whose runs stopped has no label to show).
    for run in stopped {
        let key = key_of(run);
        if let Some((_, _, members)) = by_setting.iter_mut().find(|(k, _, _)| *k == key) {
            members.push(run);
        }
    }
    let mut out = Vec::new();
    for (_, label, members) in by_setting {
        let mut rates: Vec<(f64, usize, usize, usize)> = Vec::new();
        for run in members {
            let Some(lr) = run.config.pointer("/train/lr").and_then(Value::as_f64) else { continue };
            let pos = match rates.iter().position(|r| r.0 == lr) {
                Some(p) => p,
                None => {
                    rates.push((lr, 0, 0, 0));
                    rates.len() - 1
                }
            };
            match outcome(run) {
                Outcome::Trained => rates[pos].1 += 1,
                Outcome::Diverged => rates[pos].2 += 1,
                Outcome::Unfinished => rates[pos].3 += 1,
            }
        }
        if rates.len() < 2 {
            continue;
        }
        rates.sort_by(|a, b| a.0.total_cmp(&b.0));
        let largest_stable = rates.iter().filter(|r| r.1 > 0 && r.2 == 0).map(|r| r.0).reduce(f64::max);
        out.push(LrRange { label, rates, largest_stable });
    }
    out
}

/// A seed-group label without its `lr=...` part.
fn strip_lr(label: &str) -> String {
    crate::group::label_without(label, &["lr"])
}

/// `lr` as short text.
pub fn lr_text(lr: f64) -> String {
    value_text(&Value::from(lr))
}
