//! `attnlab eval`: reads runs, analyses them, and writes `report.json`, `report.md` and pictures.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use attnlab_train::TaskConfig;
use attnlab_train::tasks::Column;
use serde::Serialize;

use crate::analysis::{GeometryReport, analyse_geometry, analyse_params};
use crate::baseline::{DEFAULT_BASELINE, baselines};
use crate::comparisons::{quantities, tables};
use crate::dynamics::{Escape, LrRange, Threshold, escapes, lr_ranges};
use crate::figures::{LayerCurves, XAxis, geometry_chart, loss_curves};
use crate::findings::Findings;
use crate::group::{TaskGroup, group_runs};
use crate::numbers::{Numbers, run_numbers};
use crate::params::HeadParams;
use crate::run::Run;
use crate::screen::Status;
use crate::stats::MeanStd;
use crate::stats::compare::ComparisonTable;

/// The whole report, as written to `report.json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Number of runs read (each directory once).
    pub n_runs: usize,
    /// Directories given more than once (counted once).
    pub duplicates: Vec<String>,
    /// Run directories with no metrics yet (left out).
    pub not_started: Vec<String>,
    /// Runs whose checkpoint could not be read (left out, never called diverged).
    pub unreadable: Vec<crate::screen::Unreadable>,
    /// The metric every configuration is compared with.
    pub baseline: String,
    /// What the runs say about each part of the question (see [`crate::findings`]).
    pub findings: Findings,
    /// One entry per task configuration.
    pub groups: Vec<GroupReport>,
}

/// Choices of the report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The metric configurations are compared with (default `dot`).
    pub baseline: String,
    /// Written by a sweep into its own `OUT/report` (anywhere else inside a sweep directory is
    /// refused).
    pub sweep_report: bool,
    /// Run directories that stopped before their last step (a sweep's failed runs): counted in
    /// the learning-rate ranges (as diverged where their loss or recorded failure says so), never
    /// in the numbers, tables or pictures.
    pub stopped: Vec<PathBuf>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self { baseline: DEFAULT_BASELINE.to_string(), sweep_report: false, stopped: Vec::new() }
    }
}

/// The runs of one task configuration.
#[derive(Debug, Serialize)]
pub struct GroupReport {
    /// File-name identifier (`recall`, `text_2`).
    pub id: String,
    /// Task kind.
    pub task: String,
    /// The task section of the runs' config, as compact JSON.
    pub task_config: String,
    /// Text task with a character-level tokenizer (bits per token are bits per character).
    pub char_level: bool,
    /// The final table's columns, as the task declares them.
    pub columns: Vec<Column>,
    /// Runs that differ only in the seed, with mean and std of every number.
    pub seed_groups: Vec<SeedGroupReport>,
    /// Every run.
    pub runs: Vec<RunReport>,
    /// Each configuration against its baseline, one table per quantity (Welch, Holm).
    pub comparisons: Vec<ComparisonTable>,
    /// Steps to the task's threshold per configuration (empty without a threshold).
    pub escapes: Vec<Escape>,
    /// Learning rates tried per setting, when the runs span several.
    pub lr_ranges: Vec<LrRange>,
    /// Pictures, relative to the report directory.
    pub figures: Vec<String>,
    /// The task's own pictures (a subset of `figures`).
    pub task_figures: Vec<String>,
}

/// Mean and std over the seeds of one configuration.
#[derive(Debug, Serialize)]
pub struct SeedGroupReport {
    /// What tells the configuration apart (e.g. `metric=idw`).
    pub label: String,
    /// The attention metric.
    pub metric: String,
    /// Where the normalisation sits (see [`crate::baseline::placement`]).
    pub placement: String,
    /// Run names.
    pub runs: Vec<String>,
    /// Every number of the runs' summaries, over seeds.
    pub numbers: BTreeMap<String, MeanStd>,
}

/// One run's numbers and analyses.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// Run name.
    pub name: String,
    /// Run directory.
    pub dir: PathBuf,
    /// Its seed group's label.
    pub label: String,
    /// Attention metric.
    pub metric: String,
    /// Seed.
    pub seed: Option<u64>,
    /// Whether `summary.json` exists.
    pub finished: bool,
    /// Whether its checkpoint holds NaN or infinite weights (then it has no numbers).
    pub non_finite_weights: bool,
    /// Every number (summary, or derived from `metrics.jsonl`).
    pub numbers: Numbers,
    /// Learned parameters per layer and head, when the checkpoint has attention blocks.
    pub params: Option<Vec<HeadParams>>,
    /// Attention geometry on validation inputs, when the model kind supports it.
    pub geometry: Option<GeometryReport>,
    /// Why an analysis was skipped or failed.
    pub notes: Vec<String>,
}

