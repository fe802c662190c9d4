//! Classical in-context regressors, the baselines of the `regression` task: each one sees only
//! a prompt's context points `(x_i, y_i)` and predicts `y` at a query `x`.
//!
//! - least squares without intercept, minimum-norm when the context does not determine `w`
//!   (`w = X^+ y` by nalgebra's SVD, singular values below `max(n, d) * eps * s_max` dropped as
//!   numpy's `lstsq` does), the estimator Garg et al. (2022) compare transformers with;
//! - k nearest neighbours with uniform or `1 / distance` weights (scikit-learn's
//!   `KNeighborsRegressor`: a query at a context point takes that point's value);
//! - Shepard's inverse distance weighting with p = 2 ([`super::shepard::shepard`]);
//! - Nadaraya-Watson with a Gaussian kernel `exp(-|x - x_i|^2 / (2 h^2))` and bandwidth `h`;
//! - the mean of the context values.

use anyhow::{Result, anyhow, bail};
use nalgebra::{DMatrix, DVector};

use super::shepard::shepard;

/// Squared Euclidean distance of two points of equal length.
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(u, v)| (u - v).powi(2)).sum()
}

/// Checks a context: at least one point, as many values as points, one dimension, finite numbers.
fn check(xs: &[Vec<f64>], ys: &[f64], query: &[f64]) -> Result<()> {
    if xs.is_empty() {
        bail!("an in-context regressor needs at least one context point, got 0")
    }
    if xs.len() != ys.len() {
        bail!("{} context points but {} values", xs.len(), ys.len())
    }
    for (i, x) in xs.iter().enumerate() {
        if x.len() != query.len() {
            bail!("context point {i} has {} coordinates but the query has {}", x.len(), query.len())
        }
        if x.iter().chain([&ys[i]]).any(|v| !v.is_finite()) {
            bail!("context point {i} has a non-finite coordinate or value")
        }
    }
    if query.iter().any(|v| !v.is_finite()) {
        bail!("the query {query:?} has a non-finite coordinate")
    }
    Ok(())
}

/// Minimum-norm least-squares weights `w = X^+ y` of the context (`n` points of `d`
/// coordinates, no intercept): the exact solution when the context determines `w`
/// (`n >= d` points in general position), the one of smallest `|w|` otherwise.
pub fn least_squares_weights(xs: &[Vec<f64>], ys: &[f64]) -> Result<Vec<f64>> {
    let Some(first) = xs.first() else { bail!("least squares needs at least one context point, got 0") };
    check(xs, ys, first)?;
    let (n, d) = (xs.len(), first.len());
    let x = DMatrix::from_fn(n, d, |i, j| xs[i][j]);
    let svd = x.svd(true, true);
    let s_max = svd.singular_values.iter().copied().fold(0.0f64, f64::max);
    let tol = n.max(d) as f64 * f64::EPSILON * s_max;
    let w = svd.solve(&DVector::from_column_slice(ys), tol).map_err(|e| anyhow!("least squares: {e}"))?;
    Ok(w.iter().copied().collect())
}

/// Least-squares predictions at `queries` from the context ([`least_squares_weights`]).
pub fn least_squares(xs: &[Vec<f64>], ys: &[f64], queries: &[Vec<f64>]) -> Result<Vec<f64>> {
    let w = least_squares_weights(xs, ys)?;
    queries
        .iter()
        .map(|q| {
            if q.len() != w.len() {
                bail!("a query has {} coordinates but the context has {}", q.len(), w.len())
            }
            Ok(q.iter().zip(&w).map(|(a, b)| a * b).sum())
        })
        .collect()
}

/// How the k nearest neighbours are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnnWeights {
    /// Every neighbour counts the same: the mean of their values.
    Uniform,
    /// Weight `1 / distance`; neighbours at distance 0 take all the weight (their mean).
    InverseDistance,
}

/// k-nearest-neighbour regression at `query`: the `min(k, n)` context points nearest to it
/// (ties broken by order in the context), combined by `weights`.
pub fn knn(xs: &[Vec<f64>], ys: &[f64], query: &[f64], k: usize, weights: KnnWeights) -> Result<f64> {
    check(xs, ys, query)?;
    if k == 0 {
        bail!("k nearest neighbours needs k >= 1, got 0")
    }
    let mut by_dist: Vec<(f64, f64)> =
        xs.iter().zip(ys).map(|(x, y)| (sq_dist(x, query).sqrt(), *y)).collect();
    by_dist.sort_by(|a, b| a.0.total_cmp(&b.0));
    let near = &by_dist[..k.min(by_dist.len())];
    let mean = |ps: &[(f64, f64)]| ps.iter().map(|p| p.1).sum::<f64>() / ps.len() as f64;
    Ok(match weights {
        KnnWeights::Uniform => mean(near),
        KnnWeights::InverseDistance => {
            let zero: Vec<(f64, f64)> = near.iter().copied().filter(|p| p.0 == 0.0).collect();
            if zero.is_empty() {
                let (num, den) = near.iter().fold((0.0, 0.0), |(n, d), (r, y)| (n + y / r, d + 1.0 / r));
                num / den
            } else {
                mean(&zero)
            }
        }
    })
}

/// Shepard's inverse distance weighting with p = 2 at `query` (the classical method: at a
/// context point it returns that point's value).
pub fn shepard_p2(xs: &[Vec<f64>], ys: &[f64], query: &[f64]) -> Result<f64> {
    shepard(xs, ys, query, 2.0, 0.0)
}

/// Nadaraya-Watson (1964) kernel regression at `query` with the Gaussian kernel of bandwidth
/// `h`: `sum_i K_i y_i / sum_i K_i`, `K_i = exp(-|query - x_i|^2 / (2 h^2))` (computed relative to
/// the nearest point, so a small `h` tends to the nearest neighbour instead of 0 / 0).
pub fn nadaraya_watson(xs: &[Vec<f64>], ys: &[f64], query: &[f64], h: f64) -> Result<f64> {
    check(xs, ys, query)?;
    if !(h.is_finite() && h > 0.0) {
        bail!("Nadaraya-Watson needs a bandwidth h > 0, got {h}")
    }
    let d2: Vec<f64> = xs.iter().map(|x| sq_dist(x, query)).collect();
    Ok(nw_from_sq_dists(&d2, ys, h))
}

/// [`nadaraya_watson`] from the squared distances of the query to the context points
/// (already checked), so a bandwidth search computes them once.
pub fn nw_from_sq_dists(d2: &[f64], ys: &[f64], h: f64) -> f64 {
    let lo = d2.iter().copied().fold(f64::INFINITY, f64::min);
    let (num, den) = d2.iter().zip(ys).fold((0.0, 0.0), |(n, d), (r, y)| {
        let k = (-(r - lo) / (2.0 * h * h)).exp();
        (n + k * y, d + k)
    });
    num / den
}

/// Mean of the context values (ignores the query).
pub fn context_mean(ys: &[f64]) -> Result<f64> {
    if ys.is_empty() {
        bail!("the context mean needs at least one context value, got 0")
    }
    Ok(ys.iter().sum::<f64>() / ys.len() as f64)
}
