//! The files of a run directory besides the checkpoints: `metrics.jsonl`, `summary.json`,
//! `config.json`, and each checkpoint's `trainer_state.json`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use attnlab_model::checkpoint::{BEST_DIR, CONFIG_FILE, LAST_DIR};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The metrics log of a run.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The end-of-run summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// What the result depends on beyond the config (corpus and tokenizer hashes), see `Task::inputs`.
pub const INPUTS_FILE: &str = "inputs.json";
/// Trainer state inside a checkpoint directory.
pub const STATE_FILE: &str = "trainer_state.json";
/// Optimizer moments inside a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricLine {
    /// Optimiser steps done when the line was written.
    pub step: usize,
    /// `train` or `val`.
    pub split: String,
    /// Mean loss (of the step's batch, or of the validation set).
    pub loss: f64,
    /// Learning rate of the step (train lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Global gradient norm before clipping (train lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    /// Training throughput of the step (items per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Wall-clock seconds since the run started (summed over resumes).
    pub wall_s: f64,
    /// Task scores on the validation set (val lines; e.g. `accuracy`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

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

/// The end-of-run summary (`summary.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Optimiser steps done.
    pub steps: usize,
    /// Mean training loss over the last steps (up to 20).
    pub final_train_loss: f64,
    /// Validation loss at the end.
    pub final_val_loss: f64,
    /// Lowest validation loss seen.
    pub best_val_loss: f64,
    /// Training throughput (items per second of training-step time).
    pub tokens_per_s: f64,
    /// Wall-clock seconds of the whole run (summed over resumes).
    pub wall_s: f64,
    /// Milliseconds per training step.
    pub ms_per_step: f64,
    /// Task name.
    pub task: String,
    /// Attention metric.
    pub metric: String,
    /// Run seed.
    pub seed: u64,
    /// The task's own scores (`val_accuracy`, ...).
    #[serde(flatten)]
    pub scores: Map<String, Value>,
}

/// Appends lines to `metrics.jsonl`, flushing each one.
pub struct MetricsWriter {
    file: File,
    path: PathBuf,
}

impl MetricsWriter {
    /// Opens `RUN/metrics.jsonl` for appending (creating it).
    pub fn open(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(METRICS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { file, path })
    }

    /// Writes one line.
    pub fn write(&mut self, line: &MetricLine) -> Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        self.file.write_all(text.as_bytes()).with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Reads every line of `metrics.jsonl` (empty when the file does not exist). A cut-off last
/// line (no newline after it: a crash mid-write) is skipped; any other malformed line is an
/// error naming it.
pub fn read_metrics(run_dir: &Path) -> Result<Vec<MetricLine>> {
    let path = run_dir.join(METRICS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let torn = i + 1 == lines.len() && !text.ends_with('\n');
        match serde_json::from_str(line) {
            Ok(m) => out.push(m),
            Err(e) if torn => tracing::warn!("{}: dropping the cut-off last line: {e}", path.display()),
            Err(e) => return Err(e).with_context(|| format!("{}: line {}", path.display(), i + 1)),
        }
    }
    Ok(out)
}

/// Drops lines of `metrics.jsonl` whose step is beyond `step` (written after the checkpoint a
/// run resumes from), rewriting the file atomically; returns the kept lines.
pub fn truncate_metrics(run_dir: &Path, step: usize) -> Result<Vec<MetricLine>> {
    let lines = read_metrics(run_dir)?;
    let kept: Vec<MetricLine> = lines.into_iter().filter(|l| l.step <= step).collect();
    let mut text = String::new();
    for l in &kept {
        text.push_str(&serde_json::to_string(l)?);
        text.push('\n');
    }
    write_atomic(&run_dir.join(METRICS_FILE), text.as_bytes())?;
    Ok(kept)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    write_atomic(path, &serde_json::to_vec_pretty(value)?)
}

/// Reads a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The latest checkpoint directory of a run.
pub fn last_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(LAST_DIR)
}

/// The best-validation checkpoint directory of a run.
pub fn best_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(BEST_DIR)
}

/// The run's resolved config path (`RUN/config.json`).
pub fn config_path(run_dir: &Path) -> PathBuf {
    run_dir.join(CONFIG_FILE)
}

/// Whether `run_dir` holds a checkpoint a run can resume from (`last/config.json`).
pub fn can_resume(run_dir: &Path) -> bool {
    last_dir(run_dir).join(CONFIG_FILE).is_file()
}

/// Whether `run_dir` holds a finished run: a `summary.json` whose `steps` equal the
/// `train.steps` of its `config.json`.
pub fn is_finished(run_dir: &Path) -> bool {
    let summary: Result<Value> = read_json(&run_dir.join(SUMMARY_FILE));
    let config: Result<Value> = read_json(&config_path(run_dir));
    match (summary, config) {
        (Ok(s), Ok(c)) => {
            let done = s.get("steps").and_then(Value::as_u64);
            done.is_some() && done == c.pointer("/train/steps").and_then(Value::as_u64)
        }
        _ => false,
    }
}
