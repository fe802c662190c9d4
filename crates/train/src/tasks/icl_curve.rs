//! The error curve of the `regression` task: mean squared error at the validation queries
//! against the number of in-context examples `n = 1..=n_context` (the first `n` context points of
//! every validation prompt), for the model and for each classical baseline on the same prompts
//! (Garg et al. 2022, Figure 2). Nadaraya-Watson's bandwidth is chosen per `n` on prompts of the
//! training distribution, never on the validation prompts.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use attnlab_model::SetRegressor;
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::icl_baselines::{
    KnnWeights, context_mean, knn, least_squares, nadaraya_watson, nw_from_sq_dists, shepard_p2,
};
use super::scattered::{Problem, to_batch};

/// A classical in-context regressor of the curve ([`super::icl_baselines`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IclBaseline {
    /// Minimum-norm least squares.
    LeastSquares,
    /// 3 nearest neighbours, uniform weights.
    Knn3Uniform,
    /// 3 nearest neighbours, `1 / distance` weights.
    Knn3Distance,
    /// Shepard p = 2.
    ShepardP2,
    /// Gaussian-kernel Nadaraya-Watson, bandwidth chosen on training prompts.
    NadarayaWatson,
    /// The mean of the context values.
    ContextMean,
}

impl IclBaseline {
    /// Every baseline, in report order.
    pub const ALL: [IclBaseline; 6] = [
        IclBaseline::LeastSquares,
        IclBaseline::Knn3Uniform,
        IclBaseline::Knn3Distance,
        IclBaseline::ShepardP2,
        IclBaseline::NadarayaWatson,
        IclBaseline::ContextMean,
    ];

    /// The name in `summary.json` and in pictures.
    pub fn name(self) -> &'static str {
        match self {
            IclBaseline::LeastSquares => "least_squares",
            IclBaseline::Knn3Uniform => "knn3_uniform",
            IclBaseline::Knn3Distance => "knn3_distance",
            IclBaseline::ShepardP2 => "shepard_p2",
            IclBaseline::NadarayaWatson => "nadaraya_watson",
            IclBaseline::ContextMean => "context_mean",
        }
    }

    /// Predictions at `p`'s queries from its first `n` context points; `h` is the
    /// Nadaraya-Watson bandwidth (ignored by the others).
    pub fn predict(self, p: &Problem, n: usize, h: f64) -> Result<Vec<f64>> {
        let (xs, ys) = (&p.ctx_x[..n], &p.ctx_y[..n]);
        match self {
            IclBaseline::LeastSquares => least_squares(xs, ys, &p.query_x),
            IclBaseline::Knn3Uniform => {
                p.query_x.iter().map(|q| knn(xs, ys, q, 3, KnnWeights::Uniform)).collect()
            }
            IclBaseline::Knn3Distance => {
                p.query_x.iter().map(|q| knn(xs, ys, q, 3, KnnWeights::InverseDistance)).collect()
            }
            IclBaseline::ShepardP2 => p.query_x.iter().map(|q| shepard_p2(xs, ys, q)).collect(),
            IclBaseline::NadarayaWatson => p.query_x.iter().map(|q| nadaraya_watson(xs, ys, q, h)).collect(),
            IclBaseline::ContextMean => {
                let m = context_mean(ys)?;
                Ok(vec![m; p.query_x.len()])
            }
        }
    }
}

/// Squared error against the number of in-context examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCurve {
    /// Numbers of in-context examples, `1..=n_context`.
    pub counts: Vec<usize>,
    /// The model's mean squared error at each count (empty for baselines alone).
    pub model: Vec<f64>,
    /// Each baseline's, by [`IclBaseline::name`].
    pub baselines: BTreeMap<String, Vec<f64>>,
    /// Nadaraya-Watson's bandwidth at each count (chosen on the tuning prompts).
    pub bandwidths: Vec<f64>,
}

/// Scores of a `regression` run: the curve and its values at `d` and `2d` examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionScores {
    /// The model's mean squared error with all `n_context` examples.
    pub val_mse: f64,
    /// Squared errors at `n = d` examples: `model` and each baseline.
    pub at_d: BTreeMap<String, f64>,
    /// The same at `n = 2d`.
    pub at_2d: BTreeMap<String, f64>,
    /// The whole curve.
    pub curve: ErrorCurve,
}

impl RegressionScores {
    /// The scores of a curve of a task of input dimension `dim` (the curve must reach `2 * dim`
    /// examples and hold the model's errors).
    pub fn from_curve(curve: ErrorCurve, dim: usize) -> Result<Self> {
        let at = |n: usize| -> Result<BTreeMap<String, f64>> {
            let Some(i) = curve.counts.iter().position(|c| *c == n) else {
                bail!("the error curve has no point at {n} examples")
            };
            let mut out: BTreeMap<String, f64> =
                curve.baselines.iter().filter_map(|(k, v)| Some((k.clone(), *v.get(i)?))).collect();
            if let Some(m) = curve.model.get(i) {
                out.insert("model".into(), *m);
            }
            Ok(out)
        };
        let (at_d, at_2d) = (at(dim)?, at(2 * dim)?);
        let Some(val_mse) = curve.model.last().copied() else { bail!("the error curve has no model errors") };
        Ok(Self { val_mse, at_d, at_2d, curve })
    }
}

