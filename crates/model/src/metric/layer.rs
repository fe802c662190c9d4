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
}

impl MetricLayer {
    /// Builds the layer for `n_head` heads of width `head_dim`; its variables (`power`,
    /// `temperature`) are created under `pb`.
    pub fn new(spec: &MetricSpec, n_head: usize, head_dim: usize, pb: &ParamBuilder) -> Result<Self> {
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
            (HeadParam::None | HeadParam::Power, _) => None,
        };
        Ok(Self {
            kind: spec.metric,
            scale: 1.0 / (head_dim as f64).sqrt(),
            eps: spec.eps,
            delta: spec.delta,
            power,
            temperature,
        })
    }

    /// Replaces the `1/sqrt(d)` scale of `dot`, `neg_sq_euclid` and `neg_euclid`.
    pub fn with_scale(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }

    /// The metric.
    pub fn kind(&self) -> MetricKind {
        self.kind
    }

    /// The scale of `dot`, `neg_sq_euclid` and `neg_euclid`.
    pub fn scale(&self) -> f64 {
        self.scale
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
        let c = Consts { scale: self.scale, eps: self.eps };
        let tau = match &self.temperature {
            Some(t) => Some(t.to_dtype(q.dtype())?.reshape((1, q.dim(1)?, 1, 1))?),
            None => None,
        };
        with_metric!(self.kind, M => M::score(c, &tau, z))
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
    /// heads side by side in each third) through the packed kernel, whatever the switches say;
    /// `None` when the kernel declines (not CPU `f32`, or a mask other than 0 / `-inf`).
    pub fn self_attention_packed(
        &self,
        qkv: &Tensor,
        n_head: usize,
        mask: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        route::packed_self_attention(self, qkv, n_head, mask)
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

    /// The per-head parameter `(h,)` the kernels take: the cosine temperature or the learned power.
    pub fn kernel_head_param(&self) -> Option<&Tensor> {
        match (self.kind.head_param(), &self.power) {
            (HeadParam::Temperature, _) => self.temperature.as_ref(),
            (HeadParam::Power, Power::Learned(p)) => Some(p),
            (HeadParam::Power, Power::Fixed(_)) | (HeadParam::None, _) => None,
        }
    }
}
