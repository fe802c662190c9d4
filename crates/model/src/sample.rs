//! Text generation: repeated next-token sampling with temperature and top-k.

use candle_core::{Result, Tensor, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gpt::Gpt;

/// How the next token is drawn from the logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Logits are divided by this; 0 means greedy (argmax).
    pub temperature: f64,
    /// Keep only the k most likely tokens (None keeps all).
    pub top_k: Option<usize>,
    /// Seed of the sampling generator.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { temperature: 0.8, top_k: Some(40), seed: 1337 }
    }
}

/// Appends `n_new` sampled tokens to `prompt` (ids), cropping the context to the last
/// `block_size` tokens, and returns the new tokens only. Non-finite logits are an error.
pub fn generate(gpt: &Gpt, prompt: &[u32], n_new: usize, sampling: &Sampling) -> Result<Vec<u32>> {
    generate_masked(gpt, prompt, n_new, sampling, &[])
}

/// Like [`generate`], drawing only ids `i` with `allowed[i]` (ids past `allowed.len()` are
/// allowed; an empty mask allows every id): ids a tokenizer cannot decode never come out.
pub fn generate_masked(
    gpt: &Gpt,
    prompt: &[u32],
    n_new: usize,
    sampling: &Sampling,
    allowed: &[bool],
) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(n_new);
    generate_streaming(gpt, prompt, n_new, sampling, allowed, |id| {
        out.push(id);
        Ok(())
    })?;
    Ok(out)
}

/// Like [`generate_masked`], handing each new token to `on_token` as soon as it is drawn (so a
/// caller can print as it goes); an error from `on_token` stops the generation and is returned.
/// The tokens are the same as [`generate_masked`]'s.
pub fn generate_streaming(
    gpt: &Gpt,
    prompt: &[u32],
    n_new: usize,
    sampling: &Sampling,
    allowed: &[bool],
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<()> {
    if !allowed.is_empty() && !allowed.iter().any(|&a| a) {
        bail!("no token id is allowed: the tokenizer decodes none of the model's ids")
    }
    if prompt.is_empty() {
        bail!("generation needs a prompt of at least one token")
    }
    if !(sampling.temperature.is_finite() && sampling.temperature >= 0.0) {
        bail!("temperature must be >= 0, got {}", sampling.temperature)
    }
    if sampling.top_k == Some(0) {
        bail!("top_k must be at least 1")
    }
    let device = gpt.device().clone();
    let block = gpt.config().block_size;
    let mut rng = ChaCha8Rng::seed_from_u64(sampling.seed);
    let mut ids = prompt.to_vec();
    for _ in 0..n_new {
        let ctx = &ids[ids.len().saturating_sub(block)..];
        let idx = Tensor::new(ctx, &device)?.unsqueeze(0)?;
        let mut logits: Vec<f32> = gpt.last_logits(&idx)?.squeeze(0)?.to_vec1()?;
        if let Some(bad) = logits.iter().find(|l| !l.is_finite()) {
            bail!(
                "the model's logits hold {bad} at generated token {}: its weights or inputs are not finite",
                ids.len() - prompt.len() + 1
            )
        }
        for (l, _) in logits.iter_mut().zip(allowed).filter(|(_, a)| !**a) {
            *l = f32::NEG_INFINITY;
        }
        let id = sample_logits(&logits, sampling, &mut rng);
        ids.push(id);
        on_token(id)?;
    }
    Ok(())
}

/// Draws one index from `logits` under `sampling` (greedy when the temperature is 0).
pub fn sample_logits(logits: &[f32], sampling: &Sampling, rng: &mut impl Rng) -> u32 {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if sampling.temperature == 0.0 {
        return order[0] as u32;
    }
    // Masked ids (-inf logits) are never kept, whatever top-k is.
    let finite = order.iter().take_while(|&&i| logits[i] > f32::NEG_INFINITY).count().max(1);
    order.truncate(sampling.top_k.unwrap_or(logits.len()).min(finite));
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> =
        order.iter().map(|&i| ((logits[i] as f64 - max) / sampling.temperature).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (&i, w) in order.iter().zip(&weights) {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    order[order.len() - 1] as u32
}
