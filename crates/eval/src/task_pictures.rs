//! The pictures a task declares ([`Picture`]): prototype networks (keys over the data and the
//! decision regions) and scattered-data interpolators (error maps of Franke's F1 on the
//! 33 x 33 grid, beside the classical baselines). One panel per configuration (its first seed).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use attnlab_model::Checkpoint;
use attnlab_train::tasks::franke::{FRANKE_NODES, GRID_SIDE, franke_f1, grid};
use attnlab_train::tasks::scattered::predict;
use attnlab_train::tasks::shepard::Baseline;
use attnlab_train::tasks::{Picture, PrototypeTask};
use attnlab_train::{RunConfig, TaskConfig};
use candle_core::{Device, Tensor};
use plotters::style::RGBColor;

use crate::group::TaskGroup;
use crate::maps::{LegendEntry, MapPanel, Marker, map_charts, viridis};
use crate::numbers::run_numbers;
use crate::run::Run;
use crate::stats::fmt_num;

/// Side of the decision-region grid, cells.
const REGION_SIDE: usize = 90;
const CLASS_FILL: [RGBColor; 2] = [RGBColor(198, 219, 239), RGBColor(253, 208, 162)];
const CLASS_DOT: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(230, 85, 13)];

/// The `pictures` a task declares for `group`, written into `dir`.
pub fn task_pictures(
    dir: &Path,
    group: &TaskGroup,
    runs: &[Run],
    pictures: &[Picture],
) -> Result<Vec<PathBuf>> {
    let firsts: Vec<(&str, &Run)> = group
        .seed_groups
        .iter()
        .filter_map(|sg| Some((sg.label.as_str(), &runs[*sg.runs.first()?])))
        .collect();
    let mut out = Vec::new();
    for picture in pictures {
        out.extend(match picture {
            Picture::PrototypeMaps => prototype_maps(dir, &group.id, &firsts)?,
            Picture::FrankeErrorMaps => franke_maps(dir, &group.id, &firsts)?,
            Picture::ErrorByContextSize => crate::icl_curves::error_curves(dir, group, runs)?,
        });
    }
    Ok(out)
}

fn load(run: &Run) -> Result<Checkpoint> {
    let dir = run.checkpoint_dir().with_context(|| format!("run {} has no checkpoint", run.name))?;
    Ok(Checkpoint::open(&dir, &Device::Cpu)?)
}

fn title(label: &str, run: &Run, score: &str, key: &str) -> String {
    let seed = run.seed().map_or(String::new(), |s| format!(", seed {s}"));
    let value = run_numbers(run).get(key).map_or("-".into(), |v| fmt_num(*v, 3));
    format!("{label}{seed}: {score} {value}")
}

fn prototype_maps(dir: &Path, id: &str, runs: &[(&str, &Run)]) -> Result<Vec<PathBuf>> {
    let mut panels = Vec::new();
    for (label, run) in runs {
        let cfg = RunConfig::from_value(run.config.clone())?;
        let TaskConfig::Prototype(tc) = &cfg.task else { continue };
        let data = PrototypeTask::new(tc, cfg.seed, &Device::Cpu)?.train_points().clone();
        let ckpt = load(run)?;
        let net = ckpt.model.as_prototype().context("a prototype run without a prototype network")?;
        let keys: Vec<Vec<f32>> = net.keys().to_vec2()?;
        let (x, y) = bounds(data.x.iter().map(|p| (p[0], p[1])), 0.3);
        let mut panel =
            MapPanel { title: title(label, run, "val acc", "val_accuracy"), x, y, ..Default::default() };
        let (cx, cy) = ((x.1 - x.0) / REGION_SIDE as f64, (y.1 - y.0) / REGION_SIDE as f64);
        let centres: Vec<f32> = (0..REGION_SIDE * REGION_SIDE)
            .flat_map(|i| {
                [
                    (x.0 + (i % REGION_SIDE) as f64 * cx + cx / 2.0) as f32,
                    (y.0 + (i / REGION_SIDE) as f64 * cy + cy / 2.0) as f32,
                ]
            })
            .collect();
        let grid_x = Tensor::from_vec(centres, (REGION_SIDE * REGION_SIDE, 2), &Device::Cpu)?;
        let class: Vec<u32> = net.forward(&grid_x)?.argmax(1)?.to_vec1()?;
        for (i, c) in class.iter().enumerate() {
            let (x0, y0) = (x.0 + (i % REGION_SIDE) as f64 * cx, y.0 + (i / REGION_SIDE) as f64 * cy);
            panel.cells.push((x0, y0, x0 + cx, y0 + cy, CLASS_FILL[(*c as usize).min(1)]));
        }
        for (p, l) in data.x.iter().zip(&data.label) {
            panel.points.push((p[0], p[1], CLASS_DOT[(*l as usize).min(1)], Marker::Dot));
        }
        for k in keys.iter().filter(|k| k.len() >= 2) {
            let (kx, ky) = (k[0] as f64, k[1] as f64);
            if (x.0..=x.1).contains(&kx) && (y.0..=y.1).contains(&ky) {
                panel.points.push((kx, ky, RGBColor(0, 0, 0), Marker::Cross));
            }
        }
        panels.push(panel);
    }
    if panels.is_empty() {
        return Ok(Vec::new());
    }
    let legend: Vec<LegendEntry> = vec![
        ("region: class 0".into(), CLASS_FILL[0], None),
        ("region: class 1".into(), CLASS_FILL[1], None),
        ("class 0 training point".into(), CLASS_DOT[0], Some(Marker::Dot)),
        ("class 1 training point".into(), CLASS_DOT[1], Some(Marker::Dot)),
        ("key (prototype) inside the frame".into(), RGBColor(0, 0, 0), Some(Marker::Cross)),
    ];
    let title = format!("{id}: keys over the data and decision regions (first seed of each configuration)");
    map_charts(&dir.join(format!("{id}_prototypes")), &title, &panels, &legend, 330)
}

