//! Compute accounting (`summary.json` `compute`): nanoGPT's `estimate_mfu` FLOPs per token on a
//! hand-worked example, and a run's summary recording N, D and FLOPs.

use crate::common;

use attnlab_model::{GptConfig, Model, ModelConfig};
use attnlab_train::compute::{flops_per_token, non_embedding_params, of_gpt};
use attnlab_train::{TrainOptions, train};
use candle_core::Device;

#[test]
fn flops_per_token_is_nanogpts_estimate_mfu_on_the_baby_shakespeare_model() -> anyhow::Result<()> {
    // nanoGPT's baby Shakespeare model: 65 characters, block 64, 4 layers, 4 heads, width 128,
    // no biases, tied embeddings, learned positions. By hand, per block: ln_1 128 + c_attn
    // 3 * 128^2 + c_proj 128^2 + ln_2 128 + fc 128 * 512 + proj 512 * 128 = 196,864; four blocks
    // and ln_f: 787,584 non-embedding parameters. nanoGPT's get_num_params() (which subtracts
    // wpe only) adds wte, 65 * 128 = 8,320: 795,904 ("number of parameters: 0.80M").
    // estimate_mfu: 6 N + 12 L H Q T = 6 * 795,904 + 12 * 4 * 4 * 32 * 64 = 4,775,424 + 393,216.
    let cfg = GptConfig::baby_char(65);
    let (_, params) = Model::init(&ModelConfig::Gpt(cfg.clone()), 1, &Device::Cpu)?;
    let n = non_embedding_params(&params);
    assert_eq!(n, 787_584);
    assert_eq!(params.n_params() as u64, n + 8_320 + 64 * 128, "plus wte and wpe");
    assert_eq!(flops_per_token(&cfg, n), 5_168_640.0);
    // nanoGPT's flops_per_iter for batch 12 (its estimate_mfu multiplies by T tokens per row).
    let c = of_gpt(&cfg, &params, 12 * 64);
    assert_eq!(c.flops, 5_168_640.0 * 768.0);
    assert!(c.causal_half_counted);
    // An untied head is an embedding too: N is unchanged, the head's product still counted.
    let untied = GptConfig { tied_embeddings: false, ..cfg.clone() };
    let (_, p2) = Model::init(&ModelConfig::Gpt(untied.clone()), 1, &Device::Cpu)?;
    assert_eq!(non_embedding_params(&p2), n);
    assert_eq!(flops_per_token(&untied, n), 5_168_640.0);
    Ok(())
}

#[test]
fn a_gpt_runs_summary_records_its_compute() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = common::write_file(tmp.path(), "c.txt", common::generated_text(3000).as_bytes());
    let run = common::run_from_toml(&common::text_toml(&corpus, "dot", 3), &[])?;
    let summary = train(&run, &tmp.path().join("r"), &TrainOptions::new(&Device::Cpu))?;
    let c = summary.compute.expect("a GPT run records its compute");
    assert_eq!(c.tokens, 3 * 4 * 16, "steps x batch x block");
    // 1 layer of width 16, MLP 64, no biases: 16 + 4 * 256 + 16 + 2 * 16 * 64 + ln_f 16.
    assert_eq!(c.non_embedding_params, 16 + 1024 + 16 + 2048 + 16);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("r/summary.json"))?)?;
    assert_eq!(json["compute"]["flops"].as_f64(), Some(c.flops));
    Ok(())
}
