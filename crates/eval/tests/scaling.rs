//! The scaling section on planted ladders (issue 23): runs differing in size (here their
//! schedule length, one of the ladder's size keys) and in planted compute and loss. `dot`
//! follows L = 1.5 + 0.8 (C / 1e11)^-0.3; `idw` sits 0.10 nats above it at the smallest size and
//! 0.02 above at the largest, so its gap shrinks; one size only gives no scaling section.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use attnlab_eval::stats::scaling::{Fit, Trend};
use attnlab_eval::write_report;
use attnlab_model::MetricKind;
use serde_json::{Value, json};

const COMPUTES: [f64; 4] = [1e11, 1e12, 1e13, 1e14];

fn dot_loss(c: f64) -> f64 {
    1.5 + 0.8 * (c / 1e11).powf(-0.3)
}

/// `idw`'s planted gap: 0.10 at 1e11 falling by 0.027 per decade.
fn idw_gap(c: f64) -> f64 {
    0.10 - 0.0267 * (c / 1e11).log10()
}

/// Runs of `dot` and `idw` at each of `computes`, 3 seeds, with small seed-dependent noise.
fn ladder(root: &Path, computes: &[f64]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (size, &c) in computes.iter().enumerate() {
        for metric in [MetricKind::Dot, MetricKind::Idw] {
            for seed in 1..=3u64 {
                let noise = [0.004, -0.003, -0.001][seed as usize - 1];
                let gap = if metric == MetricKind::Idw { idw_gap(c) } else { 0.0 };
                let loss = dot_loss(c) + gap + noise;
                let name = format!("s{size}_{}_seed{seed}", metric.name());
                let extra = json!({"final_val_loss": loss, "val_bpc": loss / std::f64::consts::LN_2, "vocab_size": 13,
                    "compute": {"non_embedding_params": 1000 * (size + 1), "tokens": 100, "flops_per_token": 1.0,
                    "flops": c, "causal_half_counted": true}});
                let dir = common::make_run(root, &name, "text", metric, seed, Some(extra));
                // The size: a longer schedule at each rung (a ladder's size key).
                let path = dir.join("config.json");
                let mut config: Value =
                    serde_json::from_str(&fs::read_to_string(&path).expect("config")).expect("json");
                config["train"]["steps"] = json!(20 * (size + 1));
                fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("config");
                dirs.push(dir);
            }
        }
    }
    dirs
}

#[test]
fn a_ladder_gets_fits_a_shrinking_gap_and_a_multiplier() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dirs = ladder(tmp.path(), &COMPUTES);
    let out = tmp.path().join("report");
    let report = write_report(&dirs, &out)?;
    let g = &report.groups[0];
    let s = g.scaling.as_ref().expect("a scaling section");
    assert_eq!(s.families.len(), 2, "{:?}", s.families.iter().map(|f| &f.label).collect::<Vec<_>>());
    let dot = s.families.iter().find(|f| f.metric == "dot").expect("dot");
    let idw = s.families.iter().find(|f| f.metric == "idw").expect("idw");
    assert_eq!(dot.rungs.len(), 4);
    assert!(!dot.label.contains("steps="), "{}", dot.label);
    match dot.fit.as_ref().expect("a fit") {
        Fit::PowerLaw { e, alpha, .. } => {
            assert!((e - 1.5).abs() < 0.05, "E {e}");
            assert!((alpha - 0.3).abs() < 0.05, "alpha {alpha}");
        }
        other => panic!("dot follows a planted power law: {other:?}"),
    }
    let v = idw.versus.as_ref().expect("idw against dot");
    let t = v.trend.as_ref().expect("a trend over 4 shared sizes");
    assert!(t.paired, "the same seeds on both sides");
    assert!((t.slope + 0.0267).abs() < 0.005, "slope {}", t.slope);
    assert_eq!(v.direction, Some(Trend::Shrinking));
    let m = v.multiplier.as_ref().expect("a multiplier");
    // idw is behind at the largest size: dot needs less compute to reach its loss.
    assert!(m.value < 1.0, "{m:?}");
    // Each size's verdict against dot at that size.
    assert!(idw.rungs.iter().all(|r| r.verdict.is_some()), "{:?}", idw.rungs);
    let md = fs::read_to_string(out.join("report.md"))?;
    assert!(md.contains("### Scaling: does it hold as models grow?"));
    assert!(md.contains("shrinking"), "the trend's word in the report");
    assert!(out.join("text_scaling.png").exists(), "{:?}", g.figures);
    let part =
        report.findings.parts.iter().find(|p| p.title == "Does it hold as models grow?").expect("the part");
    assert_eq!(part.statements.len(), 2);
    assert!(part.statements.iter().any(|st| st.text.contains("shrinking")), "{:?}", part.statements);
    Ok(())
}

#[test]
fn one_size_has_no_scaling_section_and_the_part_says_so() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dirs = ladder(tmp.path(), &COMPUTES[..1]);
    let report = write_report(&dirs, &tmp.path().join("report"))?;
    assert!(report.groups[0].scaling.is_none());
    let part =
        report.findings.parts.iter().find(|p| p.title == "Does it hold as models grow?").expect("the part");
    assert!(part.statements.is_empty());
    assert!(part.gaps.iter().any(|g| g.contains("one size")), "{:?}", part.gaps);
    Ok(())
}

#[test]
fn two_sizes_are_a_poor_fit_that_is_never_extrapolated() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dirs = ladder(tmp.path(), &COMPUTES[..2]);
    let report = write_report(&dirs, &tmp.path().join("report"))?;
    let s = report.groups[0].scaling.as_ref().expect("two computes: a section");
    for f in &s.families {
        assert!(matches!(f.fit, Some(Fit::Poor { .. })), "{}: {:?}", f.label, f.fit);
    }
    let idw = s.families.iter().find(|f| f.metric == "idw").expect("idw");
    let m = &idw.versus.as_ref().expect("against dot").multiplier;
    assert!(m.as_ref().is_err_and(|e| e.contains("poor")), "{m:?}");
    Ok(())
}
