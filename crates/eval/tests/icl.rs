//! The `regression` task in the report: two short real runs, then the error-curve picture, the
//! task's columns and the curve averaging.

use std::fs;

use attnlab_eval::icl_curves::mean_curve;
use attnlab_eval::write_report;
use attnlab_train::{RunConfig, TrainOptions, train};
use candle_core::Device;

fn regression_run(metric: &str) -> anyhow::Result<RunConfig> {
    let text = format!(
        r#"
        seed = 1
        [model]
        kind = "set_regressor"
        metric = "{metric}"
        dim = 2
        n_layer = 1
        n_head = 2
        n_embd = 8
        [task]
        kind = "regression"
        function = "relu_net"
        dim = 2
        n_context = 5
        n_query = 4
        val_functions = 8
        [train]
        steps = 10
        batch_size = 4
        lr = 3e-3
        warmup_steps = 2
        eval_interval = 10
        eval_batches = 1
        ckpt_interval = 10
    "#
    );
    RunConfig::from_value(attnlab_train::config::toml_to_value(&text)?)
}

#[test]
fn regression_runs_get_the_error_curve_picture_and_their_columns() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut dirs = Vec::new();
    for metric in ["dot", "idw"] {
        let dir = tmp.path().join(metric);
        train(&regression_run(metric)?, &dir, &TrainOptions::new(&Device::Cpu))?;
        dirs.push(dir);
    }
    let out = std::env::var_os("ATTNLAB_EVAL_TEST_OUT").map_or_else(|| tmp.path().join("report"), Into::into);
    let report = write_report(&dirs, &out)?;
    assert_eq!(report.groups.len(), 1);
    let g = &report.groups[0];
    assert_eq!(g.id, "regression");
    for ext in ["png", "svg"] {
        let f = out.join(format!("regression_icl_curves.{ext}"));
        assert!(fs::metadata(&f).map(|m| m.len() > 1000).unwrap_or(false), "{} missing", f.display());
    }
    let svg = fs::read_to_string(out.join("regression_icl_curves.svg"))?;
    for label in ["metric=dot (closest: ", "metric=idw", "baseline least_squares", "baseline nadaraya_watson"]
    {
        assert!(svg.contains(label), "no `{label}` in the picture");
    }
    // Saved configs write out `dot`'s default score scale and `idw`'s default power (issue 25):
    // neither may stop `idw` from being compared with `dot`.
    let val = g.comparisons.iter().find(|t| t.key == "final_val_loss").expect("a final_val_loss comparison");
    assert!(
        val.rows.iter().any(|r| r.label == "metric=idw" && r.baseline == "metric=dot"),
        "idw is compared with dot: {:?}",
        val.rows.iter().map(|r| (&r.label, &r.baseline)).collect::<Vec<_>>()
    );
    let md = fs::read_to_string(out.join("report.md"))?;
    assert!(md.contains("regression_icl_curves.png"), "{md}");
    assert!(md.contains("err n=2d") && md.contains("NW n=2d"), "{md}");
    for sg in &g.seed_groups {
        for key in ["at_d.model", "at_2d.model", "at_2d.least_squares"] {
            assert!(sg.numbers.get(key).is_some_and(|n| n.mean.is_finite()), "{}: {key}", sg.label);
        }
    }
    // The Findings name each configuration's closest baseline, as the picture's legend does.
    assert_eq!(g.closest_baselines.len(), 2, "{:?}", g.closest_baselines);
    for c in &g.closest_baselines {
        assert!(svg.contains(&format!("{} (closest: {}", c.label, c.baseline)), "{c:?}");
    }
    let part = report
        .findings
        .parts
        .iter()
        .find(|p| p.title.starts_with("Locations or directions"))
        .expect("part 6");
    assert_eq!(part.statements.len(), 1);
    assert!(part.statements[0].text.contains("metric=idw: "), "{}", part.statements[0].text);
    Ok(())
}

#[test]
fn curves_are_averaged_point_by_point_and_unequal_lengths_refused() {
    assert_eq!(mean_curve(&[&[1.0, 2.0], &[3.0, 6.0]]), Some(vec![2.0, 4.0]));
    assert_eq!(mean_curve(&[&[1.0, 2.0], &[3.0]]), None);
    assert_eq!(mean_curve(&[]), None);
}
