//! Additive attention masks `(tq, tk)`: 0 where a query may see a key, `-inf` elsewhere.

use candle_core::{Device, Result, Tensor};

/// Additive causal mask `(t, t)`: 0 where key <= query, `-inf` above the diagonal.
pub fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> =
        (0..t).flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(data, (t, t), device)
}

/// Additive set mask `(n + m, n + m)` for `n` context points followed by `m` queries: every
/// point sees the context points and nothing else.
pub fn context_mask(n_context: usize, n_query: usize, device: &Device) -> Result<Tensor> {
    let t = n_context + n_query;
    let data: Vec<f32> = (0..t)
        .flat_map(|_| (0..t).map(move |j| if j < n_context { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(data, (t, t), device)
}
