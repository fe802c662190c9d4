//! The attention route: which implementation computes attention for one call. Decided in
//! [`Route::choose`] and nowhere else; the kernels themselves only decline calls they cannot
//! take (a mask with values other than 0 and `-inf`), which then run composed.
//!
//! | route | input | needs |
//! |---|---|---|
//! | [`Route::PackedSelfAttention`] | packed `[q \| k \| v]` projections `(b, t, 3c)` | CPU `f32`, kernels `tiles` + `linear` |
//! | [`Route::AttentionTiles`] | per-head `q`, `k`, `v` `(b, h, t, d)` | CPU `f32`, kernel `tiles` |
//! | [`Route::CudaFlash`] | per-head `q`, `k`, `v` `(b, h, t, d)` | CUDA `f32` (feature `cuda`), kernel `tiles` |
//! | [`Route::WeightsKernel`] | per-head `q`, `k`; weights `(b, h, tq, tk)`, then `w v` | CPU `f32`, kernel `weights` |
//! | [`Route::Composed`] | per-head `q`, `k`; candle ops | anything (the reference) |
//!
//! All five compute the same numbers up to rounding (tests compare each fused route with the
//! composed one, forward and backward).

use candle_core::{D, Result, Tensor};

use crate::fused::{self, Kernel, MetricFn};
use crate::gpu;
use crate::metric::MetricLayer;
use crate::metric::table::Input;
use crate::metric::unit::unit_rows;

/// What a caller wants computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Self-attention of a layer's input `x` `(b, t, c)`, projections included.
    SelfAttention,
    /// Attention output from per-head `q`, `k`, `v`.
    Attention,
    /// Attention weights from per-head `q`, `k`.
    Weights,
}

/// Which implementation computes attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One linear map to packed `[q | k | v]`, then the packed self-attention kernel (qk-norm and
    /// RoPE applied to the rows it gathers).
    PackedSelfAttention,
    /// Heads split by candle ops, then the whole-attention tiles kernel.
    AttentionTiles,
    /// Heads split by candle ops, then the CUDA flash kernels ([`crate::gpu::attention`]): no
    /// `(b, h, t, t)` tensor stored, weights recomputed in the backward.
    CudaFlash,
    /// The weights kernel, then `w v` by candle.
    WeightsKernel,
    /// Composed candle ops ([`MetricLayer::weights_reference`]).
    Composed,
}

impl Route {
    /// The route for `job` on input `x`: the fastest whose kernels are switched on and apply to
    /// `x`'s device and dtype.
    pub fn choose(job: Job, x: &Tensor) -> Route {
        let on = |k: Kernel| fused::cpu_f32(x) && fused::enabled(k);
        let cuda_on = gpu::cuda_f32(x) && fused::enabled(Kernel::Tiles);
        match job {
            Job::SelfAttention | Job::Attention if cuda_on => Route::CudaFlash,
            Job::SelfAttention if on(Kernel::Tiles) && on(Kernel::Linear) => Route::PackedSelfAttention,
            Job::SelfAttention | Job::Attention if on(Kernel::Tiles) => Route::AttentionTiles,
            Job::SelfAttention | Job::Attention | Job::Weights if on(Kernel::Weights) => Route::WeightsKernel,
            Job::SelfAttention | Job::Attention | Job::Weights => Route::Composed,
        }
    }
}

/// [`MetricLayer::weights`] along the chosen route.
pub(crate) fn weights(layer: &MetricLayer, q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let fused = match Route::choose(Job::Weights, q) {
        Route::WeightsKernel => weights_kernel(layer, q, k, mask)?,
        Route::PackedSelfAttention | Route::AttentionTiles | Route::CudaFlash | Route::Composed => None,
    };
    match fused {
        Some(w) => Ok(w),
        None => layer.weights_reference(q, k, mask),
    }
}

/// [`MetricLayer::attend`] along the chosen route.
pub(crate) fn attend(
    layer: &MetricLayer,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let fused = match Route::choose(Job::Attention, q) {
        Route::AttentionTiles => attention_tiles(layer, q, k, v, mask, fused::attention)?,
        Route::CudaFlash => attention_tiles(layer, q, k, v, mask, gpu::attention)?,
        Route::WeightsKernel => weights_kernel(layer, q, k, mask)?.map(|w| w.matmul(v)).transpose()?,
        Route::PackedSelfAttention | Route::Composed => None,
    };
    match fused {
        Some(y) => Ok(y),
        None => layer.weights_reference(q, k, mask)?.matmul(v),
    }
}

/// Self-attention `(b, t, c)` from packed projections `qkv` `(b, t, 3c)` through the packed
/// kernel, which applies `qk` (qk-norm and RoPE) to the rows it gathers; `None` when it declines
/// the mask.
pub(crate) fn packed_self_attention(
    layer: &MetricLayer,
    qkv: &Tensor,
    n_head: usize,
    mask: Option<&Tensor>,
    qk: Option<fused::PackedQk>,
) -> Result<Option<Tensor>> {
    fused::self_attention(layer.kernel_fn(), qkv, n_head, layer.kernel_head_param()?.as_ref(), mask, qk)
}

/// A whole-attention kernel, `kernel` = the CPU tiles ([`fused::attention`]) or the CUDA flash
/// kernels ([`gpu::attention`]), on per-head tensors (rows scaled to unit norm first for `cosine`).
fn attention_tiles(
    layer: &MetricLayer,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    kernel: AttentionKernel,
) -> Result<Option<Tensor>> {
    let (q, k) = match layer.kind().input() {
        Input::UnitDot => (unit_rows(q)?, unit_rows(k)?),
        Input::Dot | Input::SqDist | Input::DistPow => (q.clone(), k.clone()),
    };
    kernel(layer.kernel_fn(), &q, &k, v, layer.kernel_head_param()?.as_ref(), mask)
}

/// The signature shared by [`fused::attention`] and [`gpu::attention`].
type AttentionKernel =
    fn(MetricFn, &Tensor, &Tensor, &Tensor, Option<&Tensor>, Option<&Tensor>) -> Result<Option<Tensor>>;

/// The weights kernel: one matrix product (of unit rows for `cosine`) and, for distances, the
/// squared norms `(b, h, tq + tk)`.
fn weights_kernel(
    layer: &MetricLayer,
    q: &Tensor,
    k: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    let input = layer.kind().input();
    let qk = match input {
        Input::UnitDot => unit_rows(q)?.matmul(&unit_rows(k)?.t()?)?,
        Input::Dot | Input::SqDist | Input::DistPow => q.matmul(&k.t()?)?,
    }; // (b, h, tq, tk)
    let norms = if input.is_distance() {
        let qn = q.sqr()?.sum(D::Minus1)?; // (b, h, tq)
        let kn = k.sqr()?.sum(D::Minus1)?; // (b, h, tk)
        Some(Tensor::cat(&[qn, kn], D::Minus1)?) // (b, h, tq + tk)
    } else {
        None
    };
    fused::attention_weights(
        layer.kernel_fn(),
        &qk,
        norms.as_ref(),
        layer.kernel_head_param()?.as_ref(),
        mask,
    )
}
