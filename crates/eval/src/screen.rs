//! Which runs a report may count, and how: each directory once, runs that have not started
//! listed apart, runs whose weights are not finite named and kept out of the numbers.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;

use attnlab_train::RunDir;

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
    /// Of `run`: its checkpoint's weights are read (a run without one counts as finite).
    pub fn of(run: &Run) -> Self {
        let non_finite =
            run.checkpoint_dir().is_some_and(|d| !attnlab_train::guard::checkpoint_is_finite(&d));
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

/// The runs of `dirs` to report on, in order: each directory once (by its canonical path), a
/// directory with a run config but no metrics yet set apart as not started. Returns
/// (runs, duplicates given, not started); other bad directories are errors naming them.
pub fn load_runs(dirs: &[PathBuf]) -> Result<(Vec<Run>, Vec<String>, Vec<String>)> {
    let (mut runs, mut duplicates, mut not_started) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        if seen.contains(&key) {
            duplicates.push(dir.display().to_string());
            continue;
        }
        seen.push(key);
        if has_not_started(dir) {
            not_started.push(dir.display().to_string());
            continue;
        }
        runs.push(Run::load(dir)?);
    }
    distinguish_names(&mut runs);
    Ok((runs, duplicates, not_started))
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

/// A run directory (it has `config.json`) whose `metrics.jsonl` is missing or empty.
fn has_not_started(dir: &Path) -> bool {
    let run = RunDir::new(dir);
    let metrics = run.metrics_path();
    run.config_path().is_file()
        && fs::read_to_string(&metrics).map_or(!metrics.exists(), |t| t.trim().is_empty())
}
