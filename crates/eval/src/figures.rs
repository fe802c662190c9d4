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

/// Most configurations one picture draws: beyond it colours and line styles repeat, and the
/// lines cannot be told apart.
pub const MAX_LINES: usize = 10;

/// The configurations (seed-group indices) of each picture of a task group: all in one when
/// they fit in [`MAX_LINES`]; else the configurations compared with one baseline
/// (`baselines[i]`, the same settings but the metric) kept together, packed in order into
/// pictures of at most [`MAX_LINES`] (a cluster larger than that is cut).
pub fn picture_parts(baselines: &[Option<usize>]) -> Vec<Vec<usize>> {
    let n = baselines.len();
    if n <= MAX_LINES {
        return vec![(0..n).collect()];
    }
    let mut clusters: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, b) in baselines.iter().enumerate() {
        let key = b.unwrap_or(i);
        match clusters.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => clusters.push((key, vec![i])),
        }
    }
    let mut parts: Vec<Vec<usize>> = Vec::new();
    for chunk in clusters.iter().flat_map(|(_, members)| members.chunks(MAX_LINES)) {
        match parts.last_mut() {
            Some(part) if part.len() + chunk.len() <= MAX_LINES => part.extend_from_slice(chunk),
            _ => parts.push(chunk.to_vec()),
        }
    }
    parts
}

/// The file stem and title suffix of picture `k` of `n` (0-based): `_2`, ", part 2 of 3"; none
/// for a single picture.
fn part_names(k: usize, n: usize) -> (String, String) {
    if n == 1 {
        (String::new(), String::new())
    } else {
        (format!("_{}", k + 1), format!(", part {} of {n}", k + 1))
    }
}

/// Loss curves of `group`: train (EMA-smoothed) and validation loss, one line per
/// configuration (mean over its seeds, with a mean ± std band, or on a log axis the band from the
/// smallest to the largest seed, so that it never crosses zero), and below each the difference of
/// the means to the configuration's baseline (`baselines[i]`, see [`crate::baseline::baselines`])
/// on its own zoomed axis. Writes `dir/{id}_loss_{step|wall}.{png,svg}`, or with more
/// configurations than [`MAX_LINES`], one picture per [`picture_parts`] part,
/// `dir/{id}_loss_{step|wall}_{k}.{png,svg}`.
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
    let splits = [(Split::Train, "train loss (EMA 0.9)"), (Split::Val, "validation loss")];
    let curves: Vec<Vec<SeedCurve>> = splits
        .iter()
        .map(|(split, _)| group.seed_groups.iter().map(|sg| seed_curve(runs, &sg.runs, *split, x)).collect())
        .collect();
    let parts = picture_parts(baselines);
    let mut files = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        let mut top = Vec::new();
        let mut bottom = Vec::new();
        for ((split, name), curves) in splits.iter().zip(&curves) {
            let mut series: Vec<Series> = part
                .iter()
                .enumerate()
                .map(|(color, &i)| {
                    let (sg, c) = (&group.seed_groups[i], &curves[i]);
                    Series {
                        label: Some(legend(&sg.label, sg.runs.len())),
                        color,
                        points: c.iter().map(|p| (p.0, p.1)).collect(),
                        markers: *split == Split::Val && c.len() <= 12,
                        band: if sg.runs.len() > 1 {
                            c.iter().map(|p| (p.0, p.1 - p.2, p.1 + p.2)).collect()
                        } else {
                            Vec::new()
                        },
                    }
                })
                .collect();
            let log_y = Panel::spans(&series, 4.0);
            if log_y {
                // mean ± std can reach below zero, which a log axis cannot show: min to max.
                for (s, &i) in series.iter_mut().zip(part) {
                    if !s.band.is_empty() {
                        s.band = curves[i].iter().map(|p| (p.0, p.3, p.4)).collect();
                    }
                }
            }
            let spread = if log_y { "mean over seeds, band min to max" } else { "mean ± std over seeds" };
            top.push(Panel {
                title: format!("{name}, {spread}"),
                x_label: x_label.into(),
                y_label: "loss".into(),
                integer_x: false,
                log_y,
                series,
                hline: None,
            });
            let diffs: Vec<Series> = part
                .iter()
                .enumerate()
                .filter_map(|(color, &i)| {
                    let base = &curves[baselines[i]?];
                    let points = difference(&curves[i], base);
                    Some(Series { label: None, color, points, markers: false, band: Vec::new() })
                })
                .collect();
            let base_name = part
                .iter()
                .find_map(|&i| baselines[i])
                .map_or("baseline".to_string(), |b| group.seed_groups[b].metric.clone());
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
        let (stem, title_part) = part_names(k, parts.len());
        let title = format!("{}: loss against {x_label}{title_part}", group.id);
        let stem = dir.join(format!("{}_loss_{suffix}{stem}", group.id));
        files.extend(line_grid(&stem, &title, &panels, (620, 400), 2)?);
    }
    Ok(files)
}

/// Points `(x, mean, std, min, max)` of one configuration's curve over its seeds, at the steps
/// every seed logged; `x` is the step or the mean wall time at that step.
type SeedCurve = Vec<(f64, f64, f64, f64, f64)>;

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
            let (lo, hi) =
                ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(*y), b.max(*y)));
            Some((xm, m.mean, m.std.unwrap_or(0.0), lo, hi))
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

/// Geometry picture: one panel per measure, x = layer, one line per seed group. Writes
/// `dir/{id}_geometry.{png,svg}`, or one picture per [`picture_parts`] part,
/// `dir/{id}_geometry_{k}.{png,svg}`.
pub fn geometry_chart(
    dir: &Path,
    group: &TaskGroup,
    measures: &[(&str, LayerCurves)],
    baselines: &[Option<usize>],
) -> Result<Vec<PathBuf>> {
    let parts = picture_parts(baselines);
    let mut files = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        let panels: Vec<Panel> = measures
            .iter()
            .map(|(name, curves)| {
                let mine: LayerCurves = part.iter().filter_map(|&i| curves.get(i).cloned()).collect();
                measure_panel(name, &mine)
            })
            .collect();
        let (stem, title_part) = part_names(k, parts.len());
        let title = format!(
            "{}: attention geometry on validation inputs (mean over heads and seeds){title_part}",
            group.task
        );
        files.extend(line_grid(
            &dir.join(format!("{}_geometry{stem}", group.id)),
            &title,
            &panels,
            (420, 360),
            4,
        )?);
    }
    Ok(files)
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

    #[test]
    fn many_configurations_are_split_into_pictures_keeping_each_baselines_set_together() {
        // Few: one picture.
        assert_eq!(picture_parts(&[None, Some(0), Some(0)]), vec![vec![0, 1, 2]]);
        // 9 settings x 5 metrics (the answer sweep's 45 configurations), each setting's dot first.
        let baselines: Vec<Option<usize>> = (0..45).map(|i| Some(i / 5 * 5)).collect();
        let parts = picture_parts(&baselines);
        assert!(parts.iter().all(|p| p.len() <= MAX_LINES), "{parts:?}");
        let mut all: Vec<usize> = parts.concat();
        all.sort();
        assert_eq!(all, (0..45).collect::<Vec<_>>(), "every configuration once");
        for p in &parts {
            for &i in p {
                assert!(p.contains(&(i / 5 * 5)), "{i} drawn apart from its baseline: {parts:?}");
            }
        }
        // No baselines: cut into pictures of MAX_LINES.
        let parts = picture_parts(&[None; 23]);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
    }
}
