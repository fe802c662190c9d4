//! The report's pictures: loss curves (against step and wall time) and per-layer geometry.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::group::TaskGroup;
use crate::plot::{Panel, Series, line_charts};
use crate::run::{Run, Split};
use crate::stats::ema;

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

/// Loss curves of every run of `group`, train (EMA-smoothed) and validation side by side;
/// one colour per seed group, one line per run. Writes `dir/{id}_loss_{step|wall}.{png,svg}`.
pub fn loss_curves(dir: &Path, group: &TaskGroup, runs: &[Run], x: XAxis) -> Result<Vec<PathBuf>> {
    let (suffix, x_label) = match x {
        XAxis::Step => ("step", "step"),
        XAxis::Wall => ("wall", "wall time (s)"),
    };
    let mut panels = Vec::new();
    for (split, name) in [(Split::Train, "train loss (EMA 0.9)"), (Split::Val, "validation loss")] {
        let mut series = Vec::new();
        for (color, sg) in group.seed_groups.iter().enumerate() {
            for (n, &i) in sg.runs.iter().enumerate() {
                let recs: Vec<_> = runs[i].split(split).collect();
                let xs: Vec<Option<f64>> = recs
                    .iter()
                    .map(|r| match x {
                        XAxis::Step => Some(r.step as f64),
                        XAxis::Wall => r.wall_s,
                    })
                    .collect();
                let raw: Vec<f64> = recs.iter().map(|r| r.loss).collect();
                let ys = if split == Split::Train { ema(&raw, TRAIN_EMA) } else { raw };
                let points = xs.iter().zip(ys).filter_map(|(x, y)| Some(((*x)?, y))).collect();
                let label = (n == 0).then(|| legend(&sg.label, sg.runs.len()));
                series.push(Series {
                    label,
                    color,
                    points,
                    markers: split == Split::Val && recs.len() <= 12,
                });
            }
        }
        let log_y = Panel::spans(&series, 4.0);
        panels.push(Panel {
            title: name.into(),
            x_label: x_label.into(),
            y_label: "loss".into(),
            integer_x: false,
            log_y,
            series,
        });
    }
    let title = format!("{}: loss against {x_label}", group.id);
    line_charts(&dir.join(format!("{}_loss_{suffix}", group.id)), &title, &panels, (620, 440))
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
    let panels: Vec<Panel> = measures
        .iter()
        .map(|(name, curves)| Panel {
            title: name.to_string(),
            x_label: "layer".into(),
            y_label: name.to_string(),
            integer_x: true,
            log_y: false,
            series: curves
                .iter()
                .enumerate()
                .map(|(color, (label, ys))| Series {
                    label: Some(label.clone()),
                    color,
                    points: ys.iter().enumerate().map(|(l, y)| (l as f64, *y)).collect(),
                    markers: true,
                })
                .collect(),
        })
        .collect();
    let title =
        format!("{}: attention geometry on validation inputs (mean over heads and seeds)", group.task);
    line_charts(&dir.join(format!("{}_geometry", group.id)), &title, &panels, (420, 400))
}
