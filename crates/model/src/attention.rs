//! Multi-head attention whose scores come from the configured [`MetricLayer`].

use candle_core::{Module, Result, Tensor};

use crate::dropout::{Dropout, Site};
use crate::fused;
use crate::layers::{INIT_STD, Linear, linear};
use crate::metric::{MetricLayer, MetricSpec};
use crate::params::ParamBuilder;
use crate::qk::{QkNorm, QkTransform, Rope};
use crate::route::{self, Job, Route};

/// Per-head queries and keys of one attention layer as the metric sees them (after qk-norm and
/// RoPE), `(b, h, t, d)` each, kept for analysis.
#[derive(Debug, Clone)]
pub struct AttnProbe {
    /// Queries `(b, h, t, d)`.
    pub q: Tensor,
    /// Keys `(b, h, t, d)`.
    pub k: Tensor,
}

/// Multi-head attention `(b, t, c) -> (b, t, c)`:
/// `o_proj(concat_h(softmax(s(q_h, k_h) + mask) v_h))` with `q = qk(q_proj(x))`, `k = qk(k_proj(x))`
/// (`qk`: qk-norm then RoPE, [`QkTransform`]) and `v = v_proj(x)`.
#[derive(Debug, Clone)]
pub struct MetricAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    qk: QkTransform,
    metric: MetricLayer,
    n_head: usize,
}

/// How an attention layer treats queries and keys before its metric.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QkOptions {
    /// Per-head qk-norm.
    pub norm: QkNorm,
    /// RoPE, if on.
    pub rope: Option<Rope>,
    /// Keys use the query map (`k_proj` is `q_proj`, no variable of its own).
    pub tied: bool,
}

impl MetricAttention {
    /// Creates `q_proj`, `k_proj` (not when `qk.tied`: keys then use `q_proj`), `v_proj`,
    /// `o_proj`, `metric.*` (and for `rms_gain` `q_norm`, `k_norm`) under `pb`; `o_std` is the
    /// std of the output projection.
    pub fn new(
        c: usize,
        n_head: usize,
        bias: bool,
        (spec, qk): (&MetricSpec, QkOptions),
        o_std: f64,
        pb: &ParamBuilder,
    ) -> Result<Self> {
        let q_proj = linear(c, c, bias, INIT_STD, &pb.pp("q_proj"))?;
        let k_proj = if qk.tied { q_proj.clone() } else { linear(c, c, bias, INIT_STD, &pb.pp("k_proj"))? };
        Ok(Self {
            qk: QkTransform::new(qk.norm, qk.rope, c / n_head, pb)?,
            q_proj,
            k_proj,
            v_proj: linear(c, c, bias, INIT_STD, &pb.pp("v_proj"))?,
            o_proj: linear(c, c, bias, o_std, &pb.pp("o_proj"))?,
            metric: MetricLayer::new(spec, n_head, c / n_head, &pb.pp("metric"))?,
            n_head,
        })
    }

    /// The metric layer.
    pub fn metric(&self) -> &MetricLayer {
        &self.metric
    }

    /// The qk-norm and RoPE in front of the metric.
    pub fn qk(&self) -> &QkTransform {
        &self.qk
    }

    /// Applies attention to `x` `(b, t, c)` under an additive `(t, t)` mask, along the route
    /// [`Route::choose`] picks (packed self-attention on the CPU).
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.forward_t(x, mask, None)
    }

    /// [`MetricAttention::forward`] with dropout on the attention weights of block `layer`
    /// (training). The packed and tiles kernels never hold the weights, so with dropout the
    /// heads are split by candle ops and the weights come from [`MetricLayer::weights`] (the
    /// fused weights kernel on the CPU, composed ops elsewhere), then the mask, then `w v`.
    /// `drop = None` is exactly [`MetricAttention::forward`].
    pub fn forward_t(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        drop: Option<(&Dropout, usize)>,
    ) -> Result<Tensor> {
        if let Some((drop, layer)) = drop {
            let y = self.forward_split_with(x, |q, k, v| {
                let w = self.metric.weights(q, k, mask)?; // (b, h, t, t)
                drop.apply(&w, Site::AttnWeights(layer))?.matmul(v)
            })?;
            return self.o_proj.forward(&y.0);
        }
        let packed = match Route::choose(Job::SelfAttention, x) {
            Route::PackedSelfAttention => self.forward_packed(x, mask)?,
            Route::AttentionTiles | Route::CudaFlash | Route::WeightsKernel | Route::Composed => None,
        };
        let y = match packed {
            Some(y) => y,
            None => self.forward_split(x, mask)?.0,
        };
        self.o_proj.forward(&y)
    }

    /// [`MetricAttention::forward`] that also returns the layer's queries and keys (detached),
    /// for analysis; heads are split by candle ops (not the packed route).
    pub fn forward_with_probe(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<(Tensor, AttnProbe)> {
        let (y, probe) = self.forward_split(x, mask)?;
        Ok((self.o_proj.forward(&y)?, probe))
    }

    /// Heads split by candle ops, then [`MetricLayer::attend`]: `(b, t, c)` before `o_proj`,
    /// and the per-head queries and keys.
    fn forward_split(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<(Tensor, AttnProbe)> {
        self.forward_split_with(x, |q, k, v| self.metric.attend(q, k, v, mask))
    }

    /// Heads split by candle ops, `attend(q, k, v)` `(b, h, t, d)` per head, heads merged.
    fn forward_split_with(
        &self,
        x: &Tensor,
        attend: impl FnOnce(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<(Tensor, AttnProbe)> {
        let (b, t, c) = x.dims3()?;
        let heads = |y: Tensor| -> Result<Tensor> {
            y.reshape((b, t, self.n_head, c / self.n_head))?.transpose(1, 2)?.contiguous() // (b, h, t, d)
        };
        let q = heads(self.q_proj.forward(x)?)?;
        let k = heads(self.k_proj.forward(x)?)?;
        let (q, k) = self.qk.heads(&q, &k, 0)?;
        let v = heads(self.v_proj.forward(x)?)?;
        let y = attend(&q, &k, &v)?; // (b, h, t, d)
        let y = y.transpose(1, 2)?.reshape((b, t, c))?; // (b, t, c)
        Ok((y, AttnProbe { q: q.detach(), k: k.detach() }))
    }

    /// The packed route: one linear map to packed `[q | k | v]` `(b, t, 3c)` and the packed
    /// self-attention kernel (which applies qk-norm and RoPE to the rows it gathers), `(b, t, c)` before `o_proj`; `None`
    /// where the kernels decline.
    fn forward_packed(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Option<Tensor>> {
        let projs = [&self.q_proj, &self.k_proj, &self.v_proj];
        let w = Tensor::cat(&projs.map(|p| p.weight()), 0)?; // (3c, c)
        let b = match projs.map(|p| p.bias()) {
            [Some(q), Some(k), Some(v)] => Some(Tensor::cat(&[q, k, v], 0)?),
            _ => None,
        };
        let Some(qkv) = fused::linear(x, &w, b.as_ref())? else { return Ok(None) };
        let (t, c) = (x.dim(1)?, x.dim(2)?);
        let qk = self.qk.kernel(t, c / self.n_head)?;
        let qk = qk.as_ref().map(|(f, gain)| fused::PackedQk { f, gain: gain.as_ref() });
        route::packed_self_attention(&self.metric, &qkv, self.n_head, mask, qk)
    }
}
