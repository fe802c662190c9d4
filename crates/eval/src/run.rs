//! Reading one run directory through the format's owner, [`attnlab_train::rundir`]:
//! `config.json`, `metrics.jsonl`, `summary.json`, and the checkpoint the run is analysed by.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use attnlab_model::checkpoint::MODEL_FILE;
use attnlab_train::TaskConfig;
use attnlab_train::rundir::{self, CONFIG_FILE, METRICS_FILE, MetricLine, RunDir, Summary};
use attnlab_train::tasks::TaskReport;
use attnlab_train::tasks::report::generic_report;
use serde_json::Value;

pub use attnlab_train::rundir::Split;

/// A run directory, read.
#[derive(Debug, Clone)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// Display name: the config's `name`, else the directory name.
    pub name: String,
    /// The resolved run config (`config.json`), as JSON (for grouping by configuration).
    pub config: Value,
    /// The task configuration, when `config.json`'s `task` section is one this version reads.
    pub task_config: Option<TaskConfig>,
    /// Every metrics line, in file order.
    pub records: Vec<MetricLine>,
    /// `summary.json`, present once the run has finished.
    pub summary: Option<Summary>,
}

impl Run {
    /// Reads the run in `dir`. Errors name the directory: not a run (no `config.json`), no
    /// metrics yet, or a malformed file.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("{} is not a directory (expected a run directory)", dir.display())
        }
        let paths = RunDir::new(dir);
        if is_checkpoint_dir(dir) {
            let run = dir.parent().filter(|p| RunDir::new(p).config_path().is_file());
            let hint = match run {
                Some(run) => format!("pass its run directory {}", run.display()),
                None => "pass the run directory that holds it".to_string(),
            };
            bail!(
                "{} is a checkpoint directory ({CONFIG_FILE} + {MODEL_FILE}), not a run: {hint}",
                dir.display()
            )
        }
        if !paths.config_path().is_file() {
            bail!(
                "{} is not a run directory: it has no {CONFIG_FILE} (a run holds {CONFIG_FILE}, {METRICS_FILE}, last/)",
                dir.display()
            )
        }
        let config: Value = rundir::read_json(&paths.config_path())?;
        let records = rundir::read_metrics(dir)?;
        if records.is_empty() {
            bail!("run {} has no metrics yet ({METRICS_FILE} is missing or empty)", dir.display())
        }
        let summary = match paths.summary_path().is_file() {
            true => Some(rundir::read_json(&paths.summary_path())?),
            false => None,
        };
        let task_config = config.get("task").and_then(|t| match serde_json::from_value(t.clone()) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(run = %dir.display(), "task configuration not readable ({e}); generic report");
                None
            }
        });
        let name = config
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self { dir: dir.to_path_buf(), name, config, task_config, records, summary })
    }

    /// The task kind (`text`, `recall`, `scattered`, `prototype`), from the config or the summary.
    pub fn task(&self) -> String {
        let from_cfg = self.task_config.as_ref().map(TaskConfig::name);
        let raw = self.config.pointer("/task/kind").and_then(Value::as_str);
        let from_summary = self.summary.as_ref().map(Summary::task);
        from_cfg.or(raw).or(from_summary).unwrap_or("unknown").to_string()
    }

    /// What the report shows for this run's task (losses and cost only when the task
    /// configuration cannot be read).
    pub fn task_report(&self) -> TaskReport {
        match &self.task_config {
            Some(t) => t.report(),
            None => generic_report(self.config.get("task").map_or_else(|| "-".into(), Value::to_string)),
        }
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
    pub fn split(&self, split: Split) -> impl Iterator<Item = &MetricLine> {
        self.records.iter().filter(move |r| r.split == split)
    }

    /// The checkpoint directory to analyse (see [`RunDir::checkpoint_dir`]).
    pub fn checkpoint_dir(&self) -> Option<PathBuf> {
        RunDir::new(&self.dir).checkpoint_dir()
    }
}

/// A checkpoint directory (`config.json` and `model.safetensors`, no `metrics.jsonl`): what a
/// run keeps in `last/` and `best/`, not a run.
pub fn is_checkpoint_dir(dir: &Path) -> bool {
    let paths = RunDir::new(dir);
    paths.config_path().is_file() && dir.join(MODEL_FILE).exists() && !paths.metrics_path().exists()
}
