//! The report's pictures: loss curves (against step and wall time) and per-layer geometry.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::group::TaskGroup;
use crate::plot::{Panel, Series, line_grid};
use crate::run::{Run, Split};
use crate::stats::{MeanStd, ema};

/// Smoothing of training-loss curves (EMA factor); validation curves are drawn raw.
pub const TRAIN_EMA: f64 = 0.9;

/// Which x axis a loss picture uses.
#[derive(Debug, Clone, Copy)]
pub enum XAxis {
    /// Optimizer step.
    Step,
    /// Seconds since the run started.
    Wall,
}

/// Loss curves of `group`: train (EMA-smoothed) and validation loss, one line per
/// configuration (mean over its seeds, with a mean ± std band), and below each the difference of
/// the means to the configuration's baseline (`baselines[i]`, see [`crate::baseline::baselines`])
/// on its own zoomed axis. Writes `dir/{id}_loss_{step|wall}.{png,svg}`.
pub fn loss_curves(
    dir: &Path,
    group: &TaskGroup,
    runs: &[Run],
    x: XAxis,
    baselines: &[Option<usize>],
) -> Result<Vec<PathBuf>> {
    let (suffix, x_label) = match x {
        XAxis::Step => ("step", "step"),
        XAxis::Wall => ("wall", "wall time (s)"),
    };
    let mut top = Vec::new();
    let mut bottom = Vec::new();
    for (split, name) in [(Split::Train, "train loss (EMA 0.9)"), (Split::Val, "validation loss")] {
        let curves: Vec<SeedCurve> =
            group.seed_groups.iter().map(|sg| seed_curve(runs, &sg.runs, split, x)).collect();
        let series: Vec<Series> = group
            .seed_groups
            .iter()
            .zip(&curves)
            .enumerate()
            .map(|(color, (sg, c))| Series {
                label: Some(legend(&sg.label, sg.runs.len())),
                color,
                points: c.iter().map(|p| (p.0, p.1)).collect(),
                markers: split == Split::Val && c.len() <= 12,
                band: if sg.runs.len() > 1 {
                    c.iter().map(|p| (p.0, p.1 - p.2, p.1 + p.2)).collect()
                } else {
                    Vec::new()
                },
            })
            .collect();
        let log_y = Panel::spans(&series, 4.0);
        top.push(Panel {
            title: format!("{name}, mean ± std over seeds"),
            x_label: x_label.into(),
            y_label: "loss".into(),
            integer_x: false,
            log_y,
            series,
            hline: None,
        });
        let diffs: Vec<Series> = baselines
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let base = &curves[(*b)?];
                let points = difference(&curves[i], base);
                Some(Series { label: None, color: i, points, markers: false, band: Vec::new() })
            })
            .collect();
        let base_name = baselines
            .iter()
            .flatten()
            .next()
            .map_or("baseline".to_string(), |&b| group.seed_groups[b].metric.clone());
        bottom.push(Panel {
            title: format!("{name}: difference to {base_name} (same settings)"),
            x_label: x_label.into(),
            y_label: "loss difference".into(),
            integer_x: false,
            log_y: false,
            series: diffs,
            hline: Some(0.0),
        });
    }
    let with_diff = bottom.iter().any(|p| !p.series.is_empty());
    let panels: Vec<Panel> = if with_diff { top.into_iter().chain(bottom).collect() } else { top };
    let title = format!("{}: loss against {x_label}", group.id);
    line_grid(&dir.join(format!("{}_loss_{suffix}", group.id)), &title, &panels, (620, 400), 2)
}

/// Points `(x, mean, std)` of one configuration's curve over its seeds, at the steps every seed
/// logged; `x` is the step or the mean wall time at that step.
type SeedCurve = Vec<(f64, f64, f64)>;

