//! Helpers shared by the train crate's tests: small generated corpora and tiny run configs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use attnlab_train::RunConfig;
use attnlab_train::config::toml_to_value;

/// A deterministic text of about `n` characters, written by the test (no downloaded corpus).
pub fn generated_text(n: usize) -> String {
    let words = ["the", "key", "query", "value", "distance", "weight", "near", "far", "point", "map"];
    let mut out = String::new();
    let mut x: u64 = 12345;
    while out.len() < n {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.push_str(words[(x >> 33) as usize % words.len()]);
        out.push(if (x >> 20).is_multiple_of(7) { '\n' } else { ' ' });
    }
    out
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writing a test file");
    p
}

/// A tiny text run on the corpus at `corpus`.
pub fn text_toml(corpus: &Path, metric: &str, steps: usize) -> String {
    format!(
        r#"
seed = 7
[model]
kind = "gpt"
metric = "{metric}"
block_size = 16
n_layer = 1
n_head = 2
n_embd = 16
[task]
kind = "text"
corpus = "{}"
[train]
steps = {steps}
batch_size = 4
lr = 3e-3
warmup_steps = 2
eval_interval = 4
eval_batches = 2
ckpt_interval = 3
"#,
        corpus.display().to_string().replace('\\', "/")
    )
}

/// A tiny recall run.
pub fn recall_toml(metric: &str, steps: usize) -> String {
    format!(
        r#"
seed = 3
[model]
kind = "gpt"
metric = "{metric}"
n_layer = 1
n_head = 2
n_embd = 16
[task]
kind = "recall"
vocab_size = 32
seq_len = 16
n_pairs = 4
[train]
steps = {steps}
batch_size = 4
lr = 3e-3
eval_interval = 5
eval_batches = 2
ckpt_interval = 5
"#
    )
}

/// Parses a TOML run config with overrides.
pub fn run_from_toml(text: &str, overrides: &[&str]) -> anyhow::Result<RunConfig> {
    let mut v = toml_to_value(text)?;
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    attnlab_train::config::apply_overrides(&mut v, &o)?;
    RunConfig::from_value(v)
}
