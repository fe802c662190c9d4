//! The attention-metric layer: per-head queries and keys in, attention scores out.
//!
//! Shapes: `q` is `(b, h, tq, d)`, `k` is `(b, h, tk, d)`, scores are `(b, h, tq, tk)`.
//!
//! Every distance comes from one matrix product and two norms,
//! `d2 = max(0, |q|^2 + |k|^2 - 2 q.k)`; no `(tq, tk, d)` tensor of differences is ever built.
//! With `x = d2 + delta` (delta keeps gradients finite at q == k) and `dist^p = x^(p/2)`:
//!
//! | metric | score |
//! |---|---|
//! | `dot` | `scale * q.k` (scale `1/sqrt(d)` by default) |
//! | `cosine` | `tau_h * q.k / (|q| |k|)`, tau a per-head temperature |
//! | `neg_sq_euclid` | `-scale * d2` |
//! | `neg_euclid` | `-scale * x^(p/2)` |
//! | `idw` (`neglog`) | `-log(eps + x^(p/2))`, p optionally learned per head |
//! | `inv_dist` | `1 / (eps + x^(p/2))` |
//! | `rbf` | `exp(-x^(p/2) / 2)` |
//!
//! Identities the tests check: `-d2 = 2 q.k - |q|^2 - |k|^2`, and softmax ignores the query term,
//! so `neg_sq_euclid` is dot-product attention of scale `2/sqrt(d)` plus a key bias
//! `-|k|^2/sqrt(d)`; it equals dot-product attention when all keys share one norm. The softmax of
//! `idw` scores is `(eps + dist^p)^-1` normalised: Shepard's (1968) inverse distance weighting.

use candle_core::{D, DType, Result, Tensor, bail};
use serde::{Deserialize, Serialize};

use crate::fused;
use crate::params::{Init, ParamBuilder};

/// Which similarity turns a query and a key into a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// `scale * q.k`.
    #[default]
    Dot,
    /// `tau * q.k / (|q| |k|)` with a per-head temperature tau.
    Cosine,
    /// `-scale * |q - k|^2`.
    NegSqEuclid,
    /// `-scale * |q - k|^p`.
    NegEuclid,
    /// `-log(eps + |q - k|^p)`: softmax gives Shepard's inverse distance weighting.
    #[serde(alias = "neglog")]
    Idw,
    /// `1 / (eps + |q - k|^p)`.
    InvDist,
    /// `exp(-|q - k|^p / 2)`.
    Rbf,
}

impl MetricKind {
    /// Every metric, in the order reports list them.
    pub const ALL: [MetricKind; 7] = [
        MetricKind::Dot,
        MetricKind::Cosine,
        MetricKind::NegSqEuclid,
        MetricKind::NegEuclid,
        MetricKind::Idw,
        MetricKind::InvDist,
        MetricKind::Rbf,
    ];

    /// The config name (`dot`, `neg_sq_euclid`, ...).
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Dot => "dot",
            MetricKind::Cosine => "cosine",
            MetricKind::NegSqEuclid => "neg_sq_euclid",
            MetricKind::NegEuclid => "neg_euclid",
            MetricKind::Idw => "idw",
            MetricKind::InvDist => "inv_dist",
            MetricKind::Rbf => "rbf",
        }
    }

    /// Parses a config name (accepts the alias `neglog`).
    pub fn parse(name: &str) -> Result<Self> {
        let name = if name == "neglog" { "idw" } else { name };
        match MetricKind::ALL.iter().find(|m| m.name() == name) {
            Some(m) => Ok(*m),
            None => bail!(
                "unknown attention metric `{name}` (expected one of: {})",
                MetricKind::ALL.map(|m| m.name()).join(", ")
            ),
        }
    }

    /// Whether the score is a function of the distance `|q - k|` alone.
    pub fn is_distance(self) -> bool {
        !matches!(self, MetricKind::Dot | MetricKind::Cosine)
    }
}

impl std::fmt::Display for MetricKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn default_power() -> f64 {
    2.0
}
fn default_eps() -> f64 {
    1e-3
}
fn default_delta() -> f64 {
    1e-6
}
fn default_temperature() -> f64 {
    10.0
}
fn default_true() -> bool {
    true
}

/// The metric and its parameters, as they appear (flattened) in every model config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    /// Which metric (`dot`, `cosine`, `neg_sq_euclid`, `neg_euclid`, `idw`, `inv_dist`, `rbf`).
    #[serde(default)]
    pub metric: MetricKind,
    /// Power p of the distance for `neg_euclid`, `idw`, `inv_dist`, `rbf` (initial value when learned).
    #[serde(default = "default_power")]
    pub power: f64,
    /// eps in `idw` and `inv_dist`; must be > 0.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// delta added to the squared distance before fractional powers; keeps gradients finite at q == k.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Learn p per head (`idw` only).
    #[serde(default)]
    pub learn_power: bool,
    /// Initial per-head temperature of `cosine`.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Learn the `cosine` temperature.
    #[serde(default = "default_true")]
    pub learn_temperature: bool,
}

