//! Checkpoints: round trip, run-directory layout, crash recovery, bad files, and loading from a
//! loopback stand-in of the Hugging Face Hub.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use attnlab_model::checkpoint::{CONFIG_FILE, MODEL_FILE, write_dir_atomic};
use attnlab_model::hub::{HubOptions, standin::HubStandin};
use attnlab_model::{Checkpoint, GptConfig, MetricKind, Model, ModelConfig, ParamStore};
use candle_core::{Device, Tensor};
use serde_json::json;

fn config(metric: MetricKind) -> ModelConfig {
    let mut c = GptConfig::baby_char(7);
    c.block_size = 6;
    c.n_layer = 1;
    c.n_head = 2;
    c.n_embd = 8;
    c.attention.metric = metric;
    c.attention.learn_power = metric == MetricKind::Idw;
    ModelConfig::Gpt(c)
}

fn saved(dir: &Path, metric: MetricKind) -> (Model, ParamStore) {
    let cfg = config(metric);
    let (model, params) = Model::init(&cfg, 11, &Device::Cpu).expect("init");
    let run = json!({ "model": cfg, "seed": 11 });
    Checkpoint::save(dir, &run, &params, &[("notes.txt", b"hello")]).expect("save");
    (model, params)
}

fn logits(model: &Model) -> Vec<f32> {
    let idx = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).expect("idx");
    let gpt = model.as_gpt().expect("gpt");
    gpt.forward(&idx).and_then(|l| l.flatten_all()).and_then(|l| l.to_vec1()).expect("logits")
}

fn load_err(path: &Path) -> String {
    match Checkpoint::load(path, &Device::Cpu) {
        Ok(_) => panic!("loading {} should fail", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn round_trip_gives_the_same_model_and_keeps_extra_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ckpt");
    let (model, params) = saved(&dir, MetricKind::Idw);
    let ckpt = Checkpoint::load(&dir, &Device::Cpu).expect("load");
    assert_eq!(logits(&model), logits(&ckpt.model));
    assert_eq!(ckpt.config, config(MetricKind::Idw));
    assert_eq!(ckpt.run_config["seed"], 11);
    assert!(params.get("blocks.0.attn.metric.power").is_some(), "learned power is a named variable");
    assert_eq!(fs::read(dir.join("notes.txt")).expect("extra"), b"hello");
}

#[test]
fn run_directory_loads_its_last_checkpoint_and_survives_an_interrupted_swap() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = tmp.path().join("run");
    let (model, _) = saved(&run.join("last"), MetricKind::Dot);
    // The trainer also keeps the run's config.json at the top of the run directory.
    fs::copy(run.join("last").join(CONFIG_FILE), run.join(CONFIG_FILE)).expect("copy config");
    assert_eq!(logits(&Checkpoint::load(&run, &Device::Cpu).expect("run dir").model), logits(&model));
    // A crash between the two renames of a save leaves only the old copy beside `last`.
    fs::rename(run.join("last"), run.join(".last.old")).expect("rename");
    assert_eq!(logits(&Checkpoint::load(&run, &Device::Cpu).expect("recovered").model), logits(&model));
}

#[test]
fn failed_save_leaves_the_previous_checkpoint_intact() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ckpt");
    let (model, _) = saved(&dir, MetricKind::Cosine);
    let err = write_dir_atomic(&dir, |tmp| {
        fs::write(tmp.join(CONFIG_FILE), b"{ half a config")?;
        Err(candle_core::Error::Msg("disk full".into()))
    })
    .expect_err("save fails");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(logits(&Checkpoint::load(&dir, &Device::Cpu).expect("still loads").model), logits(&model));
    let leftovers: Vec<_> = fs::read_dir(tmp.path()).expect("ls").collect();
    assert_eq!(leftovers.len(), 1, "temporary directory not cleaned up");
}

#[test]
fn bad_checkpoints_give_errors_that_name_the_problem() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ckpt");
    saved(&dir, MetricKind::Dot);
    let weights = fs::read(dir.join(MODEL_FILE)).expect("weights");

    assert!(load_err(&tmp.path().join("nowhere")).contains("does not exist"));
    assert!(load_err(tmp.path()).contains("not a checkpoint"));

    fs::write(dir.join(MODEL_FILE), &weights[..weights.len() / 2]).expect("truncate");
    assert!(load_err(&dir).contains(MODEL_FILE), "truncated file");

    let mut garbage = weights.clone();
    garbage[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    fs::write(dir.join(MODEL_FILE), &garbage).expect("corrupt");
    assert!(load_err(&dir).contains(MODEL_FILE), "corrupted header");

    fs::remove_file(dir.join(MODEL_FILE)).expect("rm");
    assert!(load_err(&dir).contains(MODEL_FILE), "missing file");
    fs::write(dir.join(MODEL_FILE), &weights).expect("restore");

    let text = fs::read_to_string(dir.join(CONFIG_FILE)).expect("config");
    fs::write(dir.join(CONFIG_FILE), text.replace("\"n_embd\": 8", "\"n_embd\": 12")).expect("edit");
    let err = load_err(&dir);
    assert!(err.contains("has shape [8, 8] in the checkpoint but the config gives [12, 12]"), "{err}");

    fs::write(dir.join(CONFIG_FILE), text.replace("\"n_embd\": 8", "\"n_embd\": 8, \"n_embed\": 8"))
        .expect("edit");
    assert!(load_err(&dir).contains("unknown key `model.n_embed`"));

    fs::write(dir.join(CONFIG_FILE), text.replace("\"n_head\": 2", "\"n_head\": 3")).expect("edit");
    assert!(load_err(&dir).contains("n_head"));

    fs::write(dir.join(CONFIG_FILE), "{ not json").expect("edit");
    assert!(load_err(&dir).contains(CONFIG_FILE));
}

