//! Reading one run directory: `config.json`, `metrics.jsonl`, `summary.json`, `last/`, `best/`.
//!
//! Everything is read generically through `serde_json`, so the reader needs nothing from the
//! trainer beyond the file contract (see HELPERS.md / ARCHITECTURE.md).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

/// Run configuration file.
pub const CONFIG_FILE: &str = "config.json";
/// One JSON object a line of training and validation metrics.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Final numbers, written when the run finishes.
pub const SUMMARY_FILE: &str = "summary.json";

/// Which data a metrics line was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training batch.
    Train,
    /// Fixed validation set.
    Val,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Optimizer step.
    pub step: u64,
    /// Training or validation.
    pub split: Split,
    /// Mean loss.
    pub loss: f64,
    /// Learning rate (train lines).
    pub lr: Option<f64>,
    /// Global gradient norm before clipping (train lines).
    pub grad_norm: Option<f64>,
    /// Throughput at this point.
    pub tokens_per_s: Option<f64>,
    /// Seconds since the run started.
    pub wall_s: Option<f64>,
}

/// A run directory, read.
#[derive(Debug, Clone)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// Display name: the config's `name`, else the directory name.
    pub name: String,
    /// The resolved run config (`config.json`).
    pub config: Value,
    /// Every metrics line, in file order.
    pub records: Vec<Record>,
    /// `summary.json`, present once the run has finished.
    pub summary: Option<Value>,
}

impl Run {
    /// Reads the run in `dir`. Errors name the directory: not a run (no `config.json`), no
    /// metrics yet, or a malformed file.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("{} is not a directory (expected a run directory)", dir.display())
        }
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.is_file() {
            bail!(
                "{} is not a run directory: it has no {CONFIG_FILE} (a run holds {CONFIG_FILE}, {METRICS_FILE}, last/)",
                dir.display()
            )
        }
        let config = read_json(&config_path)?;
        let records = read_metrics(&dir.join(METRICS_FILE))?;
        if records.is_empty() {
            bail!("run {} has no metrics yet ({METRICS_FILE} is missing or empty)", dir.display())
        }
        let summary_path = dir.join(SUMMARY_FILE);
        let summary = if summary_path.is_file() { Some(read_json(&summary_path)?) } else { None };
        let name = config
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self { dir: dir.to_path_buf(), name, config, records, summary })
    }

    /// The task kind (`text`, `recall`, `scattered`, `prototype`), from the config or the summary.
    pub fn task(&self) -> String {
        let from_cfg = self.config.pointer("/task/kind").and_then(Value::as_str);
        let from_summary = self.summary.as_ref().and_then(|s| s.get("task")).and_then(Value::as_str);
        from_cfg.or(from_summary).unwrap_or("unknown").to_string()
    }

    /// The attention metric (`model.metric`), or `?` when the config has none.
    pub fn metric(&self) -> String {
        let m = self.config.pointer("/model/metric").and_then(Value::as_str);
        m.unwrap_or("?").to_string()
    }

    /// The model kind (`model.kind`).
    pub fn model_kind(&self) -> String {
        self.config.pointer("/model/kind").and_then(Value::as_str).unwrap_or("?").to_string()
    }

    /// The run's seed, if the config has one.
    pub fn seed(&self) -> Option<u64> {
        self.config.get("seed").and_then(Value::as_u64)
    }

    /// Whether `summary.json` exists (the trainer writes it at the end).
    pub fn finished(&self) -> bool {
        self.summary.is_some()
    }

    /// The lines of one split, in file order.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(move |r| r.split == split)
    }

    /// A number from `summary.json` at a `/`-separated JSON pointer (e.g. `/franke/model/rms`).
    pub fn summary_number(&self, pointer: &str) -> Option<f64> {
        self.summary.as_ref()?.pointer(pointer)?.as_f64()
    }

    /// The checkpoint directory to analyse: `last/`, else `best/`, if either holds a model.
    pub fn checkpoint_dir(&self) -> Option<PathBuf> {
        ["last", "best"]
            .iter()
            .map(|d| self.dir.join(d))
            .find(|d| d.join("model.safetensors").is_file() && d.join(CONFIG_FILE).is_file())
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {} as JSON", path.display()))
}

/// Reads `metrics.jsonl`; a missing file gives no records. A malformed line is an error naming
/// the line, except a cut-off last line (a run killed mid-write), which is skipped.
pub fn read_metrics(path: &Path) -> Result<Vec<Record>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let last = i + 1 == lines.len() && !text.ends_with('\n');
        match parse_record(line) {
            Ok(r) => out.push(r),
            Err(e) if last => tracing::warn!("{}: skipping cut-off last line: {e}", path.display()),
            Err(e) => bail!("{}: line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

fn parse_record(line: &str) -> Result<Record> {
    let v: Value = serde_json::from_str(line).context("not a JSON object")?;
    let num = |k: &str| v.get(k).and_then(Value::as_f64);
    let Some(step) = v.get("step").and_then(Value::as_u64) else { bail!("no integer `step`") };
    let split = match v.get("split").and_then(Value::as_str) {
        Some("train") => Split::Train,
        Some("val") => Split::Val,
        other => bail!("`split` must be \"train\" or \"val\", got {other:?}"),
    };
    let Some(loss) = num("loss") else { bail!("no numeric `loss`") };
    Ok(Record {
        step,
        split,
        loss,
        lr: num("lr"),
        grad_norm: num("grad_norm"),
        tokens_per_s: num("tokens_per_s"),
        wall_s: num("wall_s"),
    })
}
