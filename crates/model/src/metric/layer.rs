//! [`MetricLayer`]: a metric with its parameters for `h` heads of width `d`; scores, weights
//! and attention output. Which implementation computes them is [`crate::route`]'s choice.

use candle_core::{D, Result, Tensor};

use super::distance::{Power, sq_dists};
use super::table::{Consts, HeadParam, Input, Metric, with_metric};
use super::unit::unit_rows;
use super::{MetricKind, MetricSpec};
use crate::fused::MetricFn;
use crate::params::{Init, ParamBuilder};
use crate::route;

/// The attention-metric layer: turns per-head queries `(b, h, tq, d)` and keys `(b, h, tk, d)`
/// into scores `(b, h, tq, tk)`, weights, and attention output.
#[derive(Debug, Clone)]
pub struct MetricLayer {
    kind: MetricKind,
    scale: f64,
    eps: f64,
    delta: f64,
    power: Power,
    /// `(h,)` cosine temperature (a variable when learned).
    temperature: Option<Tensor>,
    /// `(h,)` log of the learned score scale (`learn_scale`), a variable; `None` uses `scale`.
    log_scale: Option<Tensor>,
}

impl MetricLayer {
    /// Builds the layer for `n_head` heads of width `head_dim` (default score scale
    /// `1/sqrt(head_dim)`); its variables (`power`, `temperature`, `log_scale`) are created under `pb`.
    pub fn new(spec: &MetricSpec, n_head: usize, head_dim: usize, pb: &ParamBuilder) -> Result<Self> {
        Self::with_default_scale(spec, n_head, 1.0 / (head_dim as f64).sqrt(), pb)
    }

    /// [`MetricLayer::new`] with the score scale `default_scale` where the spec gives no
    /// `attn_scale` (the prototype net's scales follow its paper).
    pub fn with_default_scale(
        spec: &MetricSpec,
        n_head: usize,
        default_scale: f64,
        pb: &ParamBuilder,
    ) -> Result<Self> {
        spec.validate()?;
        let power = if spec.learn_power {
            Power::Learned(pb.var("power", n_head, Init::Const(spec.power()))?)
        } else {
            Power::Fixed(spec.power())
        };
        let temperature = match (spec.metric.head_param(), spec.learn_temperature) {
            (HeadParam::Temperature, true) => {
                Some(pb.var("temperature", n_head, Init::Const(spec.temperature))?)
            }
            (HeadParam::Temperature, false) => {
                Some(Tensor::full(spec.temperature as f32, n_head, pb.device())?)
            }
            (HeadParam::None | HeadParam::Power | HeadParam::Scale, _) => None,
        };
        let scale = spec.attn_scale.unwrap_or(default_scale);
        let log_scale = match (spec.metric.head_param(), spec.learn_scale) {
            (HeadParam::Scale, true) => Some(pb.var("log_scale", n_head, Init::Const(scale.ln()))?),
            (HeadParam::Scale, false) | (HeadParam::None | HeadParam::Temperature | HeadParam::Power, _) => {
                None
            }
        };
        Ok(Self { kind: spec.metric, scale, eps: spec.eps, delta: spec.delta, power, temperature, log_scale })
    }

    /// Replaces the fixed score scale of `dot`, `neg_sq_euclid` and `neg_euclid` (a learned
    /// scale keeps its variable).
    pub fn with_scale(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }

    /// The metric.
    pub fn kind(&self) -> MetricKind {
        self.kind
    }

    /// The fixed scale of `dot`, `neg_sq_euclid` and `neg_euclid` (the initial one when learned).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The learned per-head score scale `exp(log_scale)` `(h,)`, if `learn_scale` applies.
    pub fn learned_scale(&self) -> Result<Option<Tensor>> {
        self.log_scale.as_ref().map(|l| l.exp()).transpose()
    }

