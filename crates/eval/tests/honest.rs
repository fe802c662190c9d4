//! A report never says something untrue (issue 13, kind 7): a model with non-finite weights is
//! named and left out of the numbers (case 29); a directory given twice counts once (case 23);
//! unfinished runs are not pooled with finished ones; a run that has not started does not break
//! the report; runs trained on different inputs are not pooled as seeds.

use crate::common;

use std::fs;
use std::path::Path;

use attnlab_eval::write_report;
use attnlab_model::MetricKind;
use candle_core::Device;
use serde_json::json;

fn poison(run: &Path) {
    let path = run.join("last/model.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("load");
    let nan: std::collections::HashMap<_, _> =
        tensors.into_iter().map(|(k, t)| (k, (t * f64::NAN).expect("mul"))).collect();
    candle_core::safetensors::save(&nan, &path).expect("save");
}

fn seed_group_sizes(report: &attnlab_eval::Report) -> Vec<(String, usize)> {
    report.groups.iter().flat_map(|g| g.seed_groups.iter().map(|s| (s.label.clone(), s.runs.len()))).collect()
}

#[test]
fn a_nan_model_is_named_and_left_out_of_the_numbers() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let good = common::make_run(
        tmp.path(),
        "good",
        "recall",
        MetricKind::Dot,
        1,
        Some(json!({"val_accuracy": 0.5})),
    );
    let bad =
        common::make_run(tmp.path(), "bad", "recall", MetricKind::Dot, 2, Some(json!({"val_accuracy": 0.5})));
    poison(&bad);
    let out = tmp.path().join("report");
    let report = write_report(&[good, bad], &out)?;
    let runs = &report.groups[0].runs;
    let bad_run = runs.iter().find(|r| r.name == "bad").expect("bad run reported");
    assert!(bad_run.non_finite_weights && bad_run.numbers.is_empty() && bad_run.geometry.is_none());
    assert!(bad_run.notes.iter().any(|n| n.contains("NaN or infinite")), "{:?}", bad_run.notes);
    // Not pooled with the good run: the good run's group has one seed.
    let sizes = seed_group_sizes(&report);
    assert!(sizes.iter().any(|(l, n)| l.contains("status=finished") && *n == 1), "{sizes:?}");
    assert!(sizes.iter().any(|(l, _)| l.contains("non-finite")), "{sizes:?}");
    let md = fs::read_to_string(out.join("report.md"))?;
    let row = md.lines().find(|l| l.starts_with("| bad")).expect("a row for the bad run");
    assert!(row.contains("non-finite weights") && !row.contains("0.000"), "{row}");
    let nan_group =
        report.groups[0].seed_groups.iter().find(|s| s.label.contains("non-finite")).expect("group");
    assert!(nan_group.numbers.is_empty(), "{:?}", nan_group.numbers.keys().collect::<Vec<_>>());
    Ok(())
}

#[test]
fn duplicates_unfinished_not_started_and_other_inputs_are_kept_apart() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let a =
        common::make_run(tmp.path(), "a", "recall", MetricKind::Dot, 1, Some(json!({"val_accuracy": 0.5})));
    let b =
        common::make_run(tmp.path(), "b", "recall", MetricKind::Dot, 2, Some(json!({"val_accuracy": 0.5})));
    let unfinished = common::make_run(tmp.path(), "c", "recall", MetricKind::Dot, 3, None);
    let other_corpus =
        common::make_run(tmp.path(), "d", "recall", MetricKind::Dot, 4, Some(json!({"val_accuracy": 0.5})));
    fs::write(other_corpus.join("inputs.json"), r#"{"corpus_sha256":"ff"}"#)?;
    let fresh = common::make_run(tmp.path(), "e", "recall", MetricKind::Dot, 5, None);
    fs::remove_file(fresh.join("metrics.jsonl"))?;
    fs::create_dir_all(tmp.path().join("x"))?;
    let a_again = tmp.path().join("x/../a");
    let dirs = vec![a.clone(), a_again, b, unfinished, other_corpus, fresh];
    let report = write_report(&dirs, &tmp.path().join("report"))?;
    assert_eq!(report.n_runs, 4, "a given twice counts once; e has not started");
    assert_eq!(report.duplicates.len(), 1);
    assert_eq!(report.not_started.len(), 1);
    let sizes = seed_group_sizes(&report);
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    assert!(sizes.iter().any(|(l, n)| l.contains("status=unfinished") && *n == 1), "{sizes:?}");
    assert!(sizes.iter().any(|(l, n)| l.contains("corpus_sha256") && *n == 1), "{sizes:?}");
    assert!(sizes.iter().any(|(_, n)| *n == 2), "a and b are two seeds of one configuration: {sizes:?}");
    Ok(())
}

#[test]
fn the_report_never_writes_into_a_run() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let a =
        common::make_run(tmp.path(), "a", "recall", MetricKind::Dot, 1, Some(json!({"val_accuracy": 0.5})));
    for out in [a.clone(), a.join("report"), a.join("last")] {
        let err = format!("{:#}", write_report(std::slice::from_ref(&a), &out).expect_err("into a run"));
        assert!(err.contains(&out.display().to_string()), "{err}");
    }
    assert!(!a.join("report.md").exists());
    Ok(())
}

#[test]
fn a_divergence_recorded_by_the_sweep_is_a_diverged_outcome() -> anyhow::Result<()> {
    use attnlab_eval::dynamics::{Outcome, outcome};
    use attnlab_train::sweep::Failure;
    use attnlab_train::sweep::record::FAILURE_FILE;
    let tmp = tempfile::tempdir()?;
    let dir = common::make_run(tmp.path(), "lr_high", "recall", MetricKind::Dot, 0, None);
    assert_eq!(outcome(&attnlab_eval::Run::load(&dir)?), Outcome::Unfinished);
    let failed = Failure { name: "lr_high".into(), step: 7, diverged: false, error: "disk".into() };
    attnlab_train::rundir::write_json(&dir.join(FAILURE_FILE), &failed)?;
    assert_eq!(outcome(&attnlab_eval::Run::load(&dir)?), Outcome::Unfinished, "another failure");
    let diverged = Failure { diverged: true, ..failed };
    attnlab_train::rundir::write_json(&dir.join(FAILURE_FILE), &diverged)?;
    assert_eq!(outcome(&attnlab_eval::Run::load(&dir)?), Outcome::Diverged);
    Ok(())
}