/// Bandwidths tried for Nadaraya-Watson: `s * 2^(k/4)`, `k = -24..=12`, with `s` the RMS distance
/// from a query to a context point of the tuning prompts (from `s / 64` to `8 s`).
fn bandwidth_grid(tune: &[Problem]) -> Vec<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for p in tune {
        for q in &p.query_x {
            for x in &p.ctx_x {
                sum += q.iter().zip(x).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
                n += 1;
            }
        }
    }
    let s = if n > 0 && sum > 0.0 { (sum / n as f64).sqrt() } else { 1.0 };
    (-24..=12).map(|k| s * 2f64.powf(k as f64 / 4.0)).collect()
}

/// The Nadaraya-Watson bandwidth with the smallest mean squared error on `tune` at each count
/// (the first of the grid on ties).
pub fn choose_bandwidths(tune: &[Problem], counts: &[usize]) -> Result<Vec<f64>> {
    if tune.is_empty() {
        bail!("choosing a bandwidth needs at least one tuning prompt")
    }
    let grid = bandwidth_grid(tune);
    // Squared distances of every query to every context point, once.
    let d2: Vec<Vec<Vec<f64>>> = tune
        .iter()
        .map(|p| {
            p.query_x
                .iter()
                .map(|q| {
                    p.ctx_x.iter().map(|x| q.iter().zip(x).map(|(a, b)| (a - b).powi(2)).sum()).collect()
                })
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(counts.len());
    for &n in counts {
        let mut best = (f64::INFINITY, grid[0]);
        for &h in &grid {
            let mut se = 0.0;
            for (p, rows) in tune.iter().zip(&d2) {
                if n == 0 || n > p.ctx_x.len() {
                    bail!("tuning prompts have {} context points, asked for {n}", p.ctx_x.len())
                }
                for (row, y) in rows.iter().zip(&p.query_y) {
                    se += (nw_from_sq_dists(&row[..n], &p.ctx_y[..n], h) - y).powi(2);
                }
            }
            if se < best.0 {
                best = (se, h);
            }
        }
        out.push(best.1);
    }
    Ok(out)
}

/// The error curve on `val` (every prompt with the same number of context points) of the model
/// (when given) and of every baseline, with Nadaraya-Watson tuned on `tune`.
pub fn error_curve(
    model: Option<&SetRegressor>,
    val: &[Problem],
    tune: &[Problem],
    device: &Device,
) -> Result<ErrorCurve> {
    let Some(n_max) = val.first().map(|p| p.ctx_x.len()) else {
        bail!("the error curve needs validation prompts")
    };
    if val.iter().any(|p| p.ctx_x.len() != n_max) || n_max == 0 {
        bail!("validation prompts must all have the same number (at least 1) of context points")
    }
    let counts: Vec<usize> = (1..=n_max).collect();
    let bandwidths = choose_bandwidths(tune, &counts)?;
    let queries: usize = val.iter().map(|p| p.query_x.len()).sum();
    let mut baselines = BTreeMap::new();
    for b in IclBaseline::ALL {
        let mut curve = Vec::with_capacity(counts.len());
        for (&n, &h) in counts.iter().zip(&bandwidths) {
            let mut se = 0.0;
            for p in val {
                let pred = b.predict(p, n, h)?;
                se += pred.iter().zip(&p.query_y).map(|(a, y)| (a - y).powi(2)).sum::<f64>();
            }
            curve.push(se / queries as f64);
        }
        baselines.insert(b.name().to_string(), curve);
    }
    let model = match model {
        Some(net) => model_curve(net, val, &counts, device)?,
        None => Vec::new(),
    };
    Ok(ErrorCurve { counts, model, baselines, bandwidths })
}

/// The model's mean squared error at each count (the first `n` context points of every prompt).
fn model_curve(net: &SetRegressor, val: &[Problem], counts: &[usize], device: &Device) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(counts.len());
    for &n in counts {
        let cut: Vec<Problem> = val
            .iter()
            .map(|p| Problem { ctx_x: p.ctx_x[..n].to_vec(), ctx_y: p.ctx_y[..n].to_vec(), ..p.clone() })
            .collect();
        let (mut se, mut k) = (0.0, 0usize);
        for chunk in cut.chunks(32) {
            let b = to_batch(chunk, device)?;
            let pred = net.forward(&b.inputs[0], &b.inputs[1])?.detach();
            let err = (pred - &b.targets)?.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            (se, k) = (se + err, k + b.targets.elem_count());
        }
        out.push(se / k as f64);
    }
    Ok(out)
}

/// The baseline whose curve lies closest to `model`'s (smallest mean absolute difference over
/// the counts), with that difference; `None` when the model curve is empty or no baseline has
/// a curve of the same length.
pub fn nearest_baseline(model: &[f64], baselines: &BTreeMap<String, Vec<f64>>) -> Option<(String, f64)> {
    if model.is_empty() {
        return None;
    }
    baselines
        .iter()
        .filter(|(_, b)| b.len() == model.len())
        .map(|(name, b)| {
            let gap = model.iter().zip(b).map(|(m, v)| (m - v).abs()).sum::<f64>() / model.len() as f64;
            (name.clone(), gap)
        })
        .filter(|(_, gap)| gap.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
}
