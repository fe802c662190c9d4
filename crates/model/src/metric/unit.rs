//! Rows scaled to unit norm, `x^ = x / sqrt(|x|^2 + eps)` (the inputs of `cosine`), as a tensor
//! op for the composed path (the fused kernels' in-place rows are `fused::qk::unit_rows`), with
//! its backward `dx = (dx^ - x^ (x^ . dx^)) / sqrt(|x|^2 + eps)`.

use candle_core::{D, Result, Tensor};

/// eps under the square root: keeps zero rows finite.
pub const UNIT_EPS: f32 = 1e-12;

/// Rows scaled to unit norm, same shape as `x` (differentiable).
pub fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let n = (x.sqr()?.sum_keepdim(D::Minus1)? + UNIT_EPS as f64)?.sqrt()?;
    x.broadcast_div(&n)
}
