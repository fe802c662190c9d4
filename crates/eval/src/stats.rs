//! Small statistics: mean and sample standard deviation, exponential smoothing; in the
//! submodules the t-tests (Welch, paired), TOST, power, Fieller's ratio interval, Holm's
//! correction, the comparisons with a baseline that end in a verdict, and the scaling-law fits
//! over a ladder of model sizes.

pub mod compare;
pub mod holm;
pub mod power;
pub mod ratio;
pub mod scaling;
pub mod tost;
pub mod ttest;

use serde::Serialize;

/// Mean and sample standard deviation of a set of numbers (over seeds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStd {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation `sqrt(sum (x - mean)^2 / (n - 1))`; `None` for one value.
    pub std: Option<f64>,
    /// Number of values.
    pub n: usize,
}

impl MeanStd {
    /// Summarises the finite values of `xs`; `None` if there is none.
    pub fn of(xs: &[f64]) -> Option<Self> {
        let xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let std =
            (n > 1).then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        Some(Self { mean, std, n })
    }

    /// `mean ± std` with `digits` significant decimals (just the mean for one value).
    pub fn text(&self, digits: usize) -> String {
        match self.std {
            Some(s) => format!("{} ± {}", fmt_num(self.mean, digits), fmt_num(s, digits)),
            None => fmt_num(self.mean, digits),
        }
    }
}

/// A number with `digits` decimals, switching to scientific notation for very small or large ones.
pub fn fmt_num(x: f64, digits: usize) -> String {
    let a = x.abs();
    if x == 0.0 || (1e-3..1e6).contains(&a) {
        format!("{x:.digits$}")
    } else if !x.is_finite() {
        format!("{x}")
    } else {
        format!("{x:.digits$e}")
    }
}

/// A p-value as text (`< 0.001` below that).
pub fn p_text(p: f64) -> String {
    if p < 0.001 { "< 0.001".into() } else { format!("{p:.3}") }
}

/// Mean of the values of each layer, for `(layer, value)` items (NaN for a layer without one).
pub fn per_layer_mean(items: impl Iterator<Item = (usize, f64)>) -> Vec<f64> {
    let mut sums: Vec<(f64, usize)> = Vec::new();
    for (layer, v) in items {
        if sums.len() <= layer {
            sums.resize(layer + 1, (0.0, 0));
        }
        sums[layer].0 += v;
        sums[layer].1 += 1;
    }
    sums.into_iter().map(|(s, n)| if n > 0 { s / n as f64 } else { f64::NAN }).collect()
}

/// Exponential moving average `m_i = a m_{i-1} + (1 - a) x_i`, bias-corrected like Adam's moments.
pub fn ema(xs: &[f64], a: f64) -> Vec<f64> {
    let mut m = 0.0;
    let mut w = 0.0;
    xs.iter()
        .map(|x| {
            m = a * m + (1.0 - a) * x;
            w = a * w + (1.0 - a);
            m / w
        })
        .collect()
}
