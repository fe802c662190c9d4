//! Attention geometry on validation inputs, per layer and head.
//!
//! - key-norm dispersion: coefficient of variation `std_t |k_t| / mean_t |k_t|` of the key norms
//!   over positions (population std), averaged over the batch. When it is 0, every key has the
//!   same norm and `neg_sq_euclid` attention at scale s equals dot-product attention at scale `2s`;
//! - attention entropy: `-sum_j w_ij ln w_ij` (nats), averaged over query rows;
//! - mean attention distance: `sum_j w_ij |i - j|` in positions, averaged over query rows;
//! - agreement with dot product: total-variation distance `1/2 sum_j |w_ij - w^dot_ij|` between
//!   the run's attention and `softmax(c q.k + mask)` computed from the same `q`, `k`, at the
//!   effective scale `c` of [`dot_reference_scale`] (twice the run's scale for `neg_sq_euclid`,
//!   its learned one per head under `learn_scale`, so that the distance isolates the key bias
//!   `-s |k|^2`);
//! - the measures of [`crate::diagnostics`]: uniform entropy under the mask, largest score,
//!   attention-sink mass, unselected keys.
//!
//! Shapes: keys `(b, h, t, d)`, attention weights `(b, h, tq, tk)`; results are `(h,)`.

use anyhow::{Result, bail};
use attnlab_model::{Gpt, MetricKind, MetricLayer, MetricSpec, ParamStore, causal_mask};

use crate::diagnostics::{
    dot_reference_scale, max_abs_score, rows, sink_mass, uniform_entropy, unselected_keys, visible,
};
use candle_core::{DType, Tensor};
use serde::Serialize;

/// The geometry numbers of one head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadGeometry {
    /// Block index.
    pub layer: usize,
    /// Head index.
    pub head: usize,
    /// Coefficient of variation of `|k|` over positions.
    pub key_norm_cv: f64,
    /// Mean attention entropy (nats).
    pub entropy: f64,
    /// Mean attention entropy of dot-product attention from the same `q`, `k` (nats).
    pub entropy_dot: f64,
    /// Mean `|i - j|` under the attention weights.
    pub mean_distance: f64,
    /// Mean total-variation distance to dot-product attention from the same `q`, `k` at scale
    /// [`HeadGeometry::dot_scale`].
    pub tv_to_dot: f64,
    /// Scale `c` of the dot attention `softmax(c q.k)` behind `tv_to_dot` and `entropy_dot`.
    pub dot_scale: f64,
    /// Mean entropy of uniform attention under the same mask (nats).
    pub entropy_uniform: f64,
    /// Largest `|pre-softmax score|` over visible pairs.
    pub max_logit: f64,
    /// Mean attention weight on the first key (queries seeing at least two keys).
    pub sink_mass: f64,
    /// Share of keys that no query ranks first.
    pub unselected_keys: f64,
}

impl HeadGeometry {
    /// `entropy / entropy_uniform`: 1 for uniform attention, 0 for one-hot.
    pub fn entropy_ratio(&self) -> f64 {
        self.entropy / self.entropy_uniform
    }
}

/// Key-norm dispersion per head for keys `(b, h, t, d)`: mean over `b` of `std_t |k| / mean_t |k|`.
pub fn key_norm_cv(k: &Tensor) -> Result<Vec<f64>> {
    let norms = k.to_dtype(DType::F64)?.sqr()?.sum_keepdim(3)?.sqrt()?.squeeze(3)?; // (b, h, t)
    let (b, h, t) = norms.dims3()?;
    let n = norms.flatten_all()?.to_vec1::<f64>()?;
    Ok((0..h)
        .map(|hh| {
            let per_b = (0..b).map(|bb| {
                let row = &n[(bb * h + hh) * t..(bb * h + hh + 1) * t];
                let mean = row.iter().sum::<f64>() / t as f64;
                let var = row.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / t as f64;
                if mean > 0.0 { var.sqrt() / mean } else { 0.0 }
            });
            per_b.sum::<f64>() / b as f64
        })
        .collect())
}

/// Mean of `f(row, i)` over every query row `i` of attention weights `(b, h, tq, tk)`, per head.
fn per_head_row_mean(w: &Tensor, f: impl Fn(&[f32], usize) -> f64) -> Result<Vec<f64>> {
    let ((b, h, tq, tk), data) = rows(w)?;
    Ok((0..h)
        .map(|hh| {
            let mut sum = 0.0;
            for bb in 0..b {
                for i in 0..tq {
                    let start = ((bb * h + hh) * tq + i) * tk;
                    sum += f(&data[start..start + tk], i);
                }
            }
            sum / (b * tq) as f64
        })
        .collect())
}

/// Attention entropy per head, `-sum_j w_ij ln w_ij` (with `0 ln 0 = 0`), mean over rows.
pub fn attention_entropy(w: &Tensor) -> Result<Vec<f64>> {
    per_head_row_mean(w, |row, _| {
        -row.iter().filter(|&&p| p > 0.0).map(|&p| p as f64 * (p as f64).ln()).sum::<f64>()
    })
}

