//! Hand-made run directories for tests: a real tiny GPT checkpoint in `last/`, synthetic
//! `metrics.jsonl` and `summary.json`, following the run-directory contract.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use attnlab_model::{Checkpoint, GptConfig, MetricKind, Model, ModelConfig};
use candle_core::Device;
use serde_json::{Value, json};

/// A valid task section of kind `task` (what the report reads its columns from).
fn task_config(task: &str) -> Value {
    match task {
        "recall" => json!({"kind": "recall", "vocab_size": 16, "seq_len": 8, "n_pairs": 2}),
        "text" => json!({"kind": "text", "corpus": "no-such-corpus.txt"}),
        other => json!({"kind": other}),
    }
}

/// Writes a run called `name` under `root`: task `task`, `metric`, `seed`; `steps` train lines and a
/// validation line every 5 steps; `summary` adds `summary.json` with `extra` merged in.
pub fn make_run(
    root: &Path,
    name: &str,
    task: &str,
    metric: MetricKind,
    seed: u64,
    summary: Option<Value>,
) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).expect("run dir");
    let mut gpt = GptConfig::baby_char(13);
    gpt.block_size = 8;
    gpt.n_layer = 2;
    gpt.n_head = 2;
    gpt.n_embd = 8;
    gpt.attention.metric = metric;
    let model_cfg = ModelConfig::Gpt(gpt);
    let config = json!({
        "name": name,
        "seed": seed,
        "model": serde_json::to_value(&model_cfg).expect("model json"),
        "task": task_config(task),
        "train": {"steps": 20, "batch_size": 4},
    });
    fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config).expect("json")).expect("config");
    let (_model, params) = Model::init(&model_cfg, seed, &Device::Cpu).expect("init");
    Checkpoint::save(&dir.join("last"), &config, &params, &[]).expect("save");
    let mut lines = String::new();
    let scale = 1.0 + seed as f64 * 0.1;
    for step in 1..=20u64 {
        let loss = scale * 3.0 / (1.0 + step as f64 * 0.3);
        let wall = step as f64 * 0.05;
        lines += &format!(
            "{{\"step\":{step},\"split\":\"train\",\"loss\":{loss},\"lr\":0.001,\"grad_norm\":1.0,\"tokens_per_s\":1000.0,\"wall_s\":{wall}}}\n"
        );
        if step % 5 == 0 {
            lines +=
                &format!("{{\"step\":{step},\"split\":\"val\",\"loss\":{},\"wall_s\":{wall}}}\n", loss * 1.1);
        }
    }
    fs::write(dir.join("metrics.jsonl"), lines).expect("metrics");
    if let Some(extra) = summary {
        let mut s = json!({"steps": 20, "final_train_loss": 0.5, "final_val_loss": 0.6 + seed as f64 * 0.1,
            "best_val_loss": 0.55, "tokens_per_s": 1000.0, "wall_s": 1.0, "ms_per_step": 50.0,
            "task": task, "metric": metric.name(), "seed": seed});
        if let (Some(m), Value::Object(e)) = (s.as_object_mut(), extra) {
            m.extend(e);
        }
        fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&s).expect("json")).expect("summary");
    }
    dir
}
