//! The run directory: the one format that training writes and evaluation reads.
//!
//! ```text
//! RUN/config.json      the resolved run config (its `model` key is the ModelConfig)
//! RUN/metrics.jsonl    one MetricLine a line (train and val)
//! RUN/summary.json     the Summary, written when the run finishes
//! RUN/inputs.json      what the result depends on beyond the config (corpus, tokenizer hashes)
//! RUN/.lock            the run's lock (see `crate::lock`), held while a process trains it
//! RUN/last/            the latest checkpoint (+ optimizer.safetensors, trainer_state.json)
//! RUN/best/            the best-validation checkpoint
//! ```
//!
//! Every file name is declared here once; the checkpoint directories themselves
//! (`config.json` + `model.safetensors` + extras) belong to `attnlab_model::checkpoint`.
//! [`RunDir`] answers every path question, including which folder holds the checkpoint.

mod io;
mod metrics;
mod summary;

use std::path::{Path, PathBuf};

use attnlab_model::checkpoint::{self, MODEL_FILE};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::tasks::TaskScores;

pub use io::{read_json, write_atomic, write_json};
pub use metrics::{MetricLine, MetricsWriter, Split, read_metrics, truncate_metrics};
pub use summary::SummaryOf;

/// The end-of-run summary of a registered task (`summary.json`, its scores tagged by `task`).
pub type Summary = SummaryOf<TaskScores>;

impl Summary {
    /// The task's name.
    pub fn task(&self) -> &'static str {
        self.scores.task()
    }
}

/// The resolved run config (`RUN/config.json`; a checkpoint keeps a copy of it).
pub const CONFIG_FILE: &str = checkpoint::CONFIG_FILE;
/// The metrics log of a run.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The end-of-run summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// What the result depends on beyond the config (corpus and tokenizer hashes), see
/// `Task::inputs`.
pub const INPUTS_FILE: &str = "inputs.json";
/// Sub-directory holding the latest checkpoint.
pub const LAST_DIR: &str = checkpoint::LAST_DIR;
/// Sub-directory holding the best-validation checkpoint.
pub const BEST_DIR: &str = checkpoint::BEST_DIR;
/// Trainer state inside `last/`.
pub const STATE_FILE: &str = "trainer_state.json";
/// Optimizer moments inside `last/`.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// What a checkpoint needs beyond weights and moments for an exact resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimiser steps done.
    pub step: usize,
    /// The batch-sampling generator.
    pub rng: ChaCha8Rng,
    /// Best validation loss so far.
    pub best_val_loss: Option<f64>,
    /// Wall-clock seconds spent so far.
    pub wall_s: f64,
    /// Seconds spent in training steps so far (for tokens/s).
    pub train_s: f64,
    /// Items trained on so far.
    pub items: u64,
}

/// A run directory's paths (nothing is read until asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `RUN/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// `RUN/metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join(METRICS_FILE)
    }

    /// `RUN/summary.json`.
    pub fn summary_path(&self) -> PathBuf {
        self.root.join(SUMMARY_FILE)
    }

    /// `RUN/inputs.json`.
    pub fn inputs_path(&self) -> PathBuf {
        self.root.join(INPUTS_FILE)
    }

    /// The recorded inputs (`RUN/inputs.json`: corpus and tokenizer hashes), `None` when the
    /// run has none (older runs, tasks without inputs); a file that is not JSON is an error
    /// naming it.
    pub fn read_inputs(&self) -> anyhow::Result<Option<serde_json::Value>> {
        let path = self.inputs_path();
        if !path.is_file() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    /// `RUN/last/`, the latest checkpoint (the one a run resumes from).
    pub fn last_dir(&self) -> PathBuf {
        self.root.join(LAST_DIR)
    }

    /// `RUN/best/`, the best-validation checkpoint.
    pub fn best_dir(&self) -> PathBuf {
        self.root.join(BEST_DIR)
    }

    /// `RUN/last/trainer_state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.last_dir().join(STATE_FILE)
    }

    /// `RUN/last/optimizer.safetensors`.
    pub fn optimizer_path(&self) -> PathBuf {
        self.last_dir().join(OPTIMIZER_FILE)
    }

    /// The checkpoint that represents the run (for analysis, sampling, augmentation): `last/`
    /// (or its old copy after a crash mid-save, see [`checkpoint::resolve_dir`]), else `best/`;
    /// only a directory holding both `config.json` and `model.safetensors` counts (whether or
    /// not they can be read: a broken `last/` is reported by its reader, never skipped for
    /// `best/`). A checkpoint directory given as `root` is itself.
    pub fn checkpoint_dir(&self) -> Option<PathBuf> {
        let complete = |d: &PathBuf| d.join(MODEL_FILE).exists() && d.join(CONFIG_FILE).is_file();
        let last = checkpoint::resolve_dir(&self.root).ok().filter(complete);
        last.or_else(|| Some(self.best_dir()).filter(complete))
    }

    /// Whether the directory holds a checkpoint a run can resume from (`last/config.json`).
    pub fn can_resume(&self) -> bool {
        self.last_dir().join(CONFIG_FILE).is_file()
    }

    /// Whether the directory already holds (part of) a run: a `last/` or a `metrics.jsonl`.
    pub fn holds_run(&self) -> bool {
        self.last_dir().exists() || self.metrics_path().exists()
    }

    /// Whether the directory holds a finished run: a `summary.json` whose `steps` equal the
    /// `train.steps` of its `config.json`.
    pub fn is_finished(&self) -> bool {
        use serde_json::Value;
        let summary: anyhow::Result<Value> = read_json(&self.summary_path());
        let config: anyhow::Result<Value> = read_json(&self.config_path());
        match (summary, config) {
            (Ok(s), Ok(c)) => {
                let done = s.get("steps").and_then(Value::as_u64);
                done.is_some() && done == c.pointer("/train/steps").and_then(Value::as_u64)
            }
            _ => false,
        }
    }
}

/// The latest checkpoint directory of a run.
pub fn last_dir(run_dir: &Path) -> PathBuf {
    RunDir::new(run_dir).last_dir()
}

/// The best-validation checkpoint directory of a run.
pub fn best_dir(run_dir: &Path) -> PathBuf {
    RunDir::new(run_dir).best_dir()
}

/// The run's resolved config path (`RUN/config.json`).
pub fn config_path(run_dir: &Path) -> PathBuf {
    RunDir::new(run_dir).config_path()
}

/// Whether `run_dir` holds a checkpoint a run can resume from (`last/config.json`).
pub fn can_resume(run_dir: &Path) -> bool {
    RunDir::new(run_dir).can_resume()
}

/// Whether `run_dir` holds a finished run (see [`RunDir::is_finished`]).
pub fn is_finished(run_dir: &Path) -> bool {
    RunDir::new(run_dir).is_finished()
}
