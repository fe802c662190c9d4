//! `write_report` on hand-made run directories: files, grouping, seed statistics, bad input.

use crate::common;

use std::fs;

use attnlab_eval::write_report;
use attnlab_model::MetricKind;
use serde_json::{Value, json};

#[test]
fn report_groups_tasks_averages_seeds_and_writes_every_file() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let mut dirs = Vec::new();
    for metric in [MetricKind::Dot, MetricKind::Idw] {
        for seed in [1, 2] {
            let name = format!("recall_{}_s{seed}", metric.name());
            dirs.push(common::make_run(
                root,
                &name,
                "recall",
                metric,
                seed,
                Some(json!({"val_accuracy": 0.5 + seed as f64 * 0.1})),
            ));
        }
    }
    // A text run without summary: reported from metrics.jsonl, grouped apart, marked unfinished.
    dirs.push(common::make_run(root, "text_dot", "text", MetricKind::Dot, 1, None));
    // ATTNLAB_EVAL_TEST_OUT=DIR keeps the pictures for a look.
    let out = std::env::var_os("ATTNLAB_EVAL_TEST_OUT").map_or_else(|| root.join("report"), Into::into);
    let report = write_report(&dirs, &out)?;

    assert_eq!(report.n_runs, 5);
    let ids: Vec<&str> = report.groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["recall", "text"]);
    let recall = &report.groups[0];
    let labels: Vec<&str> = recall.seed_groups.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["metric=dot", "metric=idw"]);
    let acc = &recall.seed_groups[0].numbers["val_accuracy"];
    assert!((acc.mean - 0.65).abs() < 1e-12, "{acc:?}");
    assert!((acc.std.expect("two seeds") - 0.1f64.hypot(0.0) / 2f64.sqrt()).abs() < 1e-12, "{acc:?}");
    let text = &report.groups[1];
    let r = &text.runs[0];
    assert!(!r.finished);
    assert_eq!(r.numbers["steps"], 20.0);
    assert!(
        (r.numbers["bits_per_token"] - r.numbers["final_val_loss"] / std::f64::consts::LN_2).abs() < 1e-12
    );
    assert!((r.numbers["ms_per_step"] - 50.0).abs() < 1e-9, "{:?}", r.numbers);

    for g in &report.groups {
        for run in &g.runs {
            assert!(run.notes.is_empty(), "{}: {:?}", run.name, run.notes);
            let params = run.params.as_ref().expect("params");
            assert_eq!(params.len(), 4, "2 layers x 2 heads");
            assert!(params.iter().all(|h| h.qk.sv.len() == 3 && h.q.fro > 0.0));
            let geo = run.geometry.as_ref().expect("geometry");
            assert_eq!(geo.heads.len(), 4);
            assert!(geo.heads.iter().all(|h| h.entropy.is_finite() && h.tv_to_dot >= 0.0));
            if run.metric == "dot" {
                assert!(geo.heads.iter().all(|h| h.tv_to_dot < 1e-6));
            }
        }
        for stem in ["loss_step", "loss_wall", "geometry"] {
            for ext in ["png", "svg"] {
                let f = out.join(format!("{}_{stem}.{ext}", g.id));
                assert!(
                    fs::metadata(&f).map(|m| m.len() > 1000).unwrap_or(false),
                    "{} missing or empty",
                    f.display()
                );
            }
        }
    }
    let md = fs::read_to_string(out.join("report.md"))?;
    assert!(md.contains("## Task `recall`") && md.contains("## Task `text`"));
    assert!(md.contains("| metric=idw | 2 |"), "{md}");
    assert!(md.contains("recall_loss_step.png"));
    let json: Value = serde_json::from_str(&fs::read_to_string(out.join("report.json"))?)?;
    assert_eq!(json["groups"][0]["runs"].as_array().map(Vec::len), Some(4));
    Ok(())
}

#[test]
fn not_a_run_and_no_metrics_are_clear_errors() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty)?;
    let err = format!(
        "{:#}",
        write_report(std::slice::from_ref(&empty), &tmp.path().join("r")).expect_err("not a run")
    );
    assert!(err.contains("is not a run directory") && err.contains("empty"), "{err}");

    let run = common::make_run(tmp.path(), "fresh", "recall", MetricKind::Dot, 1, None);
    fs::write(run.join("metrics.jsonl"), "")?;
    let err = format!(
        "{:#}",
        write_report(std::slice::from_ref(&run), &tmp.path().join("r")).expect_err("no metrics")
    );
    assert!(err.contains("no metrics yet"), "{err}");

    fs::write(
        run.join("metrics.jsonl"),
        "{\"step\":1,\"split\":\"train\",\"loss\":1.0}\nnot json\n{\"step\":2}\n",
    )?;
    let err = format!(
        "{:#}",
        write_report(std::slice::from_ref(&run), &tmp.path().join("r")).expect_err("bad line")
    );
    assert!(err.contains("line 2"), "{err}");

    // A cut-off last line (killed mid-write) is skipped, not an error.
    fs::write(run.join("metrics.jsonl"), "{\"step\":1,\"split\":\"train\",\"loss\":1.0}\n{\"step\":2,\"spl")?;
    let r = attnlab_eval::Run::load(&run)?;
    assert_eq!(r.records.len(), 1);
    let missing = tmp.path().join("nope");
    let err = format!("{:#}", attnlab_eval::Run::load(&missing).expect_err("missing"));
    assert!(err.contains("nope"), "{err}");
    Ok(())
}

#[test]
fn runs_of_one_config_in_two_directories_are_told_apart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = common::make_run(&tmp.path().join("a"), "same", "recall", MetricKind::Dot, 1, None);
    let b = common::make_run(&tmp.path().join("b"), "same", "recall", MetricKind::Dot, 1, None);
    let c = common::make_run(tmp.path(), "other", "recall", MetricKind::Dot, 1, None);
    let runs = attnlab_eval::screen::load_runs(&[a.clone(), b.clone(), c]).expect("load").runs;
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names[0], format!("same ({})", a.display()));
    assert_eq!(names[1], format!("same ({})", b.display()));
    assert_eq!(names[2], "other", "a unique name stays as it is");
}

/// A report written again into the same directory with fewer pictures leaves none of the old
/// report's pictures behind, and never removes a file it did not list.
#[test]
fn a_report_written_again_removes_the_old_reports_pictures_only() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let recall = common::make_run(
        root,
        "recall_dot",
        "recall",
        MetricKind::Dot,
        1,
        Some(json!({"val_accuracy": 0.5})),
    );
    let text = common::make_run(root, "text_dot", "text", MetricKind::Dot, 1, None);
    let out = root.join("report");
    let first = write_report(&[recall.clone(), text], &out)?;
    let text_figures: Vec<String> =
        first.groups.iter().filter(|g| g.task == "text").flat_map(|g| g.figures.clone()).collect();
    assert!(!text_figures.is_empty(), "the text group drew pictures");
    fs::write(out.join("notes.png"), b"mine")?;
    write_report(&[recall], &out)?;
    for f in &text_figures {
        assert!(!out.join(f).exists(), "{f}: a picture of the old report is left behind");
    }
    assert!(out.join("notes.png").exists(), "a file the old report did not list is kept");
    Ok(())
}
