//! `attnlab eval`: the one orchestrator of the report, a one-way pipeline:
//! read (screen and group the runs) → analyse (numbers, parameters, geometry per run) →
//! compare (each seed group with its baseline, per quantity of the quantity table) → find
//! ([`crate::findings`]) → render (`report.json`, [`crate::markdown`] for `report.md`, the
//! pictures). The report's types are in [`crate::types`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use attnlab_train::tasks::report::Margin;

use crate::analysis::{analyse_geometry, analyse_params};
use crate::baseline::{DEFAULT_BASELINE, baselines};
use crate::comparisons::tables;
use crate::dynamics::{escapes, lr_ranges};
use crate::figures::{LayerCurves, XAxis, geometry_chart, loss_curves};
use crate::group::{TaskGroup, group_runs};
use crate::numbers::{Numbers, run_numbers};
use crate::quantity::Quantity;
use crate::run::Run;
use crate::screen::Status;
use crate::stats::{MeanStd, per_layer_mean};
use crate::tuning::Tuned;
pub use crate::types::{Findings, GroupReport, Part, Report, RunReport, SeedGroupReport, Statement};

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
    /// Equivalence margins replacing the quantities' own, by quantity key (a sweep file's
    /// `[margins]`); a key that names no compared quantity of the runs is an error.
    pub margins: Vec<(String, Margin)>,
    /// A sweep's tuned key and its selection and chosen runs: configurations are compared at
    /// their own chosen values, and the selection curves are tabled and drawn
    /// ([`crate::tuning`]).
    pub tuned: Option<Tuned>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            baseline: DEFAULT_BASELINE.to_string(),
            sweep_report: false,
            stopped: Vec::new(),
            margins: Vec::new(),
            tuned: None,
        }
    }
}

/// Reads every run directory in `run_dirs` (each once) and writes the report into `out`.
/// A directory that is not a run is an error naming it; runs without metrics are listed as not
/// started; an `out` that is a run, inside one, or holds a checkpoint is refused.
pub fn write_report(run_dirs: &[PathBuf], out: &Path) -> Result<Report> {
    write_report_with(run_dirs, out, &ReportOptions::default())
}