    /// Scores `(b, h, tq, tk)` of queries `(b, h, tq, d)` against keys `(b, h, tk, d)`, composed
    /// from candle ops with the formulas of [`super::table`].
    pub fn scores(&self, q: &Tensor, k: &Tensor) -> Result<Tensor> {
        let z = match self.kind.input() {
            Input::Dot => q.matmul(&k.t()?),
            Input::UnitDot => unit_rows(q)?.matmul(&unit_rows(k)?.t()?),
            Input::SqDist => sq_dists(q, k),
            Input::DistPow => self.power.apply((sq_dists(q, k)? + self.delta)?),
        };
        let per_head = |t: &Tensor| t.to_dtype(q.dtype())?.reshape((1, q.dim(1)?, 1, 1));
        let tau = self.temperature.as_ref().map(per_head).transpose()?;
        match self.learned_scale()? {
            // The score is linear in its scale (`HeadParam::Scale`): score at scale 1, times scale_h.
            Some(s) => {
                let c = Consts { scale: 1.0, eps: self.eps };
                with_metric!(self.kind, M => M::score(c, &tau, z))?.broadcast_mul(&per_head(&s)?)
            }
            None => {
                let c = Consts { scale: self.scale, eps: self.eps };
                with_metric!(self.kind, M => M::score(c, &tau, z))
            }
        }
    }

    /// Attention weights `softmax(scores + mask)` over the last axis; `mask` is an additive
    /// `(tq, tk)` tensor of zeros and `-inf` (see [`super::causal_mask`], [`super::context_mask`]).
    /// On the CPU the fused weights kernel computes them (same numbers up to rounding).
    pub fn weights(&self, q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        route::weights(self, q, k, mask)
    }

    /// [`MetricLayer::weights`] composed from candle ops (scores, mask, softmax): the route on
    /// non-CPU devices and the reference the fused kernels are tested against.
    pub fn weights_reference(&self, q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let s = self.scores(q, k)?;
        let s = match mask {
            Some(m) => s.broadcast_add(m)?,
            None => s,
        };
        candle_nn::ops::softmax(&s, D::Minus1)
    }

    /// Attention output `weights(q, k, mask) v`, `(b, h, tq, dv)` for values `(b, h, tk, dv)`.
    /// On the CPU the whole-attention tiles kernel computes it without keeping the
    /// `(b, h, tq, tk)` weights.
    pub fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        route::attend(self, q, k, v, mask)
    }

    /// Self-attention `(b, t, c)` from packed projections `qkv` `(b, t, 3c)` (`[q | k | v]`,
    /// heads side by side in each third, no qk-norm or RoPE) through the packed kernel, whatever the switches say;
    /// `None` when the kernel declines (not CPU `f32`, or a mask other than 0 / `-inf`).
    pub fn self_attention_packed(
        &self,
        qkv: &Tensor,
        n_head: usize,
        mask: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        route::packed_self_attention(self, qkv, n_head, mask, None)
    }

    /// The metric's fixed parameters for the fused kernels.
    pub fn kernel_fn(&self) -> MetricFn {
        MetricFn {
            kind: self.kind,
            scale: self.scale as f32,
            eps: self.eps as f32,
            delta: self.delta as f32,
            power: match &self.power {
                Power::Fixed(p) => *p as f32,
                Power::Learned(_) => 2.0,
            },
        }
    }

    /// The per-head parameter `(h,)` the kernels take: the cosine temperature, the learned
    /// power, or the learned score scale `exp(log_scale)` (differentiable in `log_scale`).
    pub fn kernel_head_param(&self) -> Result<Option<Tensor>> {
        Ok(match (self.kind.head_param(), &self.power) {
            (HeadParam::Temperature, _) => self.temperature.clone(),
            (HeadParam::Power, Power::Learned(p)) => Some(p.clone()),
            (HeadParam::Scale, _) => self.learned_scale()?,
            (HeadParam::Power, Power::Fixed(_)) | (HeadParam::None, _) => None,
        })
    }
}