impl Default for MetricSpec {
    fn default() -> Self {
        Self::of(MetricKind::Dot)
    }
}

impl MetricSpec {
    /// The metric with default parameters (p = 2, eps = 1e-3, delta = 1e-6, tau = 10).
    pub fn of(metric: MetricKind) -> Self {
        Self {
            metric,
            power: default_power(),
            eps: default_eps(),
            delta: default_delta(),
            learn_power: false,
            temperature: default_temperature(),
            learn_temperature: true,
        }
    }

    /// Rejects parameters that make no sense, naming the field.
    pub fn validate(&self) -> Result<()> {
        if !(self.power.is_finite() && self.power > 0.0) {
            bail!("power must be a finite number > 0, got {}", self.power)
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            bail!("eps must be a finite number > 0, got {}", self.eps)
        }
        if !(self.delta.is_finite() && self.delta >= 0.0) {
            bail!("delta must be a finite number >= 0, got {}", self.delta)
        }
        if !self.temperature.is_finite() {
            bail!("temperature must be finite, got {}", self.temperature)
        }
        if self.learn_power && self.metric != MetricKind::Idw {
            bail!("learn_power is only supported by the `idw` metric, not `{}`", self.metric)
        }
        Ok(())
    }
}

/// Per-head power: fixed from the config, or a learned `(h,)` variable named `metric.power`.
#[derive(Debug, Clone)]
enum Power {
    Fixed(f64),
    Learned(Tensor),
}

