//! Which runs a report may count, and how: each directory once, runs that have not started
//! listed apart, runs whose checkpoint cannot be read (I/O, truncated, not matching its config)
//! listed apart as unreadable, runs whose weights are not finite named and kept out of the
//! numbers. Every checkpoint is opened by [`attnlab_model::Checkpoint::open`].

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use attnlab_model::checkpoint;
use attnlab_train::RunDir;
use attnlab_train::sweep::record::PLANNED_FILE;

use crate::run::Run;

/// A run's standing in a report; runs of different standing are never pooled as seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `summary.json` written, weights finite.
    Finished,
    /// Still training or stopped early (no `summary.json`), weights finite.
    Unfinished,
    /// Its checkpoint holds NaN or infinite weights: named, never counted in the numbers.
    NonFinite,
}

impl Status {
    /// Of `run`: its checkpoint is opened (a run without one counts as finite; a checkpoint
    /// that cannot be read is screened out by [`load_runs`] before this is asked).
    pub fn of(run: &Run) -> Self {
        let non_finite =
            run.checkpoint_dir().is_some_and(|d| checkpoint::verify(&d).is_err_and(|e| e.is_divergence()));
        match (non_finite, run.finished()) {
            (true, _) => Self::NonFinite,
            (false, true) => Self::Finished,
            (false, false) => Self::Unfinished,
        }
    }

    /// The word shown in labels and tables.
    pub fn word(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Unfinished => "unfinished",
            Self::NonFinite => "non-finite weights",
        }
    }
}

/// A run whose checkpoint could not be read: listed apart, never called diverged.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    /// The run directory, as given.
    pub dir: String,
    /// What went wrong, naming the file (and the OS error, for I/O).
    pub error: String,
}

impl Unreadable {
    /// `DIR could not be read: ERROR`.
    pub fn line(&self) -> String {
        format!("{} could not be read: {}", self.dir, self.error)
    }
}

/// The directories of a report, screened.
#[derive(Debug, Clone, Default)]
pub struct Screened {
    /// The runs to report on, in order.
    pub runs: Vec<Run>,
    /// Directories given more than once (counted once).
    pub duplicates: Vec<String>,
    /// Run directories with no metrics yet, and planned runs of a sweep not started.
    pub not_started: Vec<String>,
    /// Runs whose checkpoint could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// The runs of `dirs` to report on, in order: each directory once (by its canonical path), a
/// directory with a run config (or a sweep's plan, `sweep_run.json`) but no metrics yet set
/// apart as not started, a run whose checkpoint cannot be read set apart as unreadable; other
/// bad directories are errors naming them.
pub fn load_runs(dirs: &[PathBuf]) -> Result<Screened> {
    let mut out = Screened::default();
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        if seen.contains(&key) {
            out.duplicates.push(dir.display().to_string());
            continue;
        }
        seen.push(key);
        if has_not_started(dir) {
            out.not_started.push(dir.display().to_string());
            continue;
        }
        let run = Run::load(dir)?;
        if let Some(error) = unreadable_checkpoint(&run) {
            out.unreadable.push(Unreadable { dir: dir.display().to_string(), error });
            continue;
        }
        out.runs.push(run);
    }
    distinguish_names(&mut out.runs);
    Ok(out)
}

/// Why the run's checkpoint cannot be read, when it cannot (non-finite weights are readable:
/// they are the run's result). The checkpoint is `last/` when it exists (without its files it
/// is unreadable too), else the one [`Run::checkpoint_dir`] names.
fn unreadable_checkpoint(run: &Run) -> Option<String> {
    let last = RunDir::new(&run.dir).last_dir();
    let dir = if last.exists() { Some(last) } else { run.checkpoint_dir() }?;
    match checkpoint::verify(&dir) {
        Err(e) if !e.is_divergence() => Some(e.to_string()),
        _ => None,
    }
}

/// The `report.md` section listing the runs that could not be read (empty when none).
pub fn unreadable_section(list: &[Unreadable]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n## Runs that could not be read\n\nTheir checkpoint could not be opened (a file problem, not a result of training): left out of every table and picture above.\n\n",
    );
    for u in list {
        md.push_str(&format!("- {}\n", u.line()));
    }
    md
}

/// Runs that share a name (one config trained into two directories) get their directory
/// appended, `name (dir)`, so that the report's tables tell them apart.
fn distinguish_names(runs: &mut [Run]) {
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    for (i, run) in runs.iter_mut().enumerate() {
        if names.iter().enumerate().any(|(j, n)| j != i && *n == names[i]) {
            run.name = format!("{} ({})", names[i], run.dir.display());
        }
    }
}

/// A run directory (it has `config.json`, or a sweep's `sweep_run.json`) whose `metrics.jsonl`
/// is missing or empty.
fn has_not_started(dir: &Path) -> bool {
    let run = RunDir::new(dir);
    let metrics = run.metrics_path();
    (run.config_path().is_file() || dir.join(PLANNED_FILE).is_file())
        && !crate::run::is_checkpoint_dir(dir)
        && fs::read_to_string(&metrics).map_or(!metrics.exists(), |t| t.trim().is_empty())
}
