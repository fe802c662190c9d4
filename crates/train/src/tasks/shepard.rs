//! Classical scattered-data interpolators, the baselines of the `scattered` task:
//! Shepard's (1968) global inverse distance weighting and nearest neighbour.

use anyhow::{Result, bail};

/// Squared Euclidean distance of two points of equal length.
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(u, v)| (u - v).powi(2)).sum()
}

/// Checks nodes, values and the point: at least one node, equal counts and dimensions, finite numbers.
fn check<P: AsRef<[f64]>>(nodes: &[P], values: &[f64], x: &[f64]) -> Result<()> {
    if nodes.is_empty() {
        bail!("interpolation needs at least one node, got 0")
    }
    if nodes.len() != values.len() {
        bail!("{} nodes but {} values", nodes.len(), values.len())
    }
    for (i, n) in nodes.iter().enumerate() {
        let n = n.as_ref();
        if n.len() != x.len() {
            bail!("node {i} has {} coordinates but the point has {}", n.len(), x.len())
        }
        if n.iter().chain([&values[i]]).any(|v| !v.is_finite()) {
            bail!("node {i} has a non-finite coordinate or value: {n:?} -> {}", values[i])
        }
    }
    if x.iter().any(|v| !v.is_finite()) {
        bail!("the point {x:?} has a non-finite coordinate")
    }
    Ok(())
}

/// Shepard's inverse distance weighting at `x`:
/// `sum_i w_i y_i / sum_i w_i` with `w_i = 1 / (eps + |x - x_i|^p)`.
/// With `eps = 0` (the classical method) the value at a node is that node's value.
/// The `idw` attention metric computes exactly this with `eps` and `p` of the metric.
pub fn shepard<P: AsRef<[f64]>>(nodes: &[P], values: &[f64], x: &[f64], p: f64, eps: f64) -> Result<f64> {
    check(nodes, values, x)?;
    if !(p.is_finite() && p > 0.0 && eps.is_finite() && eps >= 0.0) {
        bail!("Shepard needs a power p > 0 and eps >= 0, got p = {p}, eps = {eps}")
    }
    let (mut num, mut den) = (0.0, 0.0);
    for (n, y) in nodes.iter().zip(values) {
        let d2 = sq_dist(n.as_ref(), x);
        if eps == 0.0 && d2 == 0.0 {
            return Ok(*y);
        }
        let w = 1.0 / (eps + d2.powf(p / 2.0));
        num += w * y;
        den += w;
    }
    Ok(num / den)
}

/// Value of the nearest node to `x` (the first one on ties).
pub fn nearest<P: AsRef<[f64]>>(nodes: &[P], values: &[f64], x: &[f64]) -> Result<f64> {
    check(nodes, values, x)?;
    let mut best = (f64::INFINITY, values[0]);
    for (n, y) in nodes.iter().zip(values) {
        let d2 = sq_dist(n.as_ref(), x);
        if d2 < best.0 {
            best = (d2, *y);
        }
    }
    Ok(best.1)
}

/// A classical interpolator, by the name reports use (`shepard_p1`..`shepard_p4`, `nearest`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// Shepard with power p (eps = 0).
    Shepard(u32),
    /// Nearest neighbour.
    Nearest,
}

impl Baseline {
    /// Shepard p = 1, 2, 3, 4 and nearest neighbour, in report order.
    pub const ALL: [Baseline; 5] = [
        Baseline::Shepard(1),
        Baseline::Shepard(2),
        Baseline::Shepard(3),
        Baseline::Shepard(4),
        Baseline::Nearest,
    ];

    /// Report name: `shepard_p2`, `nearest`.
    pub fn name(self) -> String {
        match self {
            Baseline::Shepard(p) => format!("shepard_p{p}"),
            Baseline::Nearest => "nearest".into(),
        }
    }

    /// The interpolant at every point of `xs`.
    pub fn predict<P: AsRef<[f64]>, Q: AsRef<[f64]>>(
        self,
        nodes: &[P],
        values: &[f64],
        xs: &[Q],
    ) -> Result<Vec<f64>> {
        xs.iter()
            .map(|x| match self {
                Baseline::Shepard(p) => shepard(nodes, values, x.as_ref(), p as f64, 0.0),
                Baseline::Nearest => nearest(nodes, values, x.as_ref()),
            })
            .collect()
    }
}
