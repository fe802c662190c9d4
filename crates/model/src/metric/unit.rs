//! Rows scaled to unit norm, `x^ = x / sqrt(|x|^2 + eps)` (the inputs of `cosine`), as a tensor
//! op for the composed path and in place on `f32` rows for the fused kernels, with its backward
//! `dx = (dx^ - x^ (x^ . dx^)) / sqrt(|x|^2 + eps)`.

use candle_core::{D, Result, Tensor};

/// eps under the square root: keeps zero rows finite.
pub const UNIT_EPS: f32 = 1e-12;

/// Rows scaled to unit norm, same shape as `x` (differentiable).
pub fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let n = (x.sqr()?.sum_keepdim(D::Minus1)? + UNIT_EPS as f64)?.sqrt()?;
    x.broadcast_div(&n)
}

/// Normalises the rows of `x` `(n, d)` in place; returns `1 / sqrt(|x_i|^2 + eps)` per row.
pub fn unit_rows_in_place(x: &mut [f32], d: usize) -> Vec<f32> {
    x.chunks_mut(d)
        .map(|row| {
            let inv = 1.0 / (row.iter().map(|v| v * v).sum::<f32>() + UNIT_EPS).sqrt();
            row.iter_mut().for_each(|v| *v *= inv);
            inv
        })
        .collect()
}

/// `g <- (g - u (u . g)) * inv` per row: the gradient through [`unit_rows_in_place`] given the
/// unit rows `u` and the inverse norms `inv` it returned.
pub fn unit_rows_bwd(u: &[f32], inv: &[f32], g: &mut [f32], d: usize) {
    for ((gr, ur), &s) in g.chunks_mut(d).zip(u.chunks(d)).zip(inv) {
        let dot: f32 = gr.iter().zip(ur).map(|(a, b)| a * b).sum();
        gr.iter_mut().zip(ur).for_each(|(a, &b)| *a = (*a - b * dot) * s);
    }
}