#[test]
fn hub_reference_loads_through_a_loopback_standin() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ckpt");
    let (model, _) = saved(&dir, MetricKind::NegSqEuclid);
    let mut files = HashMap::new();
    for rev in ["main", "v1"] {
        for f in [CONFIG_FILE, MODEL_FILE] {
            files.insert(format!("someone/tiny-l2/resolve/{rev}/{f}"), fs::read(dir.join(f)).expect("read"));
        }
    }
    let hub = HubStandin::start(files).expect("standin");
    let opts = HubOptions { endpoint: Some(hub.endpoint.clone()), cache_dir: Some(tmp.path().join("cache")) };
    for reference in ["hub:someone/tiny-l2", "hub:someone/tiny-l2@v1"] {
        let ckpt = Checkpoint::load_with(reference, &Device::Cpu, &opts).expect(reference);
        assert_eq!(logits(&ckpt.model), logits(&model), "{reference}");
    }
    let err = Checkpoint::load_with("hub:someone/missing", &Device::Cpu, &opts).err().expect("404");
    assert!(err.to_string().contains("someone/missing"), "{err}");
    let err = Checkpoint::load_with("hub:not a repo", &Device::Cpu, &opts).err().expect("bad ref");
    assert!(err.to_string().contains("hub:owner/repo"), "{err}");
}

#[test]
fn qk_and_position_options_round_trip_and_old_configs_load_with_defaults() {
    use attnlab_model::{PosKind, QkNorm};
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ckpt");
    let ModelConfig::Gpt(mut c) = config(MetricKind::NegSqEuclid) else { unreachable!("a GPT") };
    c.qk.qk_norm = QkNorm::RmsGain;
    c.qk.attn_norm = false;
    c.pos.pos = PosKind::Rope;
    c.pos.rope_fraction = 0.5;
    c.pos.rope_base = 500.0;
    c.attention.learn_scale = true;
    c.attention.attn_scale = Some(0.4);
    let cfg = ModelConfig::Gpt(c);
    let (model, params) = Model::init(&cfg, 5, &Device::Cpu).expect("init");
    // Move the learned scale and gains off their initial values, so that loading must read them.
    for (name, v) in params.vars() {
        if name.contains("log_scale") || name.contains("_norm.weight") {
            v.set(&v.as_tensor().affine(1.0, 0.25).expect("shift")).expect("set");
        }
    }
    Checkpoint::save(&dir, &json!({ "model": cfg }), &params, &[]).expect("save");
    let ckpt = Checkpoint::load(&dir, &Device::Cpu).expect("load");
    assert_eq!(ckpt.config, cfg);
    assert_eq!(logits(&ckpt.model), logits(&model));
    assert!(params.get("blocks.0.attn.metric.log_scale").is_some());
    assert!(params.get("blocks.0.attn.q_norm.weight").is_some());

    // A config written before these options existed loads with today's defaults.
    let text = fs::read_to_string(dir.join(CONFIG_FILE)).expect("config");
    let mut old: serde_json::Value = serde_json::from_str(&text).expect("json");
    let keys = ["qk_norm", "attn_norm", "pos", "rope_fraction", "rope_base", "attn_scale", "learn_scale"];
    for key in keys {
        assert!(old["model"].as_object_mut().expect("model").remove(key).is_some(), "{key} is saved");
    }
    let old: ModelConfig = serde_json::from_value(old["model"].clone()).expect("old config");
    let ModelConfig::Gpt(old) = old else { unreachable!("a GPT") };
    assert_eq!((old.qk.qk_norm, old.qk.attn_norm, old.pos.pos), (QkNorm::None, true, PosKind::Learned));
    assert_eq!((old.pos.rope_fraction, old.pos.rope_base), (1.0, 10_000.0));
    assert_eq!((old.attention.attn_scale, old.attention.learn_scale), (None, false));
}

#[test]
fn non_finite_weights_are_never_saved_and_are_refused_on_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ckpt");
    let (_model, params) = saved(&dir, MetricKind::Dot);
    let before = fs::read(dir.join(MODEL_FILE)).expect("weights");
    let cfg = config(MetricKind::Dot);
    let run = json!({ "model": cfg, "seed": 11 });
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let (name, var) = params.vars().into_iter().next().expect("a variable");
        let poisoned = (var.as_tensor() * 0.0).and_then(|t| t + bad).expect("poison");
        let kept = var.as_tensor().copy().expect("copy");
        var.set(&poisoned).expect("set");
        assert_eq!(params.first_non_finite().expect("check"), Some(name.clone()));
        let err = Checkpoint::save(&dir, &run, &params, &[]).expect_err("non-finite save").to_string();
        assert!(err.contains(&name) && err.contains("NaN or infinite"), "{err}");
        assert_eq!(fs::read(dir.join(MODEL_FILE)).expect("weights"), before, "the old checkpoint is kept");
        var.set(&kept).expect("restore");
    }
    assert_eq!(params.first_non_finite().expect("check"), None);
    // A checkpoint written with NaN weights by other means is refused by readers that compute.
    let path = dir.join(MODEL_FILE);
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("load");
    let nan: HashMap<_, _> = tensors.into_iter().map(|(k, t)| (k, (t * f64::NAN).expect("mul"))).collect();
    candle_core::safetensors::save(&nan, &path).expect("save");
    let ckpt = Checkpoint::load(&dir, &Device::Cpu).expect("loads");
    let err = ckpt.ensure_finite().expect_err("NaN weights").to_string();
    assert!(err.contains("NaN or infinite") && err.contains(MODEL_FILE), "{err}");
}
