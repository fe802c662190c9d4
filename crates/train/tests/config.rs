//! Run-config reading: overrides for every field, unknown keys named (in every section and
//! every variant), invalid values named, and the shipped configs parse.

use crate::common;

use attnlab_model::MetricKind;
use attnlab_train::config::parse_scalar;
use attnlab_train::{RunConfig, TaskConfig, TaskEnv};
use candle_core::Device;
use serde_json::Value;

fn err(text: &str, overrides: &[&str]) -> String {
    match common::run_from_toml(text, overrides) {
        Ok(_) => panic!("expected an error for {overrides:?}"),
        Err(e) => format!("{e:#}"),
    }
}

fn build_err(text: &str, overrides: &[&str]) -> String {
    let run = common::run_from_toml(text, overrides).expect("config parses");
    match run.build_task(&TaskEnv::on(&Device::Cpu)) {
        Ok(_) => panic!("expected a build error for {overrides:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn overrides_reach_the_named_fields() -> anyhow::Result<()> {
    let base = common::recall_toml("dot", 10);
    let run = common::run_from_toml(
        &base,
        &["model.metric=idw", "train.steps=77", "train.batch_size=5", "seed=99", "name=x", "model.eps=0.01"],
    )?;
    assert_eq!(run.model.metric(), MetricKind::Idw);
    assert_eq!((run.train.steps, run.train.batch_size, run.seed), (77, 5, 99));
    assert_eq!(run.name.as_deref(), Some("x"));
    let attnlab_model::ModelConfig::Gpt(g) = &run.model else { panic!("a GPT") };
    assert_eq!(g.attention.eps, 0.01);
    // Fields with defaults that the file leaves out can be set too.
    let run =
        common::run_from_toml(&base, &["train.grad_clip=0.5", "task.power_a=0.5", "model.norm=rmsnorm"])?;
    assert_eq!(run.train.grad_clip, 0.5);
    assert!(matches!(run.task, TaskConfig::Recall(ref r) if r.power_a == 0.5));
    Ok(())
}

#[test]
fn infinite_and_nan_numbers_are_errors_naming_their_key() {
    // JSON has no inf / nan: read through it they became `null`, and the error named the wrong
    // problem (an unknown key, or `invalid type: null` at `model`).
    let base = common::recall_toml("dot", 10);
    for (set, key) in [("model.attn_scale=inf", "model.attn_scale"), ("model.eps=nan", "model.eps")] {
        let err = format!("{:#}", common::run_from_toml(&base, &[set]).expect_err(set));
        assert!(err.contains(key) && err.contains("not a finite number"), "{set}: {err}");
    }
    let text = base.replace("[model]\n", "[model]\nrope_fraction = nan\n");
    assert!(text.contains("rope_fraction"), "the test edits the [model] table: {text}");
    let err = format!("{:#}", common::run_from_toml(&text, &[]).expect_err("nan in the file"));
    assert!(err.contains("model.rope_fraction") && err.contains("not a finite number"), "{err}");
}

#[test]
fn override_values_are_toml_scalars() {
    assert_eq!(parse_scalar("3"), Value::from(3));
    assert_eq!(parse_scalar("1e-3"), Value::from(1e-3));
    assert_eq!(parse_scalar("true"), Value::from(true));
    assert_eq!(parse_scalar("\"a b\""), Value::from("a b"));
    assert_eq!(parse_scalar("idw"), Value::from("idw"));
    assert_eq!(parse_scalar("../x.txt"), Value::from("../x.txt"));
}

#[test]
fn unknown_keys_are_named_in_every_section_and_variant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = common::write_file(dir.path(), "c.txt", b"abc");
    for base in [common::recall_toml("dot", 1), common::text_toml(&corpus, "dot", 1)] {
        for key in ["train.stepz", "model.n_heads", "task.vocabsize", "sed", "model.metric_x"] {
            let msg = err(&base, &[&format!("{key}=1")]);
            let leaf = key.rsplit('.').next().unwrap_or(key);
            assert!(msg.contains(leaf), "`{key}` not named in: {msg}");
        }
        let msg = err(&base, &["nosuch.section=1"]);
        assert!(msg.contains("nosuch"), "{msg}");
        let in_file = base.replace("[train]", "[train]\nbogus_key = 1");
        assert!(err(&in_file, &[]).contains("bogus_key"));
    }
    // Under `model.` (read through a round trip, not serde's field list) the valid keys are listed.
    let msg = err(&common::recall_toml("dot", 1), &["model.n_heads=1"]);
    assert!(
        msg.contains("valid keys under `model`") && msg.contains("n_head") && msg.contains("n_embd"),
        "{msg}"
    );
    // A key of the other task variant is unknown here.
    assert!(err(&common::recall_toml("dot", 1), &["task.corpus=x"]).contains("corpus"));
}

#[test]
fn invalid_values_name_the_field() {
    let base = common::recall_toml("dot", 10);
    for (set, want) in [
        ("train.lr=-1", "train.lr"),
        ("train.lr=abc", "train.lr"),
        ("train.steps=0", "train.steps"),
        ("train.batch_size=-2", "train.batch_size"),
        ("train.beta2=1.5", "train.beta2"),
        ("model.metric=euclidish", "model.metric"),
        // Enum and bool values inside flattened model sections (serde reports no path there).
        ("model.qk_norm=rmss", "model.qk_norm"),
        ("model.pos=alibi", "model.pos"),
        ("model.learn_scale=\"yes\"", "model.learn_scale"),
        ("task.n_pairs=0", "task.n_pairs"),
        ("task.seq_len=8", "task.seq_len"),
        ("seed=-1", "seed"),
        ("oops", "key=value"),
    ] {
        let msg = err(&base, &[set]);
        assert!(msg.contains(want), "`{set}`: {msg}");
    }
    for (set, want) in [
        ("model.n_head=0", "model.n_head"),
        ("model.n_embd=15", "model.n_embd"),
        ("model.eps=-1", "model.eps"),
        ("model.block_size=8", "model.block_size"),
    ] {
        let msg = build_err(&base, &[set]);
        assert!(msg.contains(want), "`{set}`: {msg}");
    }
}

#[test]
fn shipped_configs_parse() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for name in ["shakespeare_char.toml", "recall.toml", "smoke.toml"] {
        let run = RunConfig::load(&root.join(name), &[])?;
        assert!(run.train.steps > 0, "{name}");
        let back = RunConfig::from_value(run.to_value()?)?;
        assert_eq!(back, run, "{name} does not survive a JSON round trip");
    }
    let sh = RunConfig::load(&root.join("shakespeare_char.toml"), &[])?;
    let attnlab_model::ModelConfig::Gpt(g) = &sh.model else { panic!("a GPT") };
    assert_eq!((g.n_layer, g.n_head, g.n_embd, g.block_size), (4, 4, 128, 64));
    assert_eq!((sh.train.batch_size, sh.train.steps, sh.train.warmup_steps), (12, 2000, 100));
    assert_eq!((sh.train.lr, sh.train.min_lr()), (1e-3, 1e-4));
    Ok(())
}