/// [`write_report`] with a choice of baseline, margins and a sweep's stopped runs.
pub fn write_report_with(run_dirs: &[PathBuf], out: &Path, options: &ReportOptions) -> Result<Report> {
    if run_dirs.is_empty() {
        bail!("no run directories given")
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
    let groups = group_runs(&runs);
    let quantities: Vec<Vec<Quantity>> = groups.iter().map(|g| group_quantities(g, &runs)).collect();
    apply_margins(&quantities, &options.margins)?;
    let quantities: Vec<Vec<Quantity>> =
        quantities.into_iter().map(|qs| with_margins(qs, &options.margins)).collect();
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    remove_old_figures(out)?;
    let stopped: Vec<Run> = options.stopped.iter().filter_map(|d| Run::load(d).ok()).collect();
    let mut reports = Vec::new();
    for (group, quantities) in groups.iter().zip(&quantities) {
        let context = GroupContext { runs: &runs, stopped: &stopped, out, options };
        reports.push(group_report(group, &context, quantities)?);
    }
    // Find.
    let findings = crate::findings::findings(&reports, &options.baseline);
    let report = Report {
        n_runs: runs.len(),
        duplicates,
        not_started,
        unreadable,
        baseline: options.baseline.clone(),
        findings,
        groups: reports,
    };
    // Render.
    let json = serde_json::to_string_pretty(&report)?;
    let json_path = out.join("report.json");
    fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    let md_path = out.join("report.md");
    let md = crate::markdown::render(&report);
    fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    Ok(report)
}

/// Removes the pictures an earlier report in `out` listed (its `report.json` `figures`), so a
/// report with fewer pictures leaves none of the old ones beside it. Files it did not list are
/// left alone; an unreadable old `report.json` removes nothing.
fn remove_old_figures(out: &Path) -> Result<()> {
    let Ok(text) = fs::read_to_string(out.join("report.json")) else { return Ok(()) };
    let Ok(old) = serde_json::from_str::<serde_json::Value>(&text) else { return Ok(()) };
    let groups = old.get("groups").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
    for name in groups
        .iter()
        .flat_map(|g| g.get("figures").and_then(serde_json::Value::as_array).cloned().unwrap_or_default())
    {
        // Only plain file names inside `out`.
        let Some(name) = name.as_str().filter(|n| !n.contains('/') && !n.contains("..")) else { continue };
        let path = out.join(name);
        if path.is_file() {
            fs::remove_file(&path).with_context(|| format!("removing the old picture {}", path.display()))?;
        }
    }
    Ok(())
}

/// The quantity table of a group: its task's columns (as the first run declares them), then
/// the geometry rows.
fn group_quantities(group: &TaskGroup, runs: &[Run]) -> Vec<Quantity> {
    let first = group.seed_groups.first().and_then(|sg| sg.runs.first()).map(|&i| &runs[i]);
    crate::quantity::table(&first.map(|r| r.task_report().columns).unwrap_or_default())
}

/// Refuses a margin override whose key names no compared quantity of any group.
fn apply_margins(quantities: &[Vec<Quantity>], margins: &[(String, Margin)]) -> Result<()> {
    let mut compared: Vec<&str> =
        quantities.iter().flatten().filter(|q| q.compared()).map(|q| q.key).collect();
    compared.sort_unstable();
    compared.dedup();
    for (key, _) in margins {
        if !compared.contains(&key.as_str()) {
            bail!(
                "[margins] `{key}` names no compared quantity of these runs; they compare {}",
                compared.join(", ")
            )
        }
    }
    Ok(())
}

/// `quantities` with the overridden margins.
fn with_margins(quantities: Vec<Quantity>, margins: &[(String, Margin)]) -> Vec<Quantity> {
    quantities
        .into_iter()
        .map(|q| match margins.iter().find(|(k, _)| k == q.key) {
            Some((_, m)) if q.compared() => q.within(*m),
            _ => q,
        })
        .collect()
}

/// Analyse: one run's numbers, parameters and geometry (none for non-finite weights).
fn run_report(run: &Run, label: &str, metric: &str) -> RunReport {
    tracing::info!(run = %run.name, "analysing");
    let non_finite = Status::of(run) == Status::NonFinite;
    let mut notes = Vec::new();
    let (numbers, params, geometry) = if non_finite {
        let dir = run.checkpoint_dir().unwrap_or_else(|| run.dir.clone());
        notes.push(format!(
            "{} holds NaN or infinite weights: the model diverged and is left out of every number",
            dir.display()
        ));
        (Numbers::new(), None, None)
    } else {
        let mut numbers = run_numbers(run);
        let params = analyse_params(run).unwrap_or_else(|e| {
            notes.push(format!("parameters: {e:#}"));
            None
        });
        let geometry = analyse_geometry(run).unwrap_or_else(|e| {
            notes.push(format!("geometry: {e:#}"));
            None
        });
        if let Some(g) = &geometry {
            numbers.extend(crate::quantity::head_numbers(&g.heads));
        }
        (numbers, params, geometry)
    };
    RunReport {
        name: run.name.clone(),
        dir: run.dir.clone(),
        label: label.to_string(),
        metric: metric.to_string(),
        seed: run.seed(),
        finished: run.finished(),
        non_finite_weights: non_finite,
        numbers,
        params,
        geometry,
        notes,
    }
}

/// A seed group's mean and std of every number, over its runs with finite weights.
fn seed_group_report(sg: &crate::group::SeedGroup, runs: &[Run], reports: &[&RunReport]) -> SeedGroupReport {
    let numbers: Vec<Numbers> =
        reports.iter().filter(|r| !r.non_finite_weights).map(|r| r.numbers.clone()).collect();
    SeedGroupReport {
        label: sg.label.clone(),
        metric: sg.metric.clone(),
        placement: sg.runs.first().map_or("-".into(), |&i| crate::baseline::placement(&runs[i].config)),
        runs: sg.runs.iter().map(|&i| runs[i].name.clone()).collect(),
        numbers: over_seeds(&numbers),
    }
}

/// What every group's report reads beside its own runs.
struct GroupContext<'a> {
    runs: &'a [Run],
    stopped: &'a [Run],
    out: &'a Path,
    options: &'a ReportOptions,
}

