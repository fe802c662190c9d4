//! Property tests (issue 13): random and truncated config text, checkpoint bytes and tokenizer
//! files give errors, never a panic (proptest reports a panic as a failure) and never a hang.

use crate::common;

use std::sync::OnceLock;

use attnlab_model::Checkpoint;
use attnlab_train::RunConfig;
use attnlab_train::config::{apply_overrides, toml_to_value};
use attnlab_train::tasks::tokenizer::TextTokenizer;
use attnlab_train::{TrainOptions, train};
use candle_core::Device;
use proptest::prelude::*;

/// A real checkpoint (config.json, model.safetensors, tokenizer.json) to truncate and corrupt.
fn checkpoint_files() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static FILES: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    FILES.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let corpus = common::write_file(tmp.path(), "c.txt", common::generated_text(2000).as_bytes());
        let run = common::run_from_toml(&common::text_toml(&corpus, "dot", 1), &[]).expect("config");
        let dir = tmp.path().join("run");
        train(&run, &dir, &TrainOptions::new(&Device::Cpu)).expect("train");
        let read = |f: &str| std::fs::read(dir.join("last").join(f)).expect("read");
        (read("config.json"), read("model.safetensors"), read("tokenizer.json"))
    })
}

/// Bytes of `base` cut at `cut` (a fraction) with `noise` written over it from `at`.
fn damaged(base: &[u8], cut: f64, at: f64, noise: &[u8]) -> Vec<u8> {
    let mut out = base[..(base.len() as f64 * cut) as usize].to_vec();
    let start = (out.len() as f64 * at) as usize;
    for (i, b) in noise.iter().enumerate() {
        if let Some(slot) = out.get_mut(start + i) {
            *slot = *b;
        }
    }
    out
}

fn load_checkpoint(config: &[u8], model: &[u8]) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.json"), config).expect("write");
    std::fs::write(tmp.path().join("model.safetensors"), model).expect("write");
    match Checkpoint::load(tmp.path(), &Device::Cpu) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

const TOML: &str = "seed = 1\n[model]\nkind = \"gpt\"\nmetric = \"dot\"\nn_layer = 1\nn_head = 2\nn_embd = 16\n[task]\nkind = \"recall\"\nvocab_size = 32\nseq_len = 16\nn_pairs = 4\n[train]\nsteps = 3\nbatch_size = 2\nlr = 1e-3\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn config_text_never_panics(cut in 0.0f64..=1.0, at in 0.0f64..1.0, noise in proptest::collection::vec(any::<u8>(), 0..12), junk in ".{0,40}") {
        let text = String::from_utf8_lossy(&damaged(TOML.as_bytes(), cut, at, &noise)).into_owned();
        if let Ok(v) = toml_to_value(&format!("{text}{junk}")) {
            let _ = RunConfig::from_value(v);
        }
        let mut v = toml_to_value(TOML).expect("valid");
        let _ = apply_overrides(&mut v, &[junk.clone(), format!("train.{junk}={junk}")]).map(|()| RunConfig::from_value(v));
    }

    #[test]
    fn checkpoint_bytes_never_panic(cut in 0.0f64..=1.0, at in 0.0f64..1.0, noise in proptest::collection::vec(any::<u8>(), 0..16), which in 0usize..3) {
        let (config, model, _) = checkpoint_files();
        let (c, m) = match which {
            0 => (damaged(config, cut, at, &noise), model.clone()),
            1 => (config.clone(), damaged(model, cut, at, &noise)),
            _ => (damaged(config, cut, at, &noise), damaged(model, cut, at, &noise)),
        };
        let msg = load_checkpoint(&c, &m);
        prop_assert!(!msg.contains("panicked"), "{}", msg);
    }

    #[test]
    fn tokenizer_files_never_panic(cut in 0.0f64..=1.0, at in 0.0f64..1.0, noise in proptest::collection::vec(any::<u8>(), 0..16)) {
        let (_, _, tok) = checkpoint_files();
        let text = String::from_utf8_lossy(&damaged(tok, cut, at, &noise)).into_owned();
        if let Ok(t) = TextTokenizer::from_json(&text) {
            let ids = t.encode("the key").unwrap_or_default();
            let _ = t.decode(&ids);
            let _ = t.decodable_ids(t.vocab_size());
        }
    }
}

#[test]
fn the_intact_files_load() {
    let (config, model, tok) = checkpoint_files();
    assert_eq!(load_checkpoint(config, model), "");
    TextTokenizer::from_json(&String::from_utf8_lossy(tok)).expect("intact tokenizer loads");
}
