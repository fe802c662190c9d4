//! The scaling section of the report ("Does it hold as models grow?"), for a task group whose
//! compared configurations differ in size. Each **family** — a configuration up to its size
//! (the [`SIZE_KEYS`]) and its tuned value, e.g. `idw` under the modern recipe — becomes a
//! ladder of rungs (training FLOPs C from `summary.json`'s `compute.flops`, final validation loss
//! per seed). Every ladder is fitted ([`crate::stats::scaling::fit`]: L(C) = E + A·C^(−α), or
//! log-linear where E is not identified, or "poor" with the reason), and every family with a
//! baseline family (the same settings with the baseline metric) gets the gap to it at each
//! size with that size's verdict, the gap's trend per decade of compute, and the compute
//! multiplier read off the baseline's fit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use crate::baseline::settings;
use crate::findings::verdict;
use crate::group::{TaskGroup, label_without as without, short_key as short};
use crate::plot::{Panel, Series, line_charts};
use crate::run::Run;
use crate::stats::compare::ComparisonTable;
use crate::stats::scaling::{Bootstrap, Fit, Ladder, Rung, compute_multiplier, fit, gap_trend};
use crate::types::{FamilyScaling, GapVersus, RunReport, RungReport, ScalingReport};

/// The config keys a ladder varies with its size: the shape, and the schedule whose length
/// grows with it. Runs differing only in these (and the seed and tuned value) are one family.
pub const SIZE_KEYS: [&str; 8] = [
    "model.n_layer",
    "model.n_head",
    "model.n_embd",
    "train.steps",
    "train.warmup_steps",
    "train.eval_interval",
    "train.lr_decay_steps",
    "train.ckpt_interval",
];

/// The summary key of a run's training FLOPs ([`attnlab_train::compute`]).
const FLOPS_KEY: &str = "compute.flops";
/// The summary key of its non-embedding parameter count.
const PARAMS_KEY: &str = "compute.non_embedding_params";
/// The quantity a ladder is read on.
pub const LOSS_KEY: &str = "final_val_loss";
/// The steady-gap margin (nats per decade) when the loss quantity declares none (a relative
/// margin is read against 1 nat).
pub const DEFAULT_MARGIN: f64 = 0.02;

/// The scaling section of `group` (the compared seed groups), or `None` when its configurations
/// do not span at least two training computes. `margin` is the loss quantity's equivalence
/// margin, read per decade of compute for a steady gap.
pub fn analyse(
    group: &TaskGroup,
    runs: &[Run],
    reports: &[RunReport],
    loss_table: Option<&ComparisonTable>,
    baseline: &str,
    tuned: Option<&str>,
    margin: f64,
) -> Option<ScalingReport> {
    let family_key = |run: &Run| {
        let mut key = settings(&run.config);
        for k in SIZE_KEYS.iter().copied().chain(tuned) {
            key.remove(k);
        }
        key
    };
    let mut shorts: Vec<&str> = SIZE_KEYS.iter().map(|k| short(k)).collect();
    if let Some(t) = tuned {
        shorts.push(short(t));
    }
    // (settings without the metric, metric) -> family.
    let mut families: Vec<(BTreeMap<String, Value>, FamilyScaling, Ladder)> = Vec::new();
    for sg in &group.seed_groups {
        let Some(&first) = sg.runs.first() else { continue };
        let key = family_key(&runs[first]);
        let members: Vec<&RunReport> =
            reports.iter().filter(|r| r.label == sg.label && !r.non_finite_weights).collect();
        let flops: Vec<f64> = members.iter().filter_map(|r| r.numbers.get(FLOPS_KEY).copied()).collect();
        let losses: Vec<(Option<u64>, f64)> =
            members.iter().filter_map(|r| r.numbers.get(LOSS_KEY).map(|&l| (r.seed, l))).collect();
        if flops.is_empty() || losses.is_empty() {
            continue;
        }
        let compute = flops.iter().sum::<f64>() / flops.len() as f64;
        let params = members.iter().find_map(|r| r.numbers.get(PARAMS_KEY).copied());
        let ls: Vec<f64> = losses.iter().map(|(_, l)| *l).collect();
        let mean = ls.iter().sum::<f64>() / ls.len() as f64;
        let (min, max) =
            ls.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &l| (a.min(l), b.max(l)));
        let row = loss_table.and_then(|t| t.rows.iter().find(|c| c.label == sg.label));
        let rung = RungReport {
            label: sg.label.clone(),
            compute,
            params,
            n: ls.len(),
            mean,
            min,
            max,
            verdict: row.zip(loss_table).map(|(c, t)| verdict(&t.quantity, c)),
            runs: members.iter().map(|r| r.name.clone()).collect(),
        };
        let lrung = Rung { compute, losses };
        let at = families.iter().position(|(k, f, _)| *k == key && f.metric == sg.metric);
        match at {
            Some(at) => {
                families[at].1.rungs.push(rung);
                families[at].2.rungs.push(lrung);
            }
            None => {
                let family = FamilyScaling {
                    label: without(&sg.label, &shorts),
                    metric: sg.metric.clone(),
                    rungs: vec![rung],
                    fit: None,
                    versus: None,
                };
                families.push((key, family, Ladder { rungs: vec![lrung] }));
            }
        }
    }
    let computes = |f: &FamilyScaling| {
        let mut c: Vec<f64> = f.rungs.iter().map(|r| r.compute).collect();
        c.sort_by(f64::total_cmp);
        c.dedup_by(|a, b| (*a - *b).abs() <= 0.01 * b.abs());
        c.len()
    };
    if !families.iter().any(|(_, f, _)| computes(f) >= 2) {
        return None;
    }
    let boot = Bootstrap::default();
    for (_, f, ladder) in &mut families {
        f.rungs.sort_by(|a, b| a.compute.total_cmp(&b.compute));
        f.fit = Some(fit(ladder, &boot));
    }
    let snapshot: Vec<(BTreeMap<String, Value>, String, String, Ladder)> =
        families.iter().map(|(k, f, l)| (k.clone(), f.metric.clone(), f.label.clone(), l.clone())).collect();
    for (key, f, ladder) in &mut families {
        if f.metric == baseline {
            continue;
        }
        let Some((_, _, base_label, base)) = snapshot.iter().find(|(k, m, _, _)| k == key && m == baseline)
        else {
            continue;
        };
        let trend = gap_trend(ladder, base, &boot);
        let direction = trend.as_ref().map(|t| t.direction(margin));
        f.versus = Some(GapVersus {
            baseline: base_label.clone(),
            trend,
            direction,
            multiplier: compute_multiplier(ladder, base, &boot),
        });
    }
    Some(ScalingReport {
        baseline: baseline.to_string(),
        margin,
        families: families.into_iter().map(|(_, f, _)| f).collect(),
    })
}

