//! What tasks declare for the report: every column names a number their typed scores (or the
//! trainer's summary) hold; columns and headers that mean nothing for a task are absent.

use std::collections::BTreeSet;

use attnlab_train::rundir::Summary;
use attnlab_train::tasks::franke::Errors;
use attnlab_train::tasks::icl_curve::{ErrorCurve, IclBaseline, RegressionScores};
use attnlab_train::tasks::prototype::{KeyDistances, PrototypeScores};
use attnlab_train::tasks::recall::RecallScores;
use attnlab_train::tasks::regression::{FunctionFamily, RegressionConfig};
use attnlab_train::tasks::report::{Margin, Source, Threshold, Unit};
use attnlab_train::tasks::scattered::{FrankeScores, ScatteredScores};
use attnlab_train::tasks::text::TextScores;
use attnlab_train::tasks::{
    Picture, PrototypeTaskConfig, RecallConfig, ScatteredConfig, TaskConfig, TaskScores, TextConfig,
};
use serde_json::Value;

fn text(tokenizer: &str) -> TextConfig {
    TextConfig {
        corpus: "c.txt".into(),
        corpus_file: None,
        tokenizer: tokenizer.into(),
        bpe_vocab_size: 512,
        val_fraction: 0.1,
    }
}

fn recall(power_a: f64) -> RecallConfig {
    RecallConfig { vocab_size: 16, seq_len: 8, n_pairs: 2, power_a }
}

/// A summary with `scores`, and every dotted key holding a number in its JSON.
fn summary_keys(scores: TaskScores) -> BTreeSet<String> {
    let s = Summary {
        steps: 1,
        final_train_loss: 1.0,
        final_val_loss: 1.0,
        best_val_loss: 1.0,
        tokens_per_s: 1.0,
        wall_s: 1.0,
        ms_per_step: 1.0,
        metric: "dot".into(),
        seed: 1,
        compute: None,
        scores,
    };
    let mut out = BTreeSet::new();
    let value = serde_json::to_value(&s).expect("summary serialises");
    flatten(&value, "", &mut out);
    let back: Summary = serde_json::from_value(value).expect("summary reads back");
    assert_eq!(back, s);
    out
}

fn flatten(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, sub) in m {
                flatten(sub, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        Value::Number(_) => {
            out.insert(path.to_string());
        }
        _ => {}
    }
}

#[test]
fn every_declared_column_is_a_number_of_the_task_summary() {
    let e = Errors { max_abs: 1.0, mean_abs: 0.5, rms: 0.7 };
    let cases = [
        (
            TaskConfig::Text(text("char")),
            TaskScores::Text(TextScores { val_bpc: Some(1.0), val_bits_per_token: None, vocab_size: 9 }),
        ),
        (TaskConfig::Recall(recall(0.01)), TaskScores::Recall(RecallScores { val_accuracy: 0.5 })),
        (
            TaskConfig::Scattered(ScatteredConfig { dim: 2, n_context: 4, n_query: 2, val_functions: 2 }),
            TaskScores::Scattered(ScatteredScores {
                val_mse: 1.0,
                val_shepard_p2_mse: 1.0,
                val_nearest_mse: 1.0,
                franke: Some(FrankeScores { model: Some(e), baselines: [("nearest".to_string(), e)].into() }),
            }),
        ),
        (
            TaskConfig::Prototype(PrototypeTaskConfig::default()),
            TaskScores::Prototype(PrototypeScores {
                score: "idw".into(),
                n_protos: 2,
                train_accuracy: 1.0,
                val_accuracy: 1.0,
                key_distances: KeyDistances {
                    min: 0.1,
                    median: 0.2,
                    mean: 0.2,
                    max: 0.3,
                    per_key: vec![0.1, 0.3],
                },
                train_errors: vec![],
                data_mean: vec![0.0, 0.0],
                data_std: vec![1.0, 1.0],
            }),
        ),
    ];
    let curve = ErrorCurve {
        counts: vec![1, 2, 3, 4],
        model: vec![1.0, 0.8, 0.6, 0.5],
        baselines: IclBaseline::ALL
            .iter()
            .map(|b| (b.name().to_string(), vec![1.0, 0.5, 0.2, 0.1]))
            .collect(),
        bandwidths: vec![1.0; 4],
    };
    let regression = (
        TaskConfig::Regression(RegressionConfig::new(FunctionFamily::Linear, 2, 4)),
        TaskScores::Regression(RegressionScores::from_curve(curve, 2).expect("a curve to 2d")),
    );
    let mut names = Vec::new();
    for (cfg, scores) in cases.into_iter().chain([regression]) {
        // The registry's one name is the config's `kind`, the summary's `task` and both names.
        assert_eq!(cfg.name(), scores.task());
        assert_eq!(serde_json::to_value(&cfg).expect("config")["kind"], cfg.name());
        assert_eq!(serde_json::to_value(&scores).expect("scores")["task"], cfg.name());
        names.push(cfg.name());
        let keys = summary_keys(scores);
        let report = cfg.report();
        assert!(report.columns.len() > 4, "{}: {:?}", cfg.name(), report.columns);
        for col in &report.columns {
            let needed = match col.source {
                Source::Stored => col.key,
                Source::BitsFromNats(nats) => nats,
            };
            assert!(
                keys.contains(needed),
                "{}: column `{}` needs `{needed}`: {keys:?}",
                cfg.name(),
                col.header
            );
        }
        // Every column but the step count and the wall time is compared with the baseline, so it
        // declares its equivalence margin (a new column without one fails here, not silently).
        for col in &report.columns {
            let compared = !matches!(col.unit, Unit::Steps | Unit::Seconds);
            assert_eq!(
                col.margin.is_some(),
                compared,
                "{}: column `{}` must declare a margin exactly when it is compared",
                cfg.name(),
                col.header
            );
        }
    }
    assert_eq!(names, TaskConfig::NAMES, "one case per registered task, in the registry's order");
}

