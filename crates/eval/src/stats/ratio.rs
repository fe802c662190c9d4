//! Fieller's confidence interval for a ratio of means (Fieller 1954, J. R. Statist. Soc. B 16,
//! 175–185).
//!
//! For estimates `a` and `b` of two means with variances `v_a`, `v_b`, covariance `c` and a t
//! quantile `q`, the interval is the set of `theta` with
//! `(a - theta b)^2 <= q^2 (v_a - 2 theta c + theta^2 v_b)`, that is
//! `A theta^2 - 2 B theta + C <= 0` with `A = b^2 - q^2 v_b`, `B = a b - q^2 c`,
//! `C = a^2 - q^2 v_a`: `theta = (B ± sqrt(B^2 - A C)) / A`. It is bounded only when `A > 0`
//! (the denominator's mean is clearly away from zero, `b^2 / v_b > q^2`).

use serde::Serialize;

/// A ratio of means with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    /// `a / b`.
    pub ratio: f64,
    /// Lower end of Fieller's interval.
    pub low: f64,
    /// Upper end of Fieller's interval.
    pub high: f64,
}

/// Fieller's interval of `a / b` (see the module doc); `None` when it is unbounded or an input
/// is not finite.
pub fn fieller(a: f64, b: f64, var_a: f64, var_b: f64, cov: f64, q: f64) -> Option<Ratio> {
    if ![a, b, var_a, var_b, cov, q].iter().all(|x| x.is_finite()) || b == 0.0 {
        return None;
    }
    let q2 = q * q;
    let big_a = b * b - q2 * var_b;
    let big_b = a * b - q2 * cov;
    let big_c = a * a - q2 * var_a;
    let disc = big_b * big_b - big_a * big_c;
    if big_a <= 0.0 || disc < 0.0 {
        return None;
    }
    let root = disc.sqrt();
    Some(Ratio { ratio: a / b, low: (big_b - root) / big_a, high: (big_b + root) / big_a })
}
