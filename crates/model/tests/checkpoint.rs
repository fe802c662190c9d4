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
    let err = Checkpoint::open(&dir, &Device::Cpu).err().expect("NaN weights are refused");
    assert!(err.is_divergence(), "{err}");
    let err = err.to_string();
    assert!(err.contains("NaN or infinite") && err.contains(MODEL_FILE), "{err}");
}

/// Every kind of `CheckpointError`, each from its own damage; only non-finite weights are a
/// divergence, and every message names the file.
#[test]
fn open_names_each_kind_of_fault() {
    use attnlab_model::CheckpointError;
    let tmp = tempfile::tempdir().expect("tmp");
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        saved(&dir, MetricKind::Dot);
        dir
    };
    let open = |dir: &Path| Checkpoint::open(dir, &Device::Cpu).err().expect("a fault");
    let missing = open(&tmp.path().join("nowhere"));
    assert!(matches!(missing, CheckpointError::NotFound(_)), "{missing}");
    let dir = fresh("truncated");
    let bytes = fs::read(dir.join(MODEL_FILE)).expect("weights");
    fs::write(dir.join(MODEL_FILE), &bytes[..bytes.len() - 7]).expect("cut");
    let e = open(&dir);
    assert!(matches!(e, CheckpointError::Corrupt { .. }) && e.to_string().contains(MODEL_FILE), "{e}");
    let dir = fresh("io");
    fs::remove_file(dir.join(MODEL_FILE)).expect("rm");
    fs::create_dir(dir.join(MODEL_FILE)).expect("a directory in its place");
    let e = open(&dir);
    let CheckpointError::Unreadable { path, source } = &e else { panic!("not unreadable: {e}") };
    assert!(path.ends_with(MODEL_FILE) && e.to_string().contains(&source.to_string()), "{e}");
    let dir = fresh("config");
    fs::write(dir.join(CONFIG_FILE), b"{\"model\": ").expect("cut config");
    let e = open(&dir);
    assert!(matches!(e, CheckpointError::Corrupt { .. }) && e.to_string().contains(CONFIG_FILE), "{e}");
    let dir = fresh("mismatch");
    let mut other = config(MetricKind::Dot);
    if let ModelConfig::Gpt(c) = &mut other {
        c.n_embd = 16;
    }
    fs::write(dir.join(CONFIG_FILE), json!({"model": other, "seed": 11}).to_string()).expect("edit");
    let e = open(&dir);
    assert!(matches!(e, CheckpointError::Mismatch { .. }) && e.to_string().contains("shape"), "{e}");
    for e in [&missing, &e] {
        assert!(!e.is_divergence() && !e.to_string().contains("diverged"), "{e}");
    }
    #[cfg(unix)]
    if reads_past_permissions() {
        eprintln!(
            "running as root: a permission-denied read cannot be provoked; the I/O case above stands for it"
        );
    } else {
        use std::os::unix::fs::PermissionsExt;
        let dir = fresh("denied");
        fs::set_permissions(dir.join(MODEL_FILE), fs::Permissions::from_mode(0o000)).expect("chmod");
        let e = open(&dir);
        assert!(e.to_string().contains("ermission denied"), "{e}");
        assert!(matches!(e, CheckpointError::Unreadable { .. }), "{e}");
    }
}

/// Whether this process runs as root (then file permissions do not stop its reads): a file
/// made unreadable is read anyway.
#[cfg(unix)]
fn reads_past_permissions() -> bool {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let probe = tmp.path().join("probe");
    fs::write(&probe, b"x").expect("probe");
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).expect("chmod");
    fs::read(&probe).is_ok()
}

/// A saved config writes out the defaults its metric reads; a config of an earlier version
/// with them unset loads as the same model.
#[test]
fn resolved_configs_write_out_power_and_scale() {
    for metric in MetricKind::ALL {
        let cfg = config(metric);
        let resolved = cfg.resolved();
        let ModelConfig::Gpt(r) = &resolved else { panic!("gpt") };
        let uses_power = metric.input() == attnlab_model::metric::table::Input::DistPow;
        assert_eq!(r.attention.power, uses_power.then(|| metric.default_power()), "{metric}");
        let has_scale = metric.head_param() == attnlab_model::metric::table::HeadParam::Scale;
        assert_eq!(r.attention.attn_scale, has_scale.then(|| 1.0 / 2.0), "{metric}: 1/sqrt(8/2)");
        // Same variables and same outputs from one seed.
        let (a, _) = Model::init(&cfg, 3, &Device::Cpu).expect("init");
        let (b, _) = Model::init(&resolved, 3, &Device::Cpu).expect("init");
        assert_eq!(logits(&a), logits(&b), "{metric}");
        assert_eq!(resolved.resolved(), resolved, "{metric}: resolving twice changes nothing");
    }
}
