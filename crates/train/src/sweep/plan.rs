//! Expanding a sweep file into planned runs: bases x every combination of the grid values.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use attnlab_model::MetricKind;
use serde_json::Value;

use super::naming::{assign_names, sanitize};
use super::{PlannedRun, SweepFile};
use crate::RunConfig;
use crate::config::{reject_non_finite, set_dotted, toml_to_value};

/// The grid key whose value may be `"all"` (every attention metric).
const METRIC_KEY: &str = "model.metric";

/// Reads a sweep file and expands it into runs (bases x grid combinations, in file order).
pub fn load(path: &Path) -> Result<(SweepFile, Vec<PlannedRun>)> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let sweep: SweepFile =
        toml::from_str(&text).with_context(|| format!("parsing sweep file {}", path.display()))?;
    sweep.margins().with_context(|| format!("in {}", path.display()))?;
    let runs = expand(&sweep, path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("in {}", path.display()))?;
    Ok((sweep, runs))
}

/// Expands `sweep`; relative base paths are tried from the working directory, then `sweep_dir`.
/// Run names are made safe and distinct ([`assign_names`]); two runs with the same
/// configuration (e.g. `idw` and its alias `neglog` with the same seed) are an error naming both.
pub fn expand(sweep: &SweepFile, sweep_dir: &Path) -> Result<Vec<PlannedRun>> {
    if sweep.base.is_empty() {
        bail!("the sweep has no [[base]] run config")
    }
    super::tune::tuned_key(sweep)?;
    let mut runs = Vec::new();
    let mut base_names = Vec::new();
    for (i, base) in sweep.base.iter().enumerate() {
        let path = locate(&base.config, sweep_dir)?;
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut value = toml_to_value(&text).with_context(|| format!("parsing {}", path.display()))?;
        for (key, v) in &base.set {
            reject_non_finite(v, key).with_context(|| format!("base {}: `set`", path.display()))?;
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
        // A tuned key expands like an axis; which of its runs train is the tuner's choice.
        let mut grid = merged_grid(&sweep.grid, &base.grid);
        grid.extend(sweep.tune.iter().map(|(k, v)| (k.clone(), v.clone())));
        let axes = grid_axes(&grid).with_context(|| format!("base {base_name}"))?;
        if let Some((key, _)) = axes.iter().find(|(key, _)| base.set.contains_key(key)) {
            bail!(
                "base {base_name}: `{key}` is both in its `set` and a grid axis, whose values would replace \
                 the set one; to give this base values of its own, list them in the base's `grid`"
            )
        }
        let combos = combinations(&axes);
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
            for (key, val) in combo {
                set_dotted(&mut v, key, val.clone()).with_context(|| format!("grid key `{key}`"))?;
            }
            let label = format!("{base_name} {}", serde_json::to_string(combo)?);
            let config =
                RunConfig::from_value(v).with_context(|| format!("run {label} (base {})", path.display()))?;
            runs.push(PlannedRun {
                name: String::new(),
                base: base_name.clone(),
                grid: combo.clone(),
                config,
            });
        }
    }
    assign_names(&mut runs)?;
    for run in &mut runs {
        run.config.name = Some(run.name.clone());
    }
    refuse_identical(&runs)?;
    Ok(runs)
}

/// The sweep's grid with a base's own axes: the base's value for a key replaces the sweep's.
fn merged_grid(sweep: &toml::Table, base: &toml::Table) -> toml::Table {
    let mut grid = sweep.clone();
    grid.extend(base.iter().map(|(k, v)| (k.clone(), v.clone())));
    grid
}

/// The grid as `(dotted key, values)`, sorted by key; `model.metric = "all"` lists every metric.
fn grid_axes(grid: &toml::Table) -> Result<Vec<(String, Vec<Value>)>> {
    let mut axes = Vec::new();
    for (key, values) in grid {
        let values: Vec<Value> = match values {
            toml::Value::String(s) if key == METRIC_KEY && s == "all" => {
                MetricKind::ALL.iter().map(|m| Value::String(m.name().to_string())).collect()
            }
            toml::Value::Array(values) => {
                values.iter().try_for_each(|v| reject_non_finite(v, key)).context("grid")?;
                values.iter().map(serde_json::to_value).collect::<Result<_, _>>()?
            }
            _ if key == METRIC_KEY => {
                bail!("grid key `{key}` must list its values, e.g. [\"dot\", \"idw\"], or be \"all\"")
            }
            _ => bail!("grid key `{key}` must list its values, e.g. [1, 2]"),
        };
        if values.is_empty() {
            bail!("grid key `{key}` has no values")
        }
        axes.push((key.clone(), values));
    }
    // Keys in a fixed order, whatever order the file lists them in: run names (and so shards)
    // depend only on the values.
    axes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(axes)
}

/// Refuses two planned runs whose configurations are identical apart from the name: they would
/// train the same thing twice and be counted as two seeds.
fn refuse_identical(runs: &[PlannedRun]) -> Result<()> {
    let mut seen: Vec<(Value, &str)> = Vec::with_capacity(runs.len());
    for run in runs {
        let mut v = run.config.to_value()?;
        if let Some(obj) = v.as_object_mut() {
            obj.remove("name");
        }
        if let Some((_, first)) = seen.iter().find(|(c, _)| *c == v) {
            bail!(
                "runs `{first}` and `{}` have identical configurations (an alias such as `neglog` for \
                 `idw`, or a value listed twice): they would be counted as two seeds; remove one",
                run.name
            )
        }
        seen.push((v, &run.name));
    }
    Ok(())
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