/// Draws the ladder: validation loss against training FLOPs (log-log; markers the seeds' mean,
/// band their min-max, the plain line of the same colour the fit) and, where a family has a
/// baseline, its gap to the baseline per size with the bootstrap 95% band. Writes
/// `{id}_scaling.png` / `.svg` into `dir`.
pub fn picture(dir: &Path, id: &str, s: &ScalingReport) -> Result<Vec<PathBuf>> {
    let mut losses = Vec::new();
    let mut gaps = Vec::new();
    for (color, f) in s.families.iter().enumerate() {
        let x = |c: f64| c.log10();
        losses.push(Series {
            label: Some(f.label.clone()),
            color,
            points: f.rungs.iter().map(|r| (x(r.compute), r.mean)).collect(),
            markers: true,
            band: f.rungs.iter().map(|r| (x(r.compute), r.min, r.max)).collect(),
        });
        if let (Some(fit), Some(lo), Some(hi)) =
            (&f.fit, f.rungs.first().map(|r| r.compute), f.rungs.last().map(|r| r.compute))
            && !matches!(fit, Fit::Poor { .. })
        {
            let pts: Vec<(f64, f64)> = (0..=40)
                .filter_map(|i| {
                    let c = 10f64.powf(lo.log10() + (hi.log10() - lo.log10()) * i as f64 / 40.0);
                    fit.predict(c).map(|l| (x(c), l))
                })
                .collect();
            losses.push(Series { label: None, color, points: pts, markers: false, band: Vec::new() });
        }
        if let Some(t) = f.versus.as_ref().and_then(|v| v.trend.as_ref()) {
            gaps.push(Series {
                label: Some(f.label.clone()),
                color,
                points: t.rungs.iter().map(|r| (x(r.compute), r.gap)).collect(),
                markers: true,
                band: t.rungs.iter().map(|r| (x(r.compute), r.gap_ci[0], r.gap_ci[1])).collect(),
            });
        }
    }
    let mut panels = vec![Panel {
        title: "final validation loss against training compute".into(),
        x_label: "log10 training FLOPs".into(),
        y_label: "final val loss (nats)".into(),
        integer_x: false,
        log_y: true,
        series: losses,
        hline: None,
    }];
    if !gaps.is_empty() {
        panels.push(Panel {
            title: format!("gap to {} at each size (95% bootstrap band)", s.baseline),
            x_label: "log10 training FLOPs".into(),
            y_label: "loss − baseline's (nats)".into(),
            integer_x: false,
            log_y: false,
            series: gaps,
            hline: Some(0.0),
        });
    }
    let stem = dir.join(format!("{id}_scaling"));
    let title = "Does it hold as models grow? (markers: mean over seeds, band: min-max, plain line: the fit)";
    line_charts(&stem, title, &panels, (620, 440))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_label_drops_the_size_and_the_tuned_value() {
        let shorts = ["n_layer", "n_embd", "steps", "lr"];
        assert_eq!(
            without("metric=idw, lr=0.003, n_embd=64, n_layer=2, qk_norm=rms, steps=275", &shorts),
            "metric=idw, qk_norm=rms"
        );
        assert_eq!(short("model.n_embd"), "n_embd");
    }
}
