//! Power of the two-sided t-test and the smallest difference a design could detect.
//!
//! The power follows statsmodels' `TTestIndPower` (two independent samples, pooled variance:
//! `df = n_a + n_b - 2`, noncentrality `d sqrt(n_a n_b / (n_a + n_b))`) and `TTestPower` (paired:
//! `df = n - 1`, noncentrality `d sqrt(n)`), for a standardised difference `d`:
//! `power = 1 - G(c; df, nc) + G(-c; df, nc)` with `c = F_t^-1(1 - alpha/2; df)` and `G` the
//! noncentral t distribution function.
//!
//! `G(x; v, nc) = P((Z + nc) / sqrt(V/v) <= x)` for `Z ~ N(0, 1)`, `V ~ chi^2_v`, is computed as
//! `int_0^inf Phi(x u / sqrt(v) - nc) f_chi(u; v) du` (conditioning on `U = sqrt(V)`, whose chi
//! density `f_chi(u; v) = u^(v-1) e^(-u^2/2) / (2^(v/2-1) Gamma(v/2))` is smooth for `v >= 1`),
//! by composite Simpson over `[max(0, sqrt(v) - 12), sqrt(v) + 12]`, where the chi density
//! lies (its standard deviation is below `1/sqrt(2)`): absolute error below 1e-8 in the tests
//! against scipy's `nct.cdf`.
//!
//! The minimum detectable effect is the `d` with `power(d) = target`, by bisection (power rises
//! with `d`), times the observed standard deviation.

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::gamma::ln_gamma;

use super::ttest::t_quantile;

/// Intervals of Simpson's rule over the chi density.
const SIMPSON_INTERVALS: usize = 4000;

/// The noncentral t distribution function `G(x; df, nc)`, `df >= 1` (see the module doc).
pub fn noncentral_t_cdf(x: f64, df: f64, nc: f64) -> f64 {
    let normal = Normal::standard();
    let centre = df.sqrt();
    let (lo, hi) = ((centre - 12.0).max(0.0), centre + 12.0);
    let ln_norm = (df / 2.0 - 1.0) * std::f64::consts::LN_2 + ln_gamma(df / 2.0);
    let density = |u: f64| {
        if u <= 0.0 {
            // u^(df-1) at 0: 1 for df = 1, 0 above.
            return if df == 1.0 { (-ln_norm).exp() } else { 0.0 };
        }
        ((df - 1.0) * u.ln() - u * u / 2.0 - ln_norm).exp()
    };
    let f = |u: f64| normal.cdf(x * u / centre - nc) * density(u);
    let n = SIMPSON_INTERVALS;
    let h = (hi - lo) / n as f64;
    let inner: f64 = (1..n).map(|i| f(lo + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 }).sum();
    ((f(lo) + inner + f(hi)) * h / 3.0).clamp(0.0, 1.0)
}

/// The t-test design behind a power calculation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Design {
    /// Two independent samples of these sizes (statsmodels `TTestIndPower`).
    Independent(usize, usize),
    /// `n` pairs (statsmodels `TTestPower`).
    Paired(usize),
}

impl Design {
    /// `(df, sqrt of the effective sample size)`; `None` without a degree of freedom.
    fn df_and_root_n(self) -> Option<(f64, f64)> {
        match self {
            Design::Independent(a, b) if a >= 1 && b >= 1 && a + b > 2 => {
                let (a, b) = (a as f64, b as f64);
                Some((a + b - 2.0, (a * b / (a + b)).sqrt()))
            }
            Design::Paired(n) if n >= 2 => Some(((n - 1) as f64, (n as f64).sqrt())),
            Design::Independent(..) | Design::Paired(_) => None,
        }
    }
}

/// Power of the two-sided level-`alpha` t-test of `design` at standardised difference `d`.
pub fn power(design: Design, d: f64, alpha: f64) -> Option<f64> {
    let (df, root_n) = design.df_and_root_n()?;
    let c = t_quantile(1.0 - alpha / 2.0, df);
    let nc = d * root_n;
    Some(1.0 - noncentral_t_cdf(c, df, nc) + noncentral_t_cdf(-c, df, nc))
}

/// The standardised difference `d` the two-sided level-`alpha` test of `design` detects with
/// probability `target` (e.g. 0.8), to about 1e-9; `None` without a degree of freedom.
pub fn detectable_effect(design: Design, alpha: f64, target: f64) -> Option<f64> {
    let p = |d: f64| power(design, d, alpha);
    let mut hi = 1.0;
    while p(hi)? < target {
        hi *= 2.0;
        if hi > 1e6 {
            return None;
        }
    }
    let mut lo = 0.0;
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if p(mid)? < target { lo = mid } else { hi = mid }
    }
    Some(0.5 * (lo + hi))
}
