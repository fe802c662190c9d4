//! Attention diagnostics beside the geometry measures, per head on validation inputs:
//!
//! - uniform entropy under the mask: `mean_i ln(n_i)` for `n_i` keys visible from query `i`
//!   (`mean_i ln(i+1)` under a causal mask; 3.21 nats at T = 64, not ln 64 = 4.16);
//! - logit growth: the largest `|s_ij|` of the pre-softmax scores over visible pairs (Wortsman
//!   et al. 2023, "Small-scale proxies for large-scale Transformer training instabilities");
//! - attention-sink mass: mean weight on the first key, over queries that see at least two keys
//!   (Gu et al. 2025, "When attention sink emerges in language models");
//! - unselected keys: the share of keys that no query ranks first (Brody, Alon and Yahav 2023,
//!   "On the expressivity role of LayerNorm in Transformers' attention");
//! - the scale of the dot-product attention a metric is compared with (see [`dot_reference_scale`]).
//!
//! Their per-run numbers (means and shares over heads) are rows of [`crate::quantity::GEOMETRY`].
//!
//! Shapes: weights and scores `(b, h, tq, tk)`, masks `(tq, tk)` of zeros and `-inf`; results `(h,)`.

use anyhow::{Result, bail};
use attnlab_model::{MetricKind, MetricLayer};
use candle_core::{DType, Tensor};

/// Mass on the first key above which a head counts as an attention sink.
pub const SINK_THRESHOLD: f64 = 0.3;
/// A head whose entropy is within this fraction of uniform attention's counts as near-uniform.
pub const NEAR_UNIFORM: f64 = 0.05;

/// Whether each key of each query row is visible: `(tq, tk)` row-major, all `true` without a mask.
pub fn visible(mask: Option<&Tensor>, tq: usize, tk: usize) -> Result<Vec<bool>> {
    let Some(m) = mask else { return Ok(vec![true; tq * tk]) };
    if m.dims() != [tq, tk] {
        bail!("mask shape {:?} does not match attention ({tq}, {tk})", m.dims())
    }
    Ok(m.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.iter().map(|x| x.is_finite()).collect())
}

/// Mean entropy of uniform attention over the visible keys, `mean_i ln(n_i)` (nats).
pub fn uniform_entropy(visible: &[bool], tq: usize, tk: usize) -> f64 {
    let row = |i: usize| visible[i * tk..(i + 1) * tk].iter().filter(|v| **v).count();
    (0..tq).map(|i| (row(i).max(1) as f64).ln()).sum::<f64>() / tq.max(1) as f64
}

/// Dimensions `(b, h, tq, tk)`.
pub(crate) type Dims4 = (usize, usize, usize, usize);

/// A 4-D tensor copied out as `f32` with its dimensions.
pub(crate) fn rows(x: &Tensor) -> Result<(Dims4, Vec<f32>)> {
    let dims = x.dims4()?;
    Ok((dims, x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?))
}

/// Largest `|score|` per head over visible pairs of scores `(b, h, tq, tk)`.
pub fn max_abs_score(scores: &Tensor, visible: &[bool]) -> Result<Vec<f64>> {
    let ((b, h, tq, tk), s) = rows(scores)?;
    Ok((0..h)
        .map(|hh| {
            let mut m = 0.0f64;
            for bb in 0..b {
                let base = (bb * h + hh) * tq * tk;
                for j in (0..tq * tk).filter(|j| visible[*j]) {
                    m = m.max((s[base + j] as f64).abs());
                }
            }
            m
        })
        .collect())
}

/// Mean attention weight on the first key per head, over the query rows that see at least two
/// keys (a query that sees only the first key puts all its weight there by construction).
pub fn sink_mass(w: &Tensor, visible: &[bool]) -> Result<Vec<f64>> {
    let ((b, h, tq, tk), x) = rows(w)?;
    let open: Vec<usize> =
        (0..tq).filter(|i| visible[i * tk..(i + 1) * tk].iter().filter(|v| **v).count() >= 2).collect();
    if open.is_empty() {
        return Ok(vec![f64::NAN; h]);
    }
    Ok((0..h)
        .map(|hh| {
            let sum: f64 = (0..b)
                .flat_map(|bb| open.iter().map(move |i| ((bb * h + hh) * tq + i) * tk))
                .map(|start| x[start] as f64)
                .sum();
            sum / (b * open.len()) as f64
        })
        .collect())
}

/// Share of keys that no query row ranks first (ties go to the earliest key), per head, mean
/// over the batch.
pub fn unselected_keys(w: &Tensor) -> Result<Vec<f64>> {
    let ((b, h, tq, tk), x) = rows(w)?;
    Ok((0..h)
        .map(|hh| {
            let mut share = 0.0;
            for bb in 0..b {
                let mut chosen = vec![false; tk];
                for i in 0..tq {
                    let row = &x[((bb * h + hh) * tq + i) * tk..][..tk];
                    let best = (0..tk).fold(0, |best, j| if row[j] > row[best] { j } else { best });
                    chosen[best] = true;
                }
                share += chosen.iter().filter(|c| !**c).count() as f64 / tk as f64;
            }
            share / b as f64
        })
        .collect())
}

/// The scale per head `(h,)` of the dot-product attention `softmax(c q.k + mask)` a metric's
/// attention is compared with, so that the difference isolates what is not a change of
/// temperature: `-s|q-k|^2 = 2s q.k - s|q|^2 - s|k|^2`, and the `|q|^2` term cancels in the
/// softmax, so `neg_sq_euclid` (and `neg_euclid` with p = 2) at scale `s` is dot at `2s` plus the
/// key bias `-s|k|^2`. Other metrics have no dot equivalent and are compared at the run's own
/// scale `s`. `s` is the head's learned scale under `learn_scale`, else the fixed one.
pub fn dot_reference_scale(metric: &MetricLayer, power: f64, n_head: usize) -> Result<Vec<f64>> {
    let s: Vec<f64> = match metric.learned_scale()? {
        Some(t) => t.to_dtype(DType::F64)?.to_vec1()?,
        None => vec![metric.scale(); n_head],
    };
    let factor = match metric.kind() {
        MetricKind::NegSqEuclid => 2.0,
        MetricKind::NegEuclid if power == 2.0 => 2.0,
        MetricKind::NegEuclid
        | MetricKind::Dot
        | MetricKind::Cosine
        | MetricKind::Idw
        | MetricKind::InvDist
        | MetricKind::Rbf => 1.0,
    };
    Ok(s.iter().map(|s| factor * s).collect())
}
