//! Findings on planted runs: every comparison ends as *different*, *equivalent within ±δ* or
//! *not resolved* (with the difference the seeds could detect), never as "no significant
//! difference"; one seed gives no test; parts the runs cannot answer say so; plateau escape and
//! the learning-rate range come from the curves.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use attnlab_eval::stats::compare::Verdict;
use attnlab_eval::stats::ttest::TestKind;
use attnlab_eval::{Report, write_report};
use attnlab_model::MetricKind;
use serde_json::{Value, json};

/// Runs of `dot` and `idw` on recall, `(seed, final validation loss)` each.
fn planted(root: &Path, dot: &[(u64, f64)], idw: &[(u64, f64)]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (metric, runs) in [(MetricKind::Dot, dot), (MetricKind::Idw, idw)] {
        for &(seed, loss) in runs {
            let name = format!("recall_{}_s{seed}", metric.name());
            let extra = json!({"final_val_loss": loss, "val_accuracy": 0.5});
            dirs.push(common::make_run(root, &name, "recall", metric, seed, Some(extra)));
        }
    }
    dirs
}

/// Seeds 1, 2, ... for `losses`.
fn seeded(losses: &[f64]) -> Vec<(u64, f64)> {
    losses.iter().enumerate().map(|(i, l)| (i as u64 + 1, *l)).collect()
}

fn statements(report: &Report, part: usize) -> Vec<String> {
    report.findings.parts[part].statements.iter().map(|s| s.text.clone()).collect()
}

fn loss_statement(report: &Report) -> String {
    statements(report, 2).into_iter().find(|s| s.contains("val loss")).expect("a loss finding")
}

fn loss_row(report: &Report) -> attnlab_eval::stats::compare::Comparison {
    report.groups[0].comparisons.iter().find(|t| t.key == "final_val_loss").expect("table").rows[0].clone()
}

/// The report's words never include the null result the verdicts replace.
fn no_null_result(dir: &Path) -> anyhow::Result<()> {
    for file in ["report.md", "report.json"] {
        let text = fs::read_to_string(dir.join(file))?;
        assert!(!text.contains("significant difference"), "{file}: {text}");
    }
    Ok(())
}

#[test]
fn a_planted_difference_is_found() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dirs = planted(tmp.path(), &seeded(&[0.60, 0.61, 0.62]), &seeded(&[0.90, 0.91, 0.89]));
    let report = write_report(&dirs, &tmp.path().join("report"))?;
    let s = loss_statement(&report);
    assert!(s.contains("against metric=dot: different: metric=idw (worse: 1.48x higher ["), "{s}");
    assert!(s.contains("+0.2900 ["), "{s}");
    let row = loss_row(&report);
    assert!(row.excludes_zero() && row.p_holm.expect("tested") < 0.05 && row.n == 3 && row.n_base == 3);
    assert_eq!(row.verdict, Verdict::Different);
    let md = fs::read_to_string(tmp.path().join("report/report.md"))?;
    assert!(md.find("## Findings").expect("findings") < md.find("## Task").expect("task"), "{md}");
    assert!(md.contains("**+0.2900 ["), "the interval excluding zero is marked: {md}");
    let json: Value = serde_json::from_str(&fs::read_to_string(tmp.path().join("report/report.json"))?)?;
    let table = &json["groups"][0]["comparisons"][0];
    assert_eq!(table["quantity"]["direction"], "lower_is_better", "{table}");
    let row = &table["rows"][0];
    for key in
        ["n", "mean", "std", "diff", "ci_low", "ci_high", "p", "p_holm", "delta", "p_tost", "p_tost_holm"]
    {
        assert!(row[key].is_number(), "report.json row lacks {key}: {row}");
    }
    assert_eq!(row["verdict"], "different");
    no_null_result(&tmp.path().join("report"))
}

#[test]
fn a_large_effect_on_two_seeds_is_different_when_paired_and_not_resolved_with_its_detectable_size_when_not()
-> anyhow::Result<()> {
    // The seeds move both metrics alike (0.5 vs 0.9), idw is 0.30-0.31 above dot on each seed.
    let (dot, idw) = ([0.5, 0.9], [0.80, 1.21]);
    let tmp = tempfile::tempdir()?;
    let report =
        write_report(&planted(tmp.path(), &seeded(&dot), &seeded(&idw)), &tmp.path().join("report"))?;
    let row = loss_row(&report);
    assert_eq!((row.test, row.verdict), (Some(TestKind::Paired), Verdict::Different), "{row:?}");
    assert!(loss_statement(&report).contains("paired t, 2 seeds"), "{}", loss_statement(&report));
    no_null_result(&tmp.path().join("report"))?;
    // The same values on other seeds for idw: nothing to pair, Welch with about one degree of
    // freedom cannot tell, and the sentence says what it could have detected.
    let tmp = tempfile::tempdir()?;
    let idw_other: Vec<(u64, f64)> = idw.iter().enumerate().map(|(i, l)| (i as u64 + 3, *l)).collect();
    let report = write_report(&planted(tmp.path(), &seeded(&dot), &idw_other), &tmp.path().join("report"))?;
    let row = loss_row(&report);
    assert_eq!((row.test, row.verdict), (Some(TestKind::Welch), Verdict::NotResolved), "{row:?}");
    // statsmodels TTestIndPower().solve_power(None, nobs1=2, ratio=1, alpha=0.05, power=0.8)
    // = 5.653489341914222, times the pooled standard deviation.
    let pooled = ((0.08 + 0.08405) / 2.0f64).sqrt();
    let d = row.detectable.expect("detectable size");
    assert!((d - 5.653489341914222 * pooled).abs() < 1e-5, "{d}");
    let s = loss_statement(&report);
    assert!(s.contains("not resolved: metric=idw (+0.3050 [") && s.contains("Welch, 2 vs 2 seeds"), "{s}");
    assert!(s.contains(&format!("a difference below {d:.4} could not be detected")), "{s}");
    no_null_result(&tmp.path().join("report"))
}