#[test]
fn each_task_declares_its_plateau_threshold_and_character_level() {
    let report = TaskConfig::Recall(recall(0.01)).report();
    assert_eq!((report.threshold, report.char_level), (Some(Threshold::AccuracyAbove(0.9)), false));
    let report = TaskConfig::Text(text("char")).report();
    assert_eq!((report.threshold, report.char_level), (Some(Threshold::LossBelow(2.0)), true));
    for other in ["bpe", "data/char_tokenizer.json", "hub:someone/chars"] {
        let report = TaskConfig::Text(text(other)).report();
        assert_eq!((report.threshold, report.char_level), (None, false), "{other}");
    }
    for cfg in [
        TaskConfig::Scattered(ScatteredConfig { dim: 2, n_context: 4, n_query: 2, val_functions: 2 }),
        TaskConfig::Prototype(PrototypeTaskConfig::default()),
        TaskConfig::Regression(RegressionConfig::new(FunctionFamily::Linear, 2, 4)),
    ] {
        let report = cfg.report();
        assert_eq!((report.threshold, report.char_level), (None, false), "{}", cfg.name());
    }
}

#[test]
fn columns_and_headers_fit_the_task() {
    let headers = |c: &TaskConfig| c.report().columns.iter().map(|c| c.header).collect::<Vec<_>>();
    let proto = TaskConfig::Prototype(PrototypeTaskConfig::default());
    let h = headers(&proto);
    assert!(!h.contains(&"tokens/s") && !h.contains(&"ms/step"), "{h:?}");
    assert!(h.contains(&"val acc") && h.contains(&"wall s"), "{h:?}");
    assert_eq!(proto.report().pictures, [Picture::PrototypeMaps]);
    assert!(headers(&TaskConfig::Recall(recall(0.01))).contains(&"tokens/s"));

    // Bits per character only for the character tokenizer (by kind, not by a substring).
    assert!(headers(&TaskConfig::Text(text("char"))).contains(&"bits/char"));
    for other in ["bpe", "data/char_tokenizer.json", "hub:someone/chars"] {
        let h = headers(&TaskConfig::Text(text(other)));
        assert!(h.contains(&"bits/token") && !h.contains(&"bits/char"), "{other}: {h:?}");
    }

    // The recall header leaves out power_a at its default and shows a changed one.
    let shown = TaskConfig::Recall(recall(0.01)).report().config_text;
    assert!(!shown.contains("power_a") && shown.contains("n_pairs"), "{shown}");
    assert!(TaskConfig::Recall(recall(0.5)).report().config_text.contains("power_a"));
}

#[test]
fn margins_read_as_numbers_or_percentages_and_bad_ones_are_refused() {
    let parse =
        |t: &str| Margin::parse(&toml::from_str::<toml::Table>(&format!("m = {t}")).expect("toml")["m"]);
    assert_eq!(parse("0.02").expect("absolute"), Margin::Absolute(0.02));
    assert_eq!(parse("1").expect("integer"), Margin::Absolute(1.0));
    assert_eq!(parse("\"10%\"").expect("relative"), Margin::Relative(0.1));
    // Relative to the size of the baseline's mean, whatever its sign.
    assert!((Margin::Relative(0.1).delta(-2.0) - 0.2).abs() < 1e-15);
    for bad in ["-0.1", "0", "\"ten\"", "\"0.1\"", "true", "\"-5%\""] {
        assert!(parse(bad).is_err(), "{bad} should be refused");
    }
}