/// Mean attention distance per head, `sum_j w_ij |i - j|`, mean over rows (query `i` at position `i`).
pub fn mean_attention_distance(w: &Tensor) -> Result<Vec<f64>> {
    per_head_row_mean(w, |row, i| row.iter().enumerate().map(|(j, &p)| p as f64 * i.abs_diff(j) as f64).sum())
}

/// Mean total-variation distance per head between two attention tensors of one shape,
/// `1/2 sum_j |a_ij - b_ij|`, mean over rows.
pub fn tv_distance(a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
    if a.dims() != b.dims() {
        bail!("attention shapes differ: {:?} vs {:?}", a.dims(), b.dims())
    }
    let diff = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?;
    per_head_row_mean(&diff, |row, _| 0.5 * row.iter().map(|&x| x as f64).sum::<f64>())
}

/// Geometry of every layer and head of `gpt` on token ids `(b, t)` (causal attention).
pub fn gpt_geometry(gpt: &Gpt, tokens: &Tensor) -> Result<Vec<HeadGeometry>> {
    let (_logits, probes) = gpt.forward_with_probes(tokens)?;
    let t = tokens.dim(1)?;
    let mask = causal_mask(t, tokens.device())?;
    let mut out = Vec::new();
    for (layer, (probe, block)) in probes.iter().zip(gpt.blocks()).enumerate() {
        let metric = block.attn().metric();
        let power = gpt.config().attention.power();
        out.extend(layer_geometry(layer, metric, power, &probe.q, &probe.k, Some(&mask))?);
    }
    Ok(out)
}

/// Geometry of one layer from its queries `(b, h, tq, d)`, keys `(b, h, tk, d)`, its metric (with
/// its distance power `power`, used for `neg_euclid`'s dot equivalent) and mask `(tq, tk)`.
pub fn layer_geometry(
    layer: usize,
    metric: &MetricLayer,
    power: f64,
    q: &Tensor,
    k: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Vec<HeadGeometry>> {
    let (_b, h, tq, d) = q.dims4()?;
    let tk = k.dim(2)?;
    let w = metric.weights(q, k, mask)?; // (b, h, tq, tk)
    let dot_scale = dot_reference_scale(metric, power, h)?;
    let w_dot = dot_reference(&dot_scale, d, q.device())?.weights(q, k, mask)?; // (b, h, tq, tk)
    let seen = visible(mask, tq, tk)?;
    let ent_uniform = uniform_entropy(&seen, tq, tk);
    let logit = max_abs_score(&metric.scores(q, k)?, &seen)?;
    let sink = sink_mass(&w, &seen)?;
    let unselected = unselected_keys(&w)?;
    let cv = key_norm_cv(k)?;
    let ent = attention_entropy(&w)?;
    let ent_dot = attention_entropy(&w_dot)?;
    let dist = mean_attention_distance(&w)?;
    let tv = tv_distance(&w, &w_dot)?;
    Ok((0..h)
        .map(|head| HeadGeometry {
            layer,
            head,
            key_norm_cv: cv[head],
            entropy: ent[head],
            entropy_dot: ent_dot[head],
            mean_distance: dist[head],
            tv_to_dot: tv[head],
            dot_scale: dot_scale[head],
            entropy_uniform: ent_uniform,
            max_logit: logit[head],
            sink_mass: sink[head],
            unselected_keys: unselected[head],
        })
        .collect())
}

/// Dot-product attention of heads of width `d` whose score scales are `scales` `(h,)`: a `dot`
/// [`MetricLayer`] with a per-head scale (its `log_scale` set to `ln c_h`).
fn dot_reference(scales: &[f64], d: usize, device: &candle_core::Device) -> Result<MetricLayer> {
    let store = ParamStore::new(0, device);
    let spec = MetricSpec { learn_scale: true, ..MetricSpec::of(MetricKind::Dot) };
    let dot = MetricLayer::new(&spec, scales.len(), d, &store.root())?;
    let ln: Vec<f32> = scales.iter().map(|c| c.ln() as f32).collect();
    let log_scale = candle_core::Tensor::from_vec(ln, scales.len(), device)?;
    store.assign_from([("log_scale".to_string(), log_scale)].into())?;
    Ok(dot)
}

/// `n` sequences of `t` token ids below `vocab`, drawn from a fixed seed (splitmix64): inputs for
/// runs whose validation data cannot be rebuilt here.
pub fn fixed_tokens(n: usize, t: usize, vocab: usize, device: &candle_core::Device) -> Result<Tensor> {
    if vocab == 0 {
        bail!("vocab_size is 0")
    }
    let mut state: u64 = 0x5EED_A77E;
    let ids: Vec<u32> = (0..n * t)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % vocab as u64) as u32
        })
        .collect();
    Ok(Tensor::from_vec(ids, (n, t), device)?)
}
