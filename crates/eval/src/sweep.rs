//! `attnlab sweep`: expand a grid of runs from a sweep file, train what has not finished, and
//! write one report for the whole grid.
//!
//! ```toml
//! out = "checkpoints/sweeps/quick"        # default output directory
//! [[base]]
//! config = "configs/recall.toml"          # a run config
//! name = "recall"                         # optional; default: the config's name or file stem
//! set = { "train.steps" = 300 }           # optional dotted overrides for this base
//! [grid]                                  # every combination, applied to every base
//! "model.metric" = ["dot", "neg_sq_euclid", "idw"]
//! seed = [1, 2, 3]
//! ```
//!
//! Runs land in `OUT/runs/<name>`, named `<base>_<key>-<value>_...` from the grid values (the
//! last component of each dotted key), and the report in `OUT/report/`. Each run directory keeps
//! the config the sweep planned for it (`sweep_run.json`); when an edited sweep plans a different
//! one, the sweep stops with an error instead of skipping or resuming the stale run.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use attnlab_train::config::{set_dotted, toml_to_value};
use attnlab_train::{RunConfig, TrainOptions, is_finished};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::group::{sanitize, value_text};

/// A sweep file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// Default output directory.
    pub out: Option<PathBuf>,
    /// The base run configs.
    pub base: Vec<Base>,
    /// Dotted key -> list of values; every combination is applied to every base.
    #[serde(default)]
    pub grid: toml::Table,
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
}

/// One run of an expanded sweep.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRun {
    /// Run name, also its directory name.
    pub name: String,
    /// The base's name.
    pub base: String,
    /// The grid values of this run, `(dotted key, value)`.
    pub grid: Vec<(String, Value)>,
    /// The run config, with the base's overrides and the grid values applied.
    #[serde(skip)]
    pub config: RunConfig,
}

/// Reads a sweep file and expands it into runs (bases x grid combinations, in file order).
pub fn load(path: &Path) -> Result<(SweepFile, Vec<PlannedRun>)> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let sweep: SweepFile =
        toml::from_str(&text).with_context(|| format!("parsing sweep file {}", path.display()))?;
    let runs = expand(&sweep, path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("in {}", path.display()))?;
    Ok((sweep, runs))
}

/// Expands `sweep`; relative base paths are tried from the working directory, then `sweep_dir`.
pub fn expand(sweep: &SweepFile, sweep_dir: &Path) -> Result<Vec<PlannedRun>> {
    if sweep.base.is_empty() {
        bail!("the sweep has no [[base]] run config")
    }
    let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
    for (key, values) in &sweep.grid {
        let toml::Value::Array(values) = values else {
            bail!("grid key `{key}` must list its values, e.g. [1, 2]")
        };
        if values.is_empty() {
            bail!("grid key `{key}` has no values")
        }
        axes.push((key.clone(), values.iter().map(serde_json::to_value).collect::<Result<_, _>>()?));
    }
    let combos = combinations(&axes);
    let mut runs = Vec::new();
    let mut base_names = Vec::new();
    for (i, base) in sweep.base.iter().enumerate() {
        let path = locate(&base.config, sweep_dir)?;
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut value = toml_to_value(&text).with_context(|| format!("parsing {}", path.display()))?;
        for (key, v) in &base.set {
            set_dotted(&mut value, key, serde_json::to_value(v)?)
                .with_context(|| format!("base {}: `set` key `{key}`", path.display()))?;
        }
        let stem =
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| format!("base{i}"));
        let cfg_name = value.get("name").and_then(Value::as_str).map(str::to_string);
        let mut base_name = sanitize(&base.name.clone().or(cfg_name).unwrap_or(stem));
        if base_names.contains(&base_name) {
            base_name = format!("{base_name}-{}", i + 1);
        }
        base_names.push(base_name.clone());
        let known = RunConfig::from_value(value.clone())
            .with_context(|| format!("base {}", path.display()))?
            .to_value()?;
        for (key, _) in &axes {
            if !has_dotted(&known, key) && !has_dotted(&value, key) {
                bail!("grid key `{key}` is not a key of base {} ({})", base_name, path.display())
            }
        }
        for combo in &combos {
            let mut v = value.clone();
            let mut parts = vec![base_name.clone()];
            for (key, val) in combo {
                set_dotted(&mut v, key, val.clone()).with_context(|| format!("grid key `{key}`"))?;
                let short = key.rsplit('.').next().unwrap_or(key);
                parts.push(sanitize(&format!("{short}-{}", value_text(val))));
            }
            let name = parts.join("_");
            set_dotted(&mut v, "name", Value::String(name.clone()))?;
            let config =
                RunConfig::from_value(v).with_context(|| format!("run {name} (base {})", path.display()))?;
            runs.push(PlannedRun { name, base: base_name.clone(), grid: combo.clone(), config });
        }
    }
    let mut names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("two runs of the sweep are both named `{}`; give the bases distinct names", w[0])
    }
    Ok(runs)
}