/// Reads every run directory in `run_dirs` (each once) and writes the report into `out`.
/// A directory that is not a run is an error naming it; runs without metrics are listed as not
/// started; an `out` that is a run, inside one, or holds a checkpoint is refused.
pub fn write_report(run_dirs: &[PathBuf], out: &Path) -> Result<Report> {
    write_report_with(run_dirs, out, &ReportOptions::default())
}

/// [`write_report`] with a choice of baseline.
pub fn write_report_with(run_dirs: &[PathBuf], out: &Path, options: &ReportOptions) -> Result<Report> {
    if run_dirs.is_empty() {
        anyhow::bail!("no run directories given")
    }
    let inputs: Vec<&Path> = run_dirs.iter().map(PathBuf::as_path).collect();
    let writer =
        if options.sweep_report { attnlab_train::Writer::SweepReport } else { attnlab_train::Writer::Report };
    attnlab_train::check_output(out, &inputs, writer)?;
    let crate::screen::Screened { runs, duplicates, not_started, unreadable } =
        crate::screen::load_runs(run_dirs)?;
    if runs.is_empty() {
        let mut why: Vec<String> = unreadable.iter().map(crate::screen::Unreadable::line).collect();
        why.extend(not_started.iter().map(|d| format!("{d} has no metrics yet")));
        anyhow::bail!("no run to report on: {}", why.join("; "))
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let groups = group_runs(&runs);
    let stopped: Vec<Run> = options.stopped.iter().filter_map(|d| Run::load(d).ok()).collect();
    let mut reports = Vec::new();
    for group in &groups {
        reports.push(group_report(group, &runs, &stopped, out, &options.baseline)?);
    }
    let findings = Findings::of(&reports, &options.baseline);
    let report = Report {
        n_runs: runs.len(),
        duplicates,
        not_started,
        unreadable,
        baseline: options.baseline.clone(),
        findings,
        groups: reports,
    };
    let json = serde_json::to_string_pretty(&report)?;
    let json_path = out.join("report.json");
    fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    let md_path = out.join("report.md");
    let md = crate::markdown::render(&report) + &crate::screen::unreadable_section(&report.unreadable);
    fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    Ok(report)
}

fn group_report(
    group: &TaskGroup,
    runs: &[Run],
    stopped: &[Run],
    out: &Path,
    baseline: &str,
) -> Result<GroupReport> {
    let mut run_reports = Vec::new();
    let mut seed_groups = Vec::new();
    let mut all_numbers = Vec::new();
    for sg in &group.seed_groups {
        let mut numbers: Vec<Numbers> = Vec::new();
        for &i in &sg.runs {
            let run = &runs[i];
            tracing::info!(run = %run.name, "analysing");
            let non_finite = Status::of(run) == Status::NonFinite;
            let mut notes = Vec::new();
            let (nums, params, geometry) = if non_finite {
                let dir = run.checkpoint_dir().unwrap_or_else(|| run.dir.clone());
                notes.push(format!(
                    "{} holds NaN or infinite weights: the model diverged and is left out of every number",
                    dir.display()
                ));
                (Numbers::new(), None, None)
            } else {
                let mut nums = run_numbers(run);
                let params = analyse_params(run).unwrap_or_else(|e| {
                    notes.push(format!("parameters: {e:#}"));
                    None
                });
                let geometry = analyse_geometry(run).unwrap_or_else(|e| {
                    notes.push(format!("geometry: {e:#}"));
                    None
                });
                if let Some(g) = &geometry {
                    nums.extend(crate::diagnostics::run_numbers(&g.heads));
                }
                (nums, params, geometry)
            };
            if !non_finite {
                numbers.push(nums.clone());
            }
            run_reports.push(RunReport {
                name: run.name.clone(),
                dir: run.dir.clone(),
                label: sg.label.clone(),
                metric: sg.metric.clone(),
                seed: run.seed(),
                finished: run.finished(),
                non_finite_weights: non_finite,
                numbers: nums,
                params,
                geometry,
                notes,
            });
        }
        seed_groups.push(SeedGroupReport {
            label: sg.label.clone(),
            metric: sg.metric.clone(),
            placement: sg.runs.first().map_or("-".into(), |&i| crate::baseline::placement(&runs[i].config)),
            runs: sg.runs.iter().map(|&i| runs[i].name.clone()).collect(),
            numbers: over_seeds(&numbers),
        });
        all_numbers.push(numbers);
    }
    let base_of = baselines(group, runs, baseline);
    let mut figures = Vec::new();
    for x in [XAxis::Step, XAxis::Wall] {
        figures.extend(loss_curves(out, group, runs, x, &base_of)?);
    }
    let measures = geometry_measures(group, &run_reports);
    if measures.iter().any(|(_, c)| c.iter().any(|(_, ys)| !ys.is_empty())) {
        figures.extend(geometry_chart(out, group, &measures, &base_of)?);
    }
    let first = group.seed_groups.first().and_then(|sg| sg.runs.first()).map(|&i| &runs[i]);
    let spec = first.map(Run::task_report);
    let pictures = spec.as_ref().map_or(&[][..], |s| s.pictures.as_slice());
    let task_figures = match crate::task_pictures::task_pictures(out, group, runs, pictures) {
        Ok(paths) => names(&paths),
        Err(e) => {
            tracing::warn!(group = %group.id, "task pictures skipped: {e:#}");
            Vec::new()
        }
    };
    let mut figures = names(&figures);
    figures.extend(task_figures.iter().cloned());
    let char_level =
        matches!(first.and_then(|r| r.task_config.as_ref()), Some(TaskConfig::Text(t)) if t.char_level());
    let names_of: Vec<Vec<String>> = seed_groups.iter().map(|sg| sg.runs.clone()).collect();
    let columns = spec.as_ref().map(|s| s.columns.clone()).unwrap_or_default();
    let comparisons = tables(group, &base_of, &all_numbers, &names_of, &quantities(&columns));
    let threshold = first.and_then(|r| Threshold::of_task(r.task_config.as_ref()));
    Ok(GroupReport {
        id: group.id.clone(),
        task: group.task.clone(),
        task_config: spec.as_ref().map_or_else(|| "-".to_string(), |s| s.config_text.clone()),
        char_level,
        columns,
        seed_groups,
        runs: run_reports,
        comparisons,
        escapes: escapes(group, runs, threshold),
        lr_ranges: lr_ranges(group, runs, stopped),
        figures,
        task_figures,
    })
}

/// File names of `paths`.
fn names(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect()
}

fn over_seeds(numbers: &[Numbers]) -> BTreeMap<String, MeanStd> {
    let mut keys: Vec<&String> = numbers.iter().flat_map(|n| n.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let xs: Vec<f64> = numbers.iter().filter_map(|n| n.get(k).copied()).collect();
            MeanStd::of(&xs).map(|m| (k.clone(), m))
        })
        .collect()
}

