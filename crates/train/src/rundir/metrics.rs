//! `metrics.jsonl`: one [`MetricLine`] a line, appended by the trainer, read by evaluation.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{METRICS_FILE, write_atomic};

/// Which data a metrics line was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// A training batch.
    Train,
    /// The fixed validation set.
    Val,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricLine {
    /// Optimiser steps done when the line was written.
    pub step: usize,
    /// Training batch or validation set.
    pub split: Split,
    /// Mean loss (of the step's batch, or of the validation set), nats.
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
    /// Wall-clock seconds since the run started (summed over resumes); the trainer always
    /// writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_s: Option<f64>,
    /// Further numbers of the line (none today; kept when a file is rewritten).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MetricLine {
    /// A training line.
    pub fn train(step: usize, loss: f64, lr: f64, grad_norm: f64, tokens_per_s: f64, wall_s: f64) -> Self {
        Self {
            step,
            split: Split::Train,
            loss,
            lr: Some(lr),
            grad_norm: Some(grad_norm),
            tokens_per_s: Some(tokens_per_s),
            wall_s: Some(wall_s),
            extra: Map::new(),
        }
    }

    /// A validation line.
    pub fn val(step: usize, loss: f64, wall_s: f64) -> Self {
        Self {
            step,
            split: Split::Val,
            loss,
            lr: None,
            grad_norm: None,
            tokens_per_s: None,
            wall_s: Some(wall_s),
            extra: Map::new(),
        }
    }
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

/// Reads every line of `RUN/metrics.jsonl` (empty when the file does not exist). A malformed
/// line is an error naming the file and line, except a cut-off last line (a process killed
/// mid-write), which is skipped with a warning.
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
        let cut_off = i + 1 == lines.len() && !text.ends_with('\n');
        match serde_json::from_str(line) {
            Ok(m) => out.push(m),
            Err(e) if cut_off => tracing::warn!("{}: skipping cut-off last line: {e}", path.display()),
            Err(e) => bail!("{}: line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// Drops lines of `metrics.jsonl` whose step is beyond `step` (written after the checkpoint a
/// run resumes from) and a cut-off last line, rewriting the file atomically; returns the kept
/// lines. The kept lines are copied as text, byte for byte: a number is never parsed and
/// printed again (which could change its last digit).
pub fn truncate_metrics(run_dir: &Path, step: usize) -> Result<Vec<MetricLine>> {
    let path = run_dir.join(METRICS_FILE);
    let text = match path.exists() {
        true => fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        false => String::new(),
    };
    let (mut kept, mut kept_text) = (Vec::new(), String::new());
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        let parsed: std::result::Result<MetricLine, _> = serde_json::from_str(line);
        match parsed {
            Ok(m) if m.step <= step => {
                kept.push(m);
                kept_text.push_str(line);
                kept_text.push('\n');
            }
            Ok(_) => {}
            Err(e) if !raw.ends_with('\n') => {
                tracing::warn!("{}: dropping cut-off last line: {e}", path.display())
            }
            Err(e) => bail!("{}: line {}: {e}", path.display(), i + 1),
        }
    }
    write_atomic(&path, kept_text.as_bytes())?;
    Ok(kept)
}
