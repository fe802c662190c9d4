//! The `regression` task's picture: squared error against the number of in-context examples,
//! one line per configuration (mean over its seeds) and one per classical baseline (mean over
//! the seeds present; every configuration of a seed sees the same validation prompts), as in
//! Garg et al. (2022), Figure 2. Each configuration's legend names the baseline its curve lies
//! closest to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use attnlab_train::TaskConfig;
use attnlab_train::tasks::TaskScores;
use attnlab_train::tasks::icl_curve::{ErrorCurve, nearest_baseline};

use crate::group::TaskGroup;
use crate::plot::{Panel, Series, line_charts};
use crate::run::Run;
use crate::stats::fmt_num;

/// Curves are drawn up to this multiple of the context mean's largest error (least squares
/// near `n = d` with noise or a non-linear function can be orders of magnitude above it).
const CAP_OVER_MEAN: f64 = 1.5;

/// The error curve of a run, when it is a finished `regression` run.
fn curve(run: &Run) -> Option<&ErrorCurve> {
    match &run.summary.as_ref()?.scores {
        TaskScores::Regression(s) => Some(&s.curve),
        TaskScores::Text(_) | TaskScores::Recall(_) | TaskScores::Scattered(_) | TaskScores::Prototype(_) => {
            None
        }
    }
}

/// Element-wise mean of equally long curves (`None` when empty or of different lengths).
pub fn mean_curve(curves: &[&[f64]]) -> Option<Vec<f64>> {
    let n = curves.first()?.len();
    if n == 0 || curves.iter().any(|c| c.len() != n) {
        return None;
    }
    Some((0..n).map(|i| curves.iter().map(|c| c[i]).sum::<f64>() / curves.len() as f64).collect())
}

/// The mean error curves of a group: per configuration (mean over its seeds) and per baseline
/// (mean over the seeds present), at the example counts `counts`.
struct Curves {
    counts: Vec<usize>,
    /// `(label, its runs, mean curve)`.
    configs: Vec<(String, Vec<String>, Vec<f64>)>,
    baselines: BTreeMap<String, Vec<f64>>,
}

/// Which baseline a configuration's error curve lies closest to (mean absolute gap over the
/// example counts), as the Findings state it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Closest {
    /// The configuration.
    pub label: String,
    /// The closest baseline (`least_squares`, `nadaraya_watson`, ...).
    pub baseline: String,
    /// Its mean absolute gap (squared-error units).
    pub gap: f64,
    /// The runs behind the configuration's curve.
    pub runs: Vec<String>,
}

/// Each configuration's closest baseline; empty when no run of `group` has an error curve.
pub fn closest(group: &TaskGroup, runs: &[Run]) -> Vec<Closest> {
    let Some(c) = curves(group, runs) else { return Vec::new() };
    c.configs
        .iter()
        .filter_map(|(label, names, ys)| {
            nearest_baseline(ys, &c.baselines).map(|(baseline, gap)| Closest {
                label: label.clone(),
                baseline: baseline.to_string(),
                gap,
                runs: names.clone(),
            })
        })
        .collect()
}

fn curves(group: &TaskGroup, runs: &[Run]) -> Option<Curves> {
    let mut configs: Vec<(String, Vec<String>, Vec<f64>)> = Vec::new();
    // One run per seed for the baselines (they depend on the seed's prompts only).
    let mut by_seed: BTreeMap<Option<u64>, &ErrorCurve> = BTreeMap::new();
    let mut counts: Vec<usize> = Vec::new();
    for sg in &group.seed_groups {
        let curves: Vec<&ErrorCurve> = sg.runs.iter().filter_map(|&i| curve(&runs[i])).collect();
        for &i in &sg.runs {
            if let Some(c) = curve(&runs[i]) {
                by_seed.entry(runs[i].seed()).or_insert(c);
            }
        }
        let models: Vec<&[f64]> = curves.iter().map(|c| c.model.as_slice()).collect();
        if let (Some(first), Some(mean)) = (curves.first(), mean_curve(&models)) {
            counts.clone_from(&first.counts);
            let names = sg.runs.iter().filter(|&&i| curve(&runs[i]).is_some()).map(|&i| runs[i].name.clone());
            configs.push((sg.label.clone(), names.collect(), mean));
        }
    }
    if configs.is_empty() {
        return None;
    }
    let mut baselines: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    if let Some(first) = by_seed.values().next() {
        for name in first.baselines.keys() {
            let each: Vec<&[f64]> =
                by_seed.values().filter_map(|c| c.baselines.get(name)).map(Vec::as_slice).collect();
            if let Some(m) = mean_curve(&each) {
                baselines.insert(name.clone(), m);
            }
        }
    }
    Some(Curves { counts, configs, baselines })
}

/// The picture for `group` in `dir` (PNG and SVG), or nothing when no run has a curve.
pub fn error_curves(dir: &Path, group: &TaskGroup, runs: &[Run]) -> Result<Vec<PathBuf>> {
    let Some(Curves { counts, configs, baselines }) = curves(group, runs) else { return Ok(Vec::new()) };
    let cap = baselines
        .get("context_mean")
        .into_iter()
        .chain(configs.iter().map(|(_, _, c)| c))
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        * CAP_OVER_MEAN;
    let mut clipped = false;
    let mut points = |ys: &[f64]| -> Vec<(f64, f64)> {
        counts
            .iter()
            .zip(ys)
            .map(|(n, y)| {
                clipped |= *y > cap;
                (*n as f64, y.min(cap))
            })
            .collect()
    };
    let mut series = Vec::new();
    for (i, (label, _, ys)) in configs.iter().enumerate() {
        let close = nearest_baseline(ys, &baselines)
            .map_or(String::new(), |(name, gap)| format!(" (closest: {name}, mean gap {})", fmt_num(gap, 3)));
        let points = points(ys);
        series.push(Series {
            label: Some(format!("{label}{close}")),
            color: i,
            points,
            markers: true,
            band: vec![],
        });
    }
    for (j, (name, ys)) in baselines.iter().enumerate() {
        let points = points(ys);
        series.push(Series {
            label: Some(format!("baseline {name}")),
            color: configs.len() + j,
            points,
            markers: false,
            band: vec![],
        });
    }
    let first_run = group.seed_groups.iter().flat_map(|sg| &sg.runs).map(|&i| &runs[i]).next();
    let what = match first_run.and_then(|r| r.task_config.as_ref()) {
        Some(TaskConfig::Regression(c)) => format!(
            "{} functions, d = {}, noise {}",
            serde_json::to_value(c.function)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            c.dim,
            c.noise
        ),
        _ => String::new(),
    };
    let cut = if clipped { format!("; values above {} drawn at it", fmt_num(cap, 3)) } else { String::new() };
    let panel = Panel {
        title: format!("{what}: mean squared error at the queries{cut}"),
        x_label: "in-context examples n".into(),
        y_label: "squared error".into(),
        integer_x: true,
        log_y: false,
        series,
        hline: Some(0.0),
    };
    let title = format!("{}: error against the number of in-context examples (mean over seeds)", group.id);
    line_charts(&dir.join(format!("{}_icl_curves", group.id)), &title, &[panel], (1100, 620))
}
