//! Welch's unequal-variance t-test and the confidence interval of a difference of two means.
//!
//! For samples `a` (n_a values) and `b` (n_b values) with sample variances `s_a^2`, `s_b^2`:
//! `diff = mean(a) - mean(b)`, `se = sqrt(s_a^2/n_a + s_b^2/n_b)`, `t = diff / se`, and the
//! Welch–Satterthwaite degrees of freedom
//! `df = se^4 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))`
//! (Welch 1947, Biometrika 34; Satterthwaite 1946). Two-sided `p = 2 (1 - F_t(|t|; df))` and the
//! interval `diff ± F_t^-1((1+level)/2; df) se`, with Student's t from `statrs`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The outcome of Welch's test of `mean(a) - mean(b)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Welch {
    /// `mean(a) - mean(b)`.
    pub diff: f64,
    /// Standard error of the difference.
    pub se: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// `diff / se`.
    pub t: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Lower end of the confidence interval.
    pub ci_low: f64,
    /// Upper end of the confidence interval.
    pub ci_high: f64,
}

/// Why no test could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoTest {
    /// A sample has fewer than two values: no variance estimate.
    TooFewSeeds,
    /// Both samples have zero variance: the t statistic is undefined.
    NoVariance,
}

impl NoTest {
    /// Short explanation for the report.
    pub fn text(self) -> &'static str {
        match self {
            NoTest::TooFewSeeds => "fewer than 2 seeds on a side: no test possible",
            NoTest::NoVariance => "no variance within either configuration: no test possible",
        }
    }
}

/// Welch's test of `mean(a) - mean(b)` with a `level` (e.g. 0.95) confidence interval.
/// Non-finite values are dropped first.
pub fn welch(a: &[f64], b: &[f64], level: f64) -> Result<Welch, NoTest> {
    let (na, ma, va) = moments(a);
    let (nb, mb, vb) = moments(b);
    if na < 2 || nb < 2 {
        return Err(NoTest::TooFewSeeds);
    }
    let (wa, wb) = (va / na as f64, vb / nb as f64);
    let se2 = wa + wb;
    if se2.is_nan() || se2 <= 0.0 {
        return Err(NoTest::NoVariance);
    }
    let se = se2.sqrt();
    let df = se2 * se2 / (wa * wa / (na - 1) as f64 + wb * wb / (nb - 1) as f64);
    let diff = ma - mb;
    let t = diff / se;
    // df > 0 and finite here, so the distribution always exists.
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|_| NoTest::NoVariance)?;
    let p = (2.0 * (1.0 - dist.cdf(t.abs()))).clamp(0.0, 1.0);
    let q = dist.inverse_cdf(0.5 + level / 2.0);
    Ok(Welch { diff, se, df, t, p, ci_low: diff - q * se, ci_high: diff + q * se })
}

/// `(n, mean, sample variance)` of the finite values.
fn moments(xs: &[f64]) -> (usize, f64, f64) {
    let xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    let n = xs.len();
    if n == 0 {
        return (0, f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    (n, mean, var)
}