/// Every combination of the axes' values, the first axis varying slowest.
fn combinations(axes: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    axes.iter().fold(vec![Vec::new()], |acc, (key, values)| {
        acc.into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect()
    })
}

fn has_dotted(v: &Value, key: &str) -> bool {
    key.split('.').try_fold(v, |cur, part| cur.get(part)).is_some()
}

fn locate(path: &Path, sweep_dir: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let beside = sweep_dir.join(path);
    if beside.is_file() {
        return Ok(beside);
    }
    bail!(
        "base config {} not found (looked in the working directory and in {})",
        path.display(),
        sweep_dir.display()
    )
}

/// What happened to one run when the sweep ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Already finished; left alone.
    Skipped,
    /// Continued from its last checkpoint.
    Resumed,
    /// Trained from the start.
    Trained,
}

/// Trains every run of `runs` under `out/runs/` that has not finished (resuming interrupted
/// ones), then writes the report of all of them to `out/report/`. Returns each run's outcome.
pub fn run_sweep(runs: &[PlannedRun], out: &Path, opts: &TrainOptions) -> Result<Vec<Outcome>> {
    let runs_dir = out.join("runs");
    fs::create_dir_all(&runs_dir).with_context(|| format!("creating {}", runs_dir.display()))?;
    let mut outcomes = Vec::new();
    let mut dirs = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let dir = runs_dir.join(&run.name);
        let outcome = train_one(run, &dir, opts).with_context(|| format!("sweep run {}", run.name))?;
        tracing::info!(run = %run.name, n = i + 1, of = runs.len(), ?outcome, "sweep");
        outcomes.push(outcome);
        dirs.push(dir);
    }
    let manifest: Vec<Value> = runs
        .iter()
        .zip(&outcomes)
        .map(|(r, o)| serde_json::json!({"name": r.name, "base": r.base, "grid": r.grid, "outcome": o}))
        .collect();
    let path = out.join("sweep.json");
    fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("writing {}", path.display()))?;
    crate::write_report(&dirs, &out.join("report"))?;
    Ok(outcomes)
}

/// The run config a sweep planned for a run directory, kept beside the run.
const PLANNED_FILE: &str = "sweep_run.json";

/// Refuses a run directory made by the sweep from a different config (the sweep file or a base
/// config changed since): skipping or resuming it would mix stale results into the report.
/// Records the planned config in a new directory.
fn check_planned(run: &PlannedRun, dir: &Path) -> Result<()> {
    let planned = run.config.to_value()?;
    let path = dir.join(PLANNED_FILE);
    if path.is_file() {
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let saved: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if saved != planned {
            bail!(
                "{} was trained from a different config than the sweep now gives for run `{}` \
                 (the sweep file or a base config changed): delete that directory to retrain it, \
                 or sweep into another --out",
                dir.display(),
                run.name
            )
        }
    } else if dir.join("config.json").is_file() {
        bail!(
            "{} holds a run that this sweep did not plan (no {PLANNED_FILE}): delete it or sweep \
             into another --out",
            dir.display()
        )
    } else {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(&path, serde_json::to_vec_pretty(&planned)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn train_one(run: &PlannedRun, dir: &Path, opts: &TrainOptions) -> Result<Outcome> {
    check_planned(run, dir)?;
    if is_finished(dir) {
        return Ok(Outcome::Skipped);
    }
    let mut opts = opts.clone();
    opts.resume = dir.join("last").join("config.json").is_file();
    if !opts.resume && dir.exists() {
        // Interrupted before its first checkpoint: nothing to keep but stale metrics.
        for f in ["metrics.jsonl", "config.json", "summary.json"] {
            let p = dir.join(f);
            if p.exists() {
                fs::remove_file(&p).with_context(|| format!("removing stale {}", p.display()))?;
            }
        }
    }
    attnlab_train::train(&run.config, dir, &opts)?;
    Ok(if opts.resume { Outcome::Resumed } else { Outcome::Trained })
}