/// The attention-metric layer: turns per-head queries and keys into scores.
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
            Power::Learned(pb.var("power", n_head, Init::Const(spec.power))?)
        } else {
            Power::Fixed(spec.power)
        };
        let temperature = match (spec.metric, spec.learn_temperature) {
            (MetricKind::Cosine, true) => {
                Some(pb.var("temperature", n_head, Init::Const(spec.temperature))?)
            }
            (MetricKind::Cosine, false) => Some(Tensor::full(spec.temperature as f32, n_head, pb.device())?),
            _ => None,
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

    /// Scores `(b, h, tq, tk)` of queries `(b, h, tq, d)` against keys `(b, h, tk, d)`.
    pub fn scores(&self, q: &Tensor, k: &Tensor) -> Result<Tensor> {
        let kt = k.t()?;
        match self.kind {
            MetricKind::Dot => (q * self.scale)?.matmul(&kt),
            MetricKind::Cosine => {
                let tau = self.per_head(self.temperature.as_ref(), q)?;
                let s = unit_rows(q)?.matmul(&unit_rows(k)?.t()?)?;
                s.broadcast_mul(&tau)
            }
            MetricKind::NegSqEuclid => sq_dists(q, k)? * (-self.scale),
            MetricKind::NegEuclid => self.dist_pow(q, k)? * (-self.scale),
            MetricKind::Idw => (self.dist_pow(q, k)? + self.eps)?.log()?.neg(),
            MetricKind::InvDist => (self.dist_pow(q, k)? + self.eps)?.recip(),
            MetricKind::Rbf => (self.dist_pow(q, k)? * -0.5)?.exp(),
        }
    }

    /// Attention weights `softmax(scores + mask)` over the last axis; `mask` is an additive
    /// `(tq, tk)` tensor of zeros and `-inf` (see [`causal_mask`], [`context_mask`]).
    ///
    /// On the CPU this runs the fused kernel [`crate::fused::attention_weights`] (same numbers up
    /// to rounding); elsewhere, or with the kernel switched off, [`MetricLayer::weights_reference`].
    pub fn weights(&self, q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        if let Some(w) = self.weights_fused(q, k, mask)? {
            return Ok(w);
        }
        self.weights_reference(q, k, mask)
    }

    /// [`MetricLayer::weights`] composed from candle ops (scores, mask, softmax): the unfused
    /// reference the fused kernel is tested against, and the path on non-CPU devices.
    pub fn weights_reference(&self, q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let s = self.scores(q, k)?;
        let s = match mask {
            Some(m) => s.broadcast_add(m)?,
            None => s,
        };
        candle_nn::ops::softmax(&s, D::Minus1)
    }

    /// Attention output `weights(q, k, mask) v`, `(b, h, tq, dv)` for values `(b, h, tk, dv)`.
    ///
    /// On the CPU this runs [`crate::fused::attention`], which never keeps the `(b, h, tq, tk)`
    /// weights (it recomputes them per head in the backward pass); elsewhere, or with the kernel
    /// switched off, `weights(q, k, mask)?.matmul(v)`.
    pub fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        if fused::enabled(fused::Kernel::Flash) && q.device().is_cpu() && q.dtype() == DType::F32 {
            let (q, k, param) = match (self.kind, &self.power) {
                (MetricKind::Cosine, _) => (unit_rows(q)?, unit_rows(k)?, self.temperature.clone()),
                (MetricKind::Idw, Power::Learned(p)) => (q.clone(), k.clone(), Some(p.clone())),
                _ => (q.clone(), k.clone(), None),
            };
            if let Some(y) = fused::attention(self.fused_fn(), &q, &k, v, param.as_ref(), mask)? {
                return Ok(y);
            }
        }
        self.weights(q, k, mask)?.matmul(v)
    }

    /// Self-attention `(b, t, c)` from packed projections `qkv` `(b, t, 3c)` (`[q | k | v]`,
    /// heads side by side in each third) through [`crate::fused::self_attention`]; `None` when
    /// the fused kernel does not apply (the caller then splits heads and uses [`Self::attend`]).
    pub fn self_attend(&self, qkv: &Tensor, n_head: usize, mask: Option<&Tensor>) -> Result<Option<Tensor>> {
        let param = match (self.kind, &self.power) {
            (MetricKind::Cosine, _) => self.temperature.clone(),
            (MetricKind::Idw, Power::Learned(p)) => Some(p.clone()),
            _ => None,
        };
        fused::self_attention(self.fused_fn(), qkv, n_head, param.as_ref(), mask)
    }

    /// The metric's fixed parameters for the fused kernels.
    fn fused_fn(&self) -> fused::MetricFn {
        fused::MetricFn {
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

    /// The fused path: one matrix product (and row norms), then the fused metric-softmax kernel;
    /// `None` when the kernel does not apply.
    fn weights_fused(&self, q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Option<Tensor>> {
        if !(fused::enabled(fused::Kernel::Attn) && q.device().is_cpu() && q.dtype() == DType::F32) {
            return Ok(None);
        }
        let f = self.fused_fn();
        let (qk, param) = match (self.kind, &self.power) {
            (MetricKind::Cosine, _) => (unit_rows(q)?.matmul(&unit_rows(k)?.t()?)?, self.temperature.clone()),
            (MetricKind::Idw, Power::Learned(p)) => (q.matmul(&k.t()?)?, Some(p.clone())),
            _ => (q.matmul(&k.t()?)?, None),
        }; // (b, h, tq, tk)
        let norms = if self.kind.is_distance() {
            let qn = q.sqr()?.sum(D::Minus1)?; // (b, h, tq)
            let kn = k.sqr()?.sum(D::Minus1)?; // (b, h, tk)
            Some(Tensor::cat(&[qn, kn], D::Minus1)?) // (b, h, tq + tk)
        } else {
            None
        };
        fused::attention_weights(f, &qk, norms.as_ref(), param.as_ref(), mask)
    }

    /// `|q - k|^p = (d2 + delta)^(p/2)`, `(b, h, tq, tk)`.
    fn dist_pow(&self, q: &Tensor, k: &Tensor) -> Result<Tensor> {
        let x = (sq_dists(q, k)? + self.delta)?;
        match &self.power {
            Power::Fixed(p) if *p == 2.0 => Ok(x),
            Power::Fixed(p) if *p == 1.0 => x.sqrt(),
            Power::Fixed(p) => x.powf(p / 2.0),
            Power::Learned(p) => {
                let half_p = self.per_head(Some(p), q)? * 0.5;
                x.log()?.broadcast_mul(&half_p?)?.exp()
            }
        }
    }

    /// A `(h,)` parameter reshaped to broadcast against `(b, h, tq, tk)`.
    fn per_head(&self, p: Option<&Tensor>, q: &Tensor) -> Result<Tensor> {
        let Some(p) = p else { bail!("metric `{}` has no per-head parameter", self.kind) };
        p.to_dtype(q.dtype())?.reshape((1, q.dim(1)?, 1, 1))
    }
}

/// Squared distances `max(0, |q|^2 + |k|^2 - 2 q.k)`: `(b, h, tq, d), (b, h, tk, d) -> (b, h, tq, tk)`.
pub fn sq_dists(q: &Tensor, k: &Tensor) -> Result<Tensor> {
    let qn = q.sqr()?.sum_keepdim(D::Minus1)?; // (b, h, tq, 1)
    let kn = k.sqr()?.sum_keepdim(D::Minus1)?.t()?; // (b, h, 1, tk)
    let qk = q.matmul(&k.t()?)?; // (b, h, tq, tk)
    (qk * -2.0)?.broadcast_add(&qn)?.broadcast_add(&kn)?.relu()
}

/// Rows scaled to unit norm, `x / sqrt(|x|^2 + 1e-12)`, same shape as `x`.
fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let n = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    x.broadcast_div(&n)
}

/// Additive causal mask `(t, t)`: 0 where key <= query, `-inf` above the diagonal.
pub fn causal_mask(t: usize, device: &candle_core::Device) -> Result<Tensor> {
    let data: Vec<f32> =
        (0..t).flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(data, (t, t), device)
}

/// Additive set mask `(n + m, n + m)` for `n` context points followed by `m` queries: every
/// point sees the context points and nothing else.
pub fn context_mask(n_context: usize, n_query: usize, device: &candle_core::Device) -> Result<Tensor> {
    let t = n_context + n_query;
    let data: Vec<f32> = (0..t)
        .flat_map(|_| (0..t).map(move |j| if j < n_context { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(data, (t, t), device)
}
