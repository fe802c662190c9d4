//! Training compute of a GPT run, as `summary.json` records it (`compute`).
//!
//! - `non_embedding_params` `N`: every parameter but the token embedding `wte`, the learned
//!   positions `wpe` and an untied `lm_head` (Kaplan et al. 2020, "Scaling laws", section 2.1).
//! - `tokens` `D`: tokens trained on, summed over the steps (`batch_size x` sequence length
//!   each; for text `block_size`).
//! - `flops_per_token` = `6 (N + V c) + 12 L c T`: nanoGPT's `estimate_mfu` (`6 N + 12 L H Q T`
//!   with `H Q = c`), from PaLM (Chowdhery et al. 2022), appendix B. `6` per parameter is a
//!   multiply-add forward and two backward; `V c` is the LM head, whose matrix product is paid
//!   every token (nanoGPT's `N` counts it through the tied `wte`; with learned positions and
//!   tied embeddings, `N + V c` is exactly nanoGPT's `get_num_params()`); `12 L c T` is the
//!   attention scores and weighted sum (`2 T c` multiply-adds forward per layer and token, three
//!   times that with the backward), with `T = block_size`.
//! - The causal half is **counted**: like nanoGPT and PaLM, the attention term is the full
//!   `T x T`, although a causal row sees on average `(T + 1) / 2` keys. Every metric is charged
//!   the same (norms and the metric's element-wise work are not counted).
//! - `flops` = `flops_per_token x D`.

use attnlab_model::{GptConfig, ParamStore};
use serde::{Deserialize, Serialize};

/// Training compute of a run (`summary.json` key `compute`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Compute {
    /// Non-embedding parameters `N` (no `wte`, `wpe` or untied `lm_head`).
    pub non_embedding_params: u64,
    /// Tokens trained on, `D`.
    pub tokens: u64,
    /// Training FLOPs per token, `6 (N + V c) + 12 L c T`.
    pub flops_per_token: f64,
    /// Training FLOPs, `flops_per_token x D`.
    pub flops: f64,
    /// Whether the attention term counts the masked (causal) half of the `T x T` scores: always
    /// `true` here (nanoGPT's and PaLM's convention).
    pub causal_half_counted: bool,
}

/// Parameter names that are embeddings, not counted in `N`.
const EMBEDDINGS: [&str; 3] = ["wte.weight", "wpe.weight", "lm_head.weight"];

/// Non-embedding parameters of a GPT's variables: all but `wte`, `wpe` and `lm_head`.
pub fn non_embedding_params(params: &ParamStore) -> u64 {
    params
        .vars()
        .iter()
        .filter(|(name, _)| !EMBEDDINGS.contains(&name.as_str()))
        .map(|(_, v)| v.elem_count() as u64)
        .sum()
}

/// Training FLOPs per token of a GPT with `n` non-embedding parameters:
/// `6 (n + V c) + 12 L c T` (see the module docs).
pub fn flops_per_token(cfg: &GptConfig, n: u64) -> f64 {
    let (v, c, l, t) = (cfg.vocab_size as f64, cfg.n_embd as f64, cfg.n_layer as f64, cfg.block_size as f64);
    6.0 * (n as f64 + v * c) + 12.0 * l * c * t
}

/// The compute of a GPT run with variables `params` that trained on `tokens` tokens.
pub fn of_gpt(cfg: &GptConfig, params: &ParamStore, tokens: u64) -> Compute {
    let n = non_embedding_params(params);
    let per_token = flops_per_token(cfg, n);
    Compute {
        non_embedding_params: n,
        tokens,
        flops_per_token: per_token,
        flops: per_token * tokens as f64,
        causal_half_counted: true,
    }
}