#[test]
fn identical_runs_are_equivalent() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let losses = seeded(&[0.60, 0.61, 0.62]);
    let report = write_report(&planted(tmp.path(), &losses, &losses), &tmp.path().join("report"))?;
    let row = loss_row(&report);
    assert_eq!(row.verdict, Verdict::Equivalent, "{row:?}");
    let s = loss_statement(&report);
    assert!(s.contains("against metric=dot: equivalent within ±0.0200: metric=idw (+0.0000 ["), "{s}");
    // No neg_sq_euclid runs, one learning rate, no per-evaluation accuracy: said, with the sweep.
    let gaps = &report.findings.parts[0].gaps;
    assert!(
        gaps.iter().any(|g| g.contains("no `neg_sq_euclid` runs") && g.contains("answer.toml")),
        "{gaps:?}"
    );
    let gaps = &report.findings.parts[2].gaps;
    assert!(gaps.iter().any(|g| g.contains("one learning rate")), "{gaps:?}");
    assert!(gaps.iter().any(|g| g.contains("no plateau escape")), "{gaps:?}");
    no_null_result(&tmp.path().join("report"))
}

#[test]
fn a_small_difference_inside_the_margin_is_equivalent_and_one_outside_is_different() -> anyhow::Result<()> {
    let dot = seeded(&[0.600, 0.610, 0.620, 0.630]);
    // +0.005 on average (per seed +0.012, -0.004, +0.010, +0.002: paired t = 1.35, p 0.27),
    // well inside ±0.02 nats (TOST p 0.014).
    let inside = seeded(&[0.612, 0.606, 0.630, 0.632]);
    // The same spread around +0.06, three times the margin.
    let outside = seeded(&[0.667, 0.661, 0.685, 0.687]);
    for (idw, want) in [(inside, Verdict::Equivalent), (outside, Verdict::Different)] {
        let tmp = tempfile::tempdir()?;
        let report = write_report(&planted(tmp.path(), &dot, &idw), &tmp.path().join("report"))?;
        let row = loss_row(&report);
        assert_eq!((row.test, row.verdict), (Some(TestKind::Paired), want), "{row:?}");
        assert_eq!(row.delta, Some(0.02));
        no_null_result(&tmp.path().join("report"))?;
    }
    Ok(())
}

#[test]
fn one_seed_says_no_test_is_possible() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dirs = planted(tmp.path(), &seeded(&[0.60]), &seeded(&[0.90]));
    let report = write_report(&dirs, &tmp.path().join("report"))?;
    let s = loss_statement(&report);
    assert!(
        s.contains("no test possible: metric=idw (+0.3000; n = 1 vs 1: fewer than 2 seeds on a side"),
        "{s}"
    );
    assert_eq!(loss_row(&report).verdict, Verdict::NoTest);
    no_null_result(&tmp.path().join("report"))
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

#[test]
fn a_sweep_margin_replaces_the_quantitys_own_and_an_unknown_key_is_refused() -> anyhow::Result<()> {
    use attnlab_eval::{ReportOptions, write_report_with};
    use attnlab_train::tasks::report::Margin;
    let tmp = tempfile::tempdir()?;
    let dirs = planted(tmp.path(), &seeded(&[0.60, 0.61, 0.62]), &seeded(&[0.61, 0.62, 0.63]));
    let options = ReportOptions {
        margins: vec![("final_val_loss".into(), Margin::Relative(0.5))],
        ..Default::default()
    };
    let report = write_report_with(&dirs, &tmp.path().join("report"), &options)?;
    let row = loss_row(&report);
    assert!((row.delta.expect("margin") - 0.5 * 0.61).abs() < 1e-12, "{row:?}");
    let options = ReportOptions {
        margins: vec![("final_val_los".into(), Margin::Absolute(0.1))],
        ..Default::default()
    };
    let err = write_report_with(&dirs, &tmp.path().join("report2"), &options).expect_err("unknown key");
    assert!(format!("{err:#}").contains("`final_val_los` names no compared quantity"), "{err:#}");
    Ok(())
}
