//! Divergence guards: a NaN or infinite loss, gradient norm or weight stops the run before the
//! optimizer applies it, and the error names the last checkpoint that exists and is finite.

use std::fmt;
use std::path::{Path, PathBuf};

use attnlab_model::ParamStore;

use crate::rundir::{self, RunDir, Split, TrainerState};

/// A run stopped because a number became NaN or infinite.
#[derive(Debug, Clone, PartialEq)]
pub struct Diverged {
    /// The step (1-based optimizer step, or the boundary of a validation) where it happened.
    pub step: usize,
    /// What was not finite: `training loss`, `gradient norm`, `validation loss`, `weight <name>`.
    pub what: String,
    /// The value (NaN or +-inf; NaN for weights).
    pub value: f64,
    /// The checkpoint worth resuming, if any: `best/` (the best validation loss) when it opens,
    /// else `last/` when it is sound (see [`last_good_checkpoint`]).
    pub last_good: Option<PathBuf>,
    /// `last/` too, when it opens, is not `last_good` and is sound.
    pub also_good: Option<PathBuf>,
}

impl fmt::Display for Diverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the run diverged: {} is {} at step {}; it was stopped before the optimizer step and nothing non-finite was saved; ",
            self.what, self.value, self.step
        )?;
        match &self.last_good {
            Some(dir) if dir.ends_with(rundir::BEST_DIR) => {
                write!(f, "the checkpoint with the best validation loss is {}", dir.display())?
            }
            Some(dir) => write!(f, "the last good checkpoint is {}", dir.display())?,
            None => {
                return write!(
                    f,
                    "no checkpoint worth resuming had been saved, so the run can be started again in the same directory (try a lower train.lr)"
                );
            }
        }
        if let Some(also) = &self.also_good {
            write!(
                f,
                "; {} is good too (its loss is finite and no worse than at the start)",
                also.display()
            )?;
        }
        write!(f, " (try a lower train.lr)")
    }
}

/// Errors with [`Diverged`] when `value` is NaN or infinite.
pub fn check_number(what: &str, value: f64, step: usize, run_dir: &Path) -> Result<(), Diverged> {
    if value.is_finite() {
        return Ok(());
    }
    Err(diverged(step, what.to_string(), value, run_dir))
}

/// Errors with [`Diverged`] when a weight of `params` is NaN or infinite.
pub fn check_weights(params: &ParamStore, step: usize, run_dir: &Path) -> anyhow::Result<()> {
    match params.first_non_finite()? {
        None => Ok(()),
        Some(name) => Err(diverged(step, format!("weight `{name}`"), f64::NAN, run_dir).into()),
    }
}

fn diverged(step: usize, what: String, value: f64, run_dir: &Path) -> Diverged {
    let last_good = last_good_checkpoint(run_dir);
    let last = rundir::last_dir(run_dir);
    let also_good =
        (last_good.as_ref() != Some(&last) && checkpoint_is_finite(&last) && last_is_sound(run_dir))
            .then_some(last);
    Diverged { step, what, value, last_good, also_good }
}

/// The checkpoint worth resuming after a divergence: `best/` (the best validation loss) when it
/// opens; else `last/` when it opens and is sound ([`last_is_sound`]); else none. A `last/`
/// saved after the weights blew up (finite, but of magnitude 1e8) is never named.
pub fn last_good_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    let best = rundir::best_dir(run_dir);
    if checkpoint_is_finite(&best) {
        return Some(best);
    }
    let last = rundir::last_dir(run_dir);
    (checkpoint_is_finite(&last) && last_is_sound(run_dir)).then_some(last)
}

/// Whether the loss of `last/`'s weights, as `metrics.jsonl` records it, is finite and no worse
/// than at the start: the validation loss at its step against the one at step 0, else the next
/// training batch's loss (computed with those weights) against the first batch's. Unknown
/// (the next batch diverged, or was never logged) counts as not sound.
pub fn last_is_sound(run_dir: &Path) -> bool {
    let dir = RunDir::new(run_dir);
    let Ok(state) = rundir::read_json::<TrainerState>(&dir.state_path()) else { return false };
    let Ok(lines) = rundir::read_metrics(run_dir) else { return false };
    let at =
        |split: Split, step: usize| lines.iter().find(|l| l.split == split && l.step == step).map(|l| l.loss);
    let (now, start) = match at(Split::Val, state.step) {
        Some(v) => (Some(v), at(Split::Val, 0)),
        None => (at(Split::Train, state.step + 1), at(Split::Train, 1)),
    };
    match (now, start) {
        (Some(now), Some(start)) => now.is_finite() && now <= start,
        _ => false,
    }
}

impl std::error::Error for Diverged {}

/// Whether `dir` holds a checkpoint that opens (see [`attnlab_model::Checkpoint::open`]):
/// readable, whole, matching its config, every weight finite.
pub fn checkpoint_is_finite(dir: &Path) -> bool {
    attnlab_model::checkpoint::verify(dir).is_ok()
}
