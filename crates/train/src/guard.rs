//! Divergence guards: a NaN or infinite loss, gradient norm or weight stops the run before the
//! optimizer applies it, and the error names the last checkpoint that exists and is finite.

use std::fmt;
use std::path::{Path, PathBuf};

use attnlab_model::ParamStore;
use attnlab_model::checkpoint::{CONFIG_FILE, MODEL_FILE};
use attnlab_model::params::tensor_is_finite;
use candle_core::Device;

use crate::rundir;

/// A run stopped because a number became NaN or infinite.
#[derive(Debug, Clone, PartialEq)]
pub struct Diverged {
    /// The step (1-based optimizer step, or the boundary of a validation) where it happened.
    pub step: usize,
    /// What was not finite: `training loss`, `gradient norm`, `validation loss`, `weight <name>`.
    pub what: String,
    /// The value (NaN or +-inf; NaN for weights).
    pub value: f64,
    /// The last checkpoint of the run that exists and holds finite weights, if any.
    pub last_good: Option<PathBuf>,
}

impl fmt::Display for Diverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the run diverged: {} is {} at step {}; it was stopped before the optimizer step and nothing non-finite was saved; ",
            self.what, self.value, self.step
        )?;
        match &self.last_good {
            Some(dir) => write!(f, "the last good checkpoint is {} (try a lower train.lr)", dir.display()),
            None => write!(
                f,
                "no checkpoint had been saved, so the run can be started again in the same directory (try a lower train.lr)"
            ),
        }
    }
}

impl std::error::Error for Diverged {}

/// Errors with [`Diverged`] when `value` is NaN or infinite.
pub fn check_number(what: &str, value: f64, step: usize, run_dir: &Path) -> Result<(), Diverged> {
    if value.is_finite() {
        return Ok(());
    }
    Err(Diverged { step, what: what.to_string(), value, last_good: last_good_checkpoint(run_dir) })
}

/// Errors with [`Diverged`] when a weight of `params` is NaN or infinite.
pub fn check_weights(params: &ParamStore, step: usize, run_dir: &Path) -> anyhow::Result<()> {
    match params.first_non_finite()? {
        None => Ok(()),
        Some(name) => Err(Diverged {
            step,
            what: format!("weight `{name}`"),
            value: f64::NAN,
            last_good: last_good_checkpoint(run_dir),
        }
        .into()),
    }
}

/// The run's `last/`, else `best/`, when it exists and every weight in it is finite.
pub fn last_good_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    [rundir::last_dir(run_dir), rundir::best_dir(run_dir)].into_iter().find(|d| checkpoint_is_finite(d))
}

/// Whether `dir` holds a checkpoint (`config.json`, `model.safetensors`) whose weights are all
/// finite; unreadable files count as not good.
pub fn checkpoint_is_finite(dir: &Path) -> bool {
    if !dir.join(CONFIG_FILE).is_file() {
        return false;
    }
    match candle_core::safetensors::load(dir.join(MODEL_FILE), &Device::Cpu) {
        Ok(tensors) => tensors.values().all(|t| tensor_is_finite(t).unwrap_or(false)),
        Err(_) => false,
    }
}