/// Per seed group, per layer means (over heads and seeds) of each geometry measure.
fn geometry_measures(group: &TaskGroup, runs: &[RunReport]) -> Vec<(&'static str, LayerCurves)> {
    type Get = fn(&crate::geometry::HeadGeometry) -> f64;
    let measures: [(&str, Get); 8] = [
        ("key-norm CV", |g| g.key_norm_cv),
        ("entropy / uniform", |g| g.entropy_ratio()),
        ("mean distance", |g| g.mean_distance),
        ("TV to dot (same eff. scale)", |g| g.tv_to_dot),
        ("max |score|", |g| g.max_logit),
        ("sink mass (1st key)", |g| g.sink_mass),
        ("unselected keys", |g| g.unselected_keys),
        ("entropy (nats)", |g| g.entropy),
    ];
    measures
        .iter()
        .map(|(name, get)| {
            let curves = group
                .seed_groups
                .iter()
                .map(|sg| {
                    let heads =
                        runs.iter().filter(|r| r.label == sg.label).filter_map(|r| r.geometry.as_ref());
                    let items = heads.flat_map(|g| g.heads.iter().map(|h| (h.layer, get(h))));
                    (sg.label.clone(), per_layer_mean(items))
                })
                .collect();
            (*name, curves)
        })
        .collect()
}

/// Mean of the values of each layer, for `(layer, value)` items.
pub fn per_layer_mean(items: impl Iterator<Item = (usize, f64)>) -> Vec<f64> {
    let mut sums: Vec<(f64, usize)> = Vec::new();
    for (layer, v) in items {
        if sums.len() <= layer {
            sums.resize(layer + 1, (0.0, 0));
        }
        sums[layer].0 += v;
        sums[layer].1 += 1;
    }
    sums.into_iter().map(|(s, n)| if n > 0 { s / n as f64 } else { f64::NAN }).collect()
}
