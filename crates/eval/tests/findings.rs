//! Findings on planted runs: no difference gives "no significant difference", a planted one is
//! found; one seed gives no test; parts the runs cannot answer say so; plateau escape and the
//! learning-rate range come from the curves.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use attnlab_eval::{Report, write_report};
use attnlab_model::MetricKind;
use serde_json::{Value, json};

/// Runs of `dot` and `idw` on recall, one per seed, with the given final validation losses.
fn planted(root: &Path, dot: &[f64], idw: &[f64]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (metric, losses) in [(MetricKind::Dot, dot), (MetricKind::Idw, idw)] {
        for (i, loss) in losses.iter().enumerate() {
            let name = format!("recall_{}_s{}", metric.name(), i + 1);
            let extra = json!({"final_val_loss": loss, "val_accuracy": 0.5});
            dirs.push(common::make_run(root, &name, "recall", metric, i as u64 + 1, Some(extra)));
        }
    }
    dirs
}

fn statements(report: &Report, part: usize) -> Vec<String> {
    report.findings.parts[part].statements.iter().map(|s| s.text.clone()).collect()
}

fn loss_statement(report: &Report) -> String {
    statements(report, 2).into_iter().find(|s| s.contains("val loss")).expect("a loss finding")
}

#[test]
fn a_planted_difference_is_found() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dirs = planted(tmp.path(), &[0.60, 0.61, 0.62], &[0.90, 0.91, 0.89]);
    let report = write_report(&dirs, &tmp.path().join("report"))?;
    let s = loss_statement(&report);
    assert!(s.contains("against metric=dot: significantly higher: metric=idw (+0.2900 ["), "{s}");
    assert!(!s.contains("no significant difference"), "{s}");
    let row =
        &report.groups[0].comparisons.iter().find(|t| t.key == "final_val_loss").expect("table").rows[0];
    assert!(row.excludes_zero() && row.p_holm.expect("tested") < 0.05 && row.n == 3 && row.n_base == 3);
    let md = fs::read_to_string(tmp.path().join("report/report.md"))?;
    assert!(md.find("## Findings").expect("findings") < md.find("## Task").expect("task"), "{md}");
    assert!(md.contains("**+0.2900 ["), "the interval excluding zero is marked: {md}");
    let json: Value = serde_json::from_str(&fs::read_to_string(tmp.path().join("report/report.json"))?)?;
    let row = &json["groups"][0]["comparisons"][0]["rows"][0];
    for key in ["n", "mean", "std", "diff", "ci_low", "ci_high", "p", "p_holm"] {
        assert!(row[key].is_number(), "report.json row lacks {key}: {row}");
    }
    Ok(())
}

#[test]
fn no_difference_gives_no_significant_difference() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dirs = planted(tmp.path(), &[0.60, 0.61, 0.62], &[0.61, 0.62, 0.60]);
    let report = write_report(&dirs, &tmp.path().join("report"))?;
    let s = loss_statement(&report);
    assert!(s.contains("against metric=dot: no significant difference: metric=idw."), "{s}");
    assert!(!s.contains("significantly"), "{s}");
    // No neg_sq_euclid runs, one learning rate, no per-evaluation accuracy: said, with the sweep.
    let gaps = &report.findings.parts[0].gaps;
    assert!(
        gaps.iter().any(|g| g.contains("no `neg_sq_euclid` runs") && g.contains("answer.toml")),
        "{gaps:?}"
    );
    let gaps = &report.findings.parts[2].gaps;
    assert!(gaps.iter().any(|g| g.contains("one learning rate")), "{gaps:?}");
    assert!(gaps.iter().any(|g| g.contains("no plateau escape")), "{gaps:?}");
    Ok(())
}

#[test]
fn one_seed_says_no_test_is_possible() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dirs = planted(tmp.path(), &[0.60], &[0.90]);
    let report = write_report(&dirs, &tmp.path().join("report"))?;
    let s = loss_statement(&report);
    assert!(
        s.contains("no test possible: metric=idw (+0.3000; n = 1 vs 1: fewer than 2 seeds on a side"),
        "{s}"
    );
    assert!(!s.contains("significant"), "{s}");
    Ok(())
}

/// Rewrites a run's validation lines with `accuracy` (step -> accuracy) and sets its `train.lr`.
fn set_curve(dir: &Path, acc: impl Fn(u64) -> f64, lr: f64, diverge: bool) -> anyhow::Result<()> {
    let text = fs::read_to_string(dir.join("metrics.jsonl"))?;
    let mut out = String::new();
    for line in text.lines() {
        let mut v: Value = serde_json::from_str(line)?;
        let step = v["step"].as_u64().unwrap_or(0);
        if v["split"] == "val" {
            v["accuracy"] = json!(acc(step));
            if diverge && step == 20 {
                v["loss"] = json!(50.0);
            }
        }
        out += &format!("{v}\n");
    }
    fs::write(dir.join("metrics.jsonl"), out)?;
    let mut cfg: Value = serde_json::from_str(&fs::read_to_string(dir.join("config.json"))?)?;
    cfg["train"]["lr"] = json!(lr);
    fs::write(dir.join("config.json"), serde_json::to_vec(&cfg)?)?;
    Ok(())
}

#[test]
fn plateau_escape_and_learning_rate_range_come_from_the_curves() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut dirs = Vec::new();
    for (metric, lr) in
        [(MetricKind::Dot, 1e-3), (MetricKind::Dot, 1e-2), (MetricKind::Idw, 1e-3), (MetricKind::Idw, 1e-2)]
    {
        for seed in [1u64, 2] {
            let name = format!("{}_lr{lr}_s{seed}", metric.name());
            let dir = common::make_run(
                tmp.path(),
                &name,
                "recall",
                metric,
                seed,
                Some(json!({"val_accuracy": 0.5})),
            );
            // dot leaves the plateau at step 10 (seed 1) and 15 (seed 2); idw never.
            let escape = if metric == MetricKind::Dot { 5 + 5 * seed } else { u64::MAX };
            let diverge = metric == MetricKind::Dot && lr > 5e-3;
            set_curve(&dir, |s| if s >= escape { 0.95 } else { 0.3 }, lr, diverge)?;
            dirs.push(dir);
        }
    }
    let report = write_report(&dirs, &tmp.path().join("report"))?;
    let g = &report.groups[0];
    let dot =
        g.escapes.iter().find(|e| e.label.contains("metric=dot") && e.label.contains("0.001")).expect("dot");
    assert_eq!((dot.reached, dot.mean_steps), (2, Some(12.5)), "{dot:?}");
    let idw = g.escapes.iter().find(|e| e.label.contains("metric=idw")).expect("idw");
    assert_eq!((idw.reached, idw.mean_steps), (0, None));
    let ranges: Vec<(String, Option<f64>)> =
        g.lr_ranges.iter().map(|r| (r.label.clone(), r.largest_stable)).collect();
    assert_eq!(ranges, [("metric=dot".to_string(), Some(1e-3)), ("metric=idw".to_string(), Some(1e-2))]);
    let dynamics = statements(&report, 2).join("\n");
    assert!(
        dynamics.contains("seeds reaching val accuracy > 0.9") && dynamics.contains("2/2 seeds (mean step 1"),
        "{dynamics}"
    );
    assert!(dynamics.contains("metric=dot: largest learning rate without divergence 0.001"), "{dynamics}");
    Ok(())
}