fn seed_curve(runs: &[Run], members: &[usize], split: Split, x: XAxis) -> SeedCurve {
    use std::collections::BTreeMap;
    let mut at: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    for &i in members {
        let recs: Vec<_> = runs[i].split(split).collect();
        let raw: Vec<f64> = recs.iter().map(|r| r.loss).collect();
        let ys = if split == Split::Train { ema(&raw, TRAIN_EMA) } else { raw };
        for (r, y) in recs.iter().zip(ys) {
            let xv = match x {
                XAxis::Step => Some(r.step as f64),
                XAxis::Wall => r.wall_s,
            };
            if let Some(xv) = xv {
                at.entry(r.step).or_default().push((xv, y));
            }
        }
    }
    at.into_values()
        .filter(|v| v.len() == members.len())
        .filter_map(|v| {
            let xm = v.iter().map(|p| p.0).sum::<f64>() / v.len() as f64;
            let ys: Vec<f64> = v.iter().map(|p| p.1).collect();
            let m = MeanStd::of(&ys)?;
            Some((xm, m.mean, m.std.unwrap_or(0.0)))
        })
        .collect()
}

/// `mean(a) - mean(b)` at the x values both curves have (matched to 1e-9).
fn difference(a: &SeedCurve, b: &SeedCurve) -> Vec<(f64, f64)> {
    a.iter().filter_map(|p| b.iter().find(|q| (q.0 - p.0).abs() < 1e-9).map(|q| (p.0, p.1 - q.1))).collect()
}

fn legend(label: &str, n_runs: usize) -> String {
    if n_runs > 1 { format!("{label} ({n_runs} seeds)") } else { label.to_string() }
}

/// One value per layer for each seed group: `(label, values by layer)`.
pub type LayerCurves = Vec<(String, Vec<f64>)>;

/// Geometry picture: one panel per measure, x = layer, one line per seed group.
/// Writes `dir/{id}_geometry.{png,svg}`.
pub fn geometry_chart(
    dir: &Path,
    group: &TaskGroup,
    measures: &[(&str, LayerCurves)],
) -> Result<Vec<PathBuf>> {
    let panels: Vec<Panel> = measures.iter().map(|(name, curves)| measure_panel(name, curves)).collect();
    let title =
        format!("{}: attention geometry on validation inputs (mean over heads and seeds)", group.task);
    line_grid(&dir.join(format!("{}_geometry", group.id)), &title, &panels, (420, 360), 4)
}

/// One geometry measure's panel: x = layer, one line per seed group; a log axis when every value
/// is positive and they span more than three orders of magnitude (max |score| of a run whose
/// scores grew to 1e19 would otherwise flatten every other config to one line at 0).
fn measure_panel(name: &str, curves: &LayerCurves) -> Panel {
    let series: Vec<Series> = curves
        .iter()
        .enumerate()
        .map(|(color, (label, ys))| Series {
            label: Some(label.clone()),
            color,
            points: ys.iter().enumerate().map(|(l, y)| (l as f64, *y)).collect(),
            markers: true,
            band: Vec::new(),
        })
        .collect();
    let positive = series.iter().flat_map(|s| &s.points).all(|p| !p.1.is_finite() || p.1 > 0.0);
    Panel {
        title: name.to_string(),
        x_label: "layer".into(),
        y_label: name.to_string(),
        integer_x: true,
        log_y: positive && Panel::spans(&series, 1e3),
        series,
        hline: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measure_spanning_orders_of_magnitude_gets_a_log_axis_and_others_do_not() {
        let curves = |ys: [[f64; 2]; 2]| -> LayerCurves {
            ys.iter().enumerate().map(|(i, y)| (format!("c{i}"), y.to_vec())).collect()
        };
        assert!(measure_panel("max |score|", &curves([[3.0, 5.0], [2.8e19, 4.0]])).log_y);
        assert!(!measure_panel("max |score|", &curves([[3.0, 5.0], [30.0, 4.0]])).log_y);
        // A zero (no unselectable keys) cannot go on a log axis.
        assert!(!measure_panel("unselected", &curves([[0.0, 5.0], [2.8e19, 4.0]])).log_y);
    }
}
