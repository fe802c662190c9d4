//! Schuirmann's two one-sided tests (TOST) of equivalence within `±delta` (Schuirmann 1987,
//! J. Pharmacokin. Biopharm. 15, 657–680), on a t-test's difference, standard error and degrees
//! of freedom (Welch or paired, as statsmodels' `ttost_ind(usevar="unequal")` and
//! `ttost_paired`).
//!
//! `t_low = (diff + delta) / se` tests `H0: diff <= -delta` with `p_low = 1 - F_t(t_low; df)`;
//! `t_high = (diff - delta) / se` tests `H0: diff >= +delta` with `p_high = F_t(t_high; df)`.
//! The TOST p-value is `max(p_low, p_high)`; it is below `alpha` exactly when the `1 - 2 alpha`
//! interval of the difference lies inside `(-delta, +delta)`.

use serde::Serialize;

use super::ttest::{TTest, t_cdf};

/// The outcome of TOST.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tost {
    /// The margin `delta > 0` (in the quantity's unit).
    pub delta: f64,
    /// p of `H0: diff <= -delta`.
    pub p_low: f64,
    /// p of `H0: diff >= +delta`.
    pub p_high: f64,
    /// `max(p_low, p_high)`.
    pub p: f64,
}

/// TOST of `test`'s difference within `±delta`; `None` unless `delta` is positive and finite.
pub fn tost(test: &TTest, delta: f64) -> Option<Tost> {
    if !(delta.is_finite() && delta > 0.0) {
        return None;
    }
    let p_low = 1.0 - t_cdf((test.diff + delta) / test.se, test.df);
    let p_high = t_cdf((test.diff - delta) / test.se, test.df);
    Some(Tost { delta, p_low, p_high, p: p_low.max(p_high) })
}