/// One task group's report. With a tuned key, `all` holds every value's seed groups: the
/// learning-rate ranges and the selection curves read them, everything else reads only the
/// seed groups at each configuration's chosen value.
fn group_report(all: &TaskGroup, cx: &GroupContext, quantities: &[Quantity]) -> Result<GroupReport> {
    let GroupContext { runs, stopped, out, options } = *cx;
    let baseline = options.baseline.as_str();
    let tuned = options.tuned.as_ref();
    let chosen_only = |t: &Tuned| all.only(|sg| sg.runs.iter().any(|&i| t.is_chosen(&runs[i])));
    let compared = tuned.map(chosen_only);
    let group = compared.as_ref().unwrap_or(all);
    // Analyse.
    let run_reports: Vec<RunReport> = group
        .seed_groups
        .iter()
        .flat_map(|sg| sg.runs.iter().map(move |&i| (sg, i)))
        .map(|(sg, i)| run_report(&runs[i], &sg.label, &sg.metric))
        .collect();
    let members = |sg: &crate::group::SeedGroup| -> Vec<&RunReport> {
        run_reports.iter().filter(|r| r.label == sg.label).collect()
    };
    let seed_groups: Vec<SeedGroupReport> =
        group.seed_groups.iter().map(|sg| seed_group_report(sg, runs, &members(sg))).collect();
    // Compare.
    let base_of = baselines(group, runs, baseline, tuned.map(|t| t.key.as_str()));
    let finite = |sg: &crate::group::SeedGroup| -> Vec<&RunReport> {
        members(sg).into_iter().filter(|r| !r.non_finite_weights).collect()
    };
    let per_group: Vec<Vec<&RunReport>> = group.seed_groups.iter().map(finite).collect();
    let numbers: Vec<Vec<Numbers>> =
        per_group.iter().map(|rs| rs.iter().map(|r| r.numbers.clone()).collect()).collect();
    let names: Vec<Vec<String>> =
        per_group.iter().map(|rs| rs.iter().map(|r| r.name.clone()).collect()).collect();
    let seeds: Vec<Vec<Option<u64>>> =
        per_group.iter().map(|rs| rs.iter().map(|r| r.seed).collect()).collect();
    let comparisons = tables(group, &base_of, &numbers, &names, &seeds, quantities);
    let loss_table = comparisons.iter().find(|t| t.key == crate::ladder::LOSS_KEY);
    let margin = quantities
        .iter()
        .find(|q| q.key == crate::ladder::LOSS_KEY)
        .and_then(|q| q.margin)
        .map_or(crate::ladder::DEFAULT_MARGIN, |m| m.delta(1.0));
    let tuned_key = tuned.map(|t| t.key.as_str());
    let scaling = crate::ladder::analyse(group, runs, &run_reports, loss_table, baseline, tuned_key, margin);
    // Pictures.
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
        Ok(paths) => names_of(&paths),
        Err(e) => {
            tracing::warn!(group = %group.id, "task pictures skipped: {e:#}");
            Vec::new()
        }
    };
    let mut figures = names_of(&figures);
    figures.extend(task_figures.iter().cloned());
    let tuning = tuned.map(|t| crate::tuning::curves(all, runs, stopped, t)).unwrap_or_default();
    if let Some(s) = &scaling {
        match crate::ladder::picture(out, &group.id, s) {
            Ok(paths) => figures.extend(names_of(&paths)),
            Err(e) => tracing::warn!(group = %group.id, "scaling picture skipped: {e:#}"),
        }
    }
    if let Some(t) = tuned.filter(|_| !tuning.is_empty()) {
        match crate::tuning::picture(out, &group.id, &t.key, &tuning) {
            Ok(paths) => figures.extend(names_of(&paths)),
            Err(e) => tracing::warn!(group = %group.id, "tuning picture skipped: {e:#}"),
        }
    }
    let char_level = spec.as_ref().is_some_and(|s| s.char_level);
    let threshold = spec.as_ref().and_then(|s| s.threshold);
    Ok(GroupReport {
        id: group.id.clone(),
        task: group.task.clone(),
        task_config: spec.as_ref().map_or_else(|| "-".to_string(), |s| s.config_text.clone()),
        char_level,
        columns: spec.as_ref().map(|s| s.columns.clone()).unwrap_or_default(),
        seed_groups,
        runs: run_reports,
        comparisons,
        escapes: escapes(group, runs, threshold),
        lr_ranges: lr_ranges(all, runs, stopped),
        tuned_key: tuned.map(|t| t.key.clone()),
        tuning,
        closest_baselines: crate::icl_curves::closest(group, runs),
        scaling,
        figures,
        task_figures,
    })
}

/// File names of `paths`.
fn names_of(paths: &[PathBuf]) -> Vec<String> {
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
