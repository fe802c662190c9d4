//! Sweeps: expand a grid of runs from a sweep file and train them, one after another, in
//! parallel child processes (`--jobs`), or a stable share of them (`--shard I/N`).
//!
//! ```toml
//! out = "checkpoints/sweeps/quick"        # default output directory
//! [[base]]
//! config = "configs/recall.toml"          # a run config
//! name = "recall"                         # optional; default: the config's name or file stem
//! set = { "train.steps" = 300 }           # optional dotted overrides for this base
//! [grid]                                  # every combination, applied to every base
//! "model.metric" = ["dot", "neg_sq_euclid", "idw"]   # or "all": every metric
//! seed = [1, 2, 3]
//! [margins]                               # optional: the report's equivalence margins
//! final_val_loss = 0.01                   # absolute, in the quantity's unit
//! "key_distances.median" = "5%"           # or relative to the baseline's mean
//! ```
//!
//! Runs land in `OUT/runs/<name>`, named `<base>_<key>-<value>_...` from the grid values (the
//! last component of each dotted key; see [`naming`]). Each run directory keeps the plan the
//! sweep made for it (`sweep_run.json`: name, base, full grid values, config); when an edited
//! sweep plans a different config, the sweep stops with an error instead of skipping or
//! resuming the stale run. A run that fails is recorded in its directory (`failure.json`) and
//! the sweep goes on with the others.
//!
//! Modules: [`plan`] (expansion), [`naming`] (safe, distinct directory names), [`shard`]
//! (stable assignment to shards), [`stale`] (finished runs trained on other inputs), [`record`] (the sweep's
//! files in a run directory), [`one`] (training one planned run), [`jobs`] (the scheduler),
//! [`progress`] (what the user sees while it runs), [`tune`] (a tuned axis: selection on the
//! first seed's validation loss, the other seeds at the chosen value). A run is claimed with the one run-directory
//! lock, [`crate::lock::RunLock`], and trained under it.

pub mod jobs;
pub mod naming;
pub mod one;
pub mod plan;
pub mod progress;
pub mod record;
pub mod shard;
pub mod stale;
pub mod tune;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RunConfig;

pub use jobs::{Executor, SweepResult, run_sweep};
pub use one::Outcome;
pub use plan::{expand, load};
pub use record::{Failure, RunState};
pub use shard::Shard;

/// A sweep file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// Default output directory.
    pub out: Option<PathBuf>,
    /// The base run configs.
    pub base: Vec<Base>,
    /// Dotted key -> list of values (or `"all"` for `model.metric`); every combination is
    /// applied to every base (a base's own `grid` replaces or adds axes for that base).
    #[serde(default)]
    pub grid: toml::Table,
    /// The report's equivalence margins by quantity key, replacing the defaults the quantities
    /// declare: a number (absolute) or a percentage of the baseline's mean (`"10%"`); read with
    /// [`SweepFile::margins`].
    #[serde(default)]
    pub margins: toml::Table,
    /// One dotted key -> its values, tuned per configuration on the first seed's validation
    /// loss; the other seeds run at the chosen value only ([`tune`]).
    #[serde(default)]
    pub tune: toml::Table,
}

impl SweepFile {
    /// The `[margins]` overrides, `(quantity key, margin)`; an unreadable one is an error naming
    /// its key (whether the key names a compared quantity is checked by the report).
    pub fn margins(&self) -> anyhow::Result<Vec<(String, crate::tasks::report::Margin)>> {
        self.margins
            .iter()
            .map(|(k, v)| {
                let m = crate::tasks::report::Margin::parse(v)
                    .map_err(|e| anyhow::anyhow!("[margins] `{k}`: {e}"))?;
                Ok((k.clone(), m))
            })
            .collect()
    }
}

/// One base run config of a sweep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// Path of the run config (TOML), relative to the working directory or to the sweep file.
    pub config: PathBuf,
    /// Name used as the prefix of its runs.
    pub name: Option<String>,
    /// Dotted overrides for this base.
    #[serde(default)]
    pub set: toml::Table,
    /// Grid axes for this base alone: a key here replaces the sweep's `[grid]` axis of the same
    /// key (e.g. a learning-rate range suited to this task), a new key adds an axis.
    #[serde(default)]
    pub grid: toml::Table,
}

/// One run of an expanded sweep.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRun {
    /// Run name, also its directory name (safe for file systems, distinct within the sweep).
    pub name: String,
    /// The base's name.
    pub base: String,
    /// The grid values of this run, `(dotted key, value)`, in full.
    pub grid: Vec<(String, Value)>,
    /// The run config, with the base's overrides and the grid values applied.
    #[serde(skip)]
    pub config: RunConfig,
}

impl PlannedRun {
    /// The run's directory under the sweep's output directory: `out/runs/<name>`.
    pub fn dir(&self, out: &Path) -> PathBuf {
        runs_dir(out).join(&self.name)
    }
}

/// Where a sweep's run directories live: `out/runs`.
pub fn runs_dir(out: &Path) -> PathBuf {
    out.join("runs")
}

/// Where a sweep's report goes: `out/report`.
pub fn report_dir(out: &Path) -> PathBuf {
    out.join("report")
}