fn franke_maps(dir: &Path, id: &str, runs: &[(&str, &Run)]) -> Result<Vec<PathBuf>> {
    let values: Vec<f64> = FRANKE_NODES.iter().map(|[x, y]| franke_f1(*x, *y)).collect();
    let pts = grid(GRID_SIDE);
    let truth: Vec<f64> = pts.iter().map(|[x, y]| franke_f1(*x, *y)).collect();
    let abs_err =
        |pred: Vec<f64>| -> Vec<f64> { pred.iter().zip(&truth).map(|(p, t)| (p - t).abs()).collect() };
    let mut maps: Vec<(String, Vec<f64>)> = Vec::new();
    for b in [Baseline::Shepard(2), Baseline::Nearest] {
        maps.push((format!("baseline {}", b.name()), abs_err(b.predict(&FRANKE_NODES, &values, &pts)?)));
    }
    for (label, run) in runs {
        let ckpt = load(run)?;
        let Some(net) = ckpt.model.as_set_regressor() else { continue };
        if net.config().dim != 2 {
            continue;
        }
        let seed = run.seed().map_or(String::new(), |s| format!(", seed {s}"));
        maps.push((format!("{label}{seed}"), abs_err(predict(net, &FRANKE_NODES, &values, &pts)?)));
    }
    if maps.len() <= 2 {
        return Ok(Vec::new());
    }
    let vmax = maps.iter().flat_map(|(_, e)| e.iter().copied()).fold(0.0f64, f64::max).max(1e-12);
    let half = 0.5 / (GRID_SIDE - 1) as f64;
    let panels: Vec<MapPanel> = maps
        .iter()
        .map(|(name, err)| {
            let rms = (err.iter().map(|e| e * e).sum::<f64>() / err.len() as f64).sqrt();
            let max = err.iter().copied().fold(0.0, f64::max);
            MapPanel {
                title: format!("{name}: max {}, rms {}", fmt_num(max, 3), fmt_num(rms, 3)),
                x: (-half, 1.0 + half),
                y: (-half, 1.0 + half),
                cells: pts
                    .iter()
                    .zip(err)
                    .map(|([x, y], e)| (x - half, y - half, x + half, y + half, viridis(e / vmax)))
                    .collect(),
                points: FRANKE_NODES
                    .iter()
                    .map(|[x, y]| (*x, *y, RGBColor(255, 255, 255), Marker::Dot))
                    .collect(),
            }
        })
        .collect();
    let legend: Vec<LegendEntry> = vec![
        ("|error| 0".into(), viridis(0.0), None),
        (fmt_num(vmax / 2.0, 3), viridis(0.5), None),
        (format!("{} (largest)", fmt_num(vmax, 3)), viridis(1.0), None),
        ("Franke's 100 nodes (white)".into(), RGBColor(170, 170, 170), Some(Marker::Dot)),
    ];
    let title = format!("{id}: |error| interpolating Franke's F1 on the 33 x 33 grid (shared colour scale)");
    map_charts(&dir.join(format!("{id}_franke_errors")), &title, &panels, &legend, 300)
}

/// `((x_min, x_max), (y_min, y_max))` of the points, widened by `pad` of the larger span.
fn bounds(points: impl Iterator<Item = (f64, f64)>, pad: f64) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    let p = pad * (x1 - x0).max(y1 - y0).max(1e-9);
    ((x0 - p, x1 + p), (y0 - p, y1 + p))
}
