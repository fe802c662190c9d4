//! Student's t-tests of a difference of two means: Welch's unequal-variance test of two
//! independent samples, and the paired test of per-seed differences.
//!
//! Welch (Welch 1947, Biometrika 34; Satterthwaite 1946): for samples `a` (n_a values) and `b`
//! (n_b values) with sample variances `s_a^2`, `s_b^2`, `diff = mean(a) - mean(b)`,
//! `se = sqrt(s_a^2/n_a + s_b^2/n_b)` and
//! `df = se^4 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))`.
//!
//! Paired (Student 1908; scipy's `ttest_rel`): for `n` pairs with differences `d_i = a_i - b_i`,
//! `diff = mean(d)`, `se = sd(d)/sqrt(n)`, `df = n - 1`.
//!
//! Both: `t = diff / se`, two-sided `p = 2 (1 - F_t(|t|; df))`, the interval
//! `diff ± F_t^-1((1+level)/2; df) se`, with Student's t from `statrs`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Which t-test a comparison used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    /// Welch's test of two independent samples.
    Welch,
    /// The paired t-test of per-seed differences (every seed on both sides).
    Paired,
}

impl TestKind {
    /// `Welch` / `paired t`, as the report names the test.
    pub fn text(self) -> &'static str {
        match self {
            TestKind::Welch => "Welch",
            TestKind::Paired => "paired t",
        }
    }
}

/// The outcome of a t-test of `mean(a) - mean(b)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TTest {
    /// Which test.
    pub kind: TestKind,
    /// `mean(a) - mean(b)` (the mean per-seed difference when paired: the same number).
    pub diff: f64,
    /// Standard error of the difference.
    pub se: f64,
    /// Degrees of freedom (Welch–Satterthwaite, or `n - 1` paired).
    pub df: f64,
    /// `diff / se`.
    pub t: f64,
    /// Two-sided p-value of "no difference".
    pub p: f64,
    /// Lower end of the confidence interval.
    pub ci_low: f64,
    /// Upper end of the confidence interval.
    pub ci_high: f64,
}

impl TTest {
    /// The `level` two-sided interval of the difference, e.g. 0.90 for TOST's interval.
    pub fn interval(&self, level: f64) -> (f64, f64) {
        let q = t_quantile(0.5 + level / 2.0, self.df);
        (self.diff - q * self.se, self.diff + q * self.se)
    }
}

/// Why no test could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoTest {
    /// A sample has fewer than two values: no variance estimate.
    TooFewSeeds,
    /// Both samples (or the per-seed differences) have zero variance: t is undefined.
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
pub fn welch(a: &[f64], b: &[f64], level: f64) -> Result<TTest, NoTest> {
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
    let df = se2 * se2 / (wa * wa / (na - 1) as f64 + wb * wb / (nb - 1) as f64);
    finish(TestKind::Welch, ma - mb, se2.sqrt(), df, level)
}

/// The paired t-test of `a_i - b_i` (pairs with a non-finite side dropped) with a `level`
/// confidence interval; `a` and `b` are aligned (the same seed at the same index).
pub fn paired(a: &[f64], b: &[f64], level: f64) -> Result<TTest, NoTest> {
    let d: Vec<f64> =
        a.iter().zip(b).filter(|(x, y)| x.is_finite() && y.is_finite()).map(|(x, y)| x - y).collect();
    let (n, md, vd) = moments(&d);
    if n < 2 {
        return Err(NoTest::TooFewSeeds);
    }
    let se2 = vd / n as f64;
    if se2.is_nan() || se2 <= 0.0 {
        return Err(NoTest::NoVariance);
    }
    finish(TestKind::Paired, md, se2.sqrt(), (n - 1) as f64, level)
}

fn finish(kind: TestKind, diff: f64, se: f64, df: f64, level: f64) -> Result<TTest, NoTest> {
    let t = diff / se;
    // df >= 1 and finite here, so the distribution always exists.
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|_| NoTest::NoVariance)?;
    let p = (2.0 * dist.cdf(-t.abs())).clamp(0.0, 1.0);
    let q = dist.inverse_cdf(0.5 + level / 2.0);
    Ok(TTest { kind, diff, se, df, t, p, ci_low: diff - q * se, ci_high: diff + q * se })
}

/// The `prob` quantile of Student's t with `df` degrees of freedom (`df > 0`).
pub fn t_quantile(prob: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| d.inverse_cdf(prob))
}

/// `F_t(x; df)`, Student's t distribution function (`df > 0`).
pub fn t_cdf(x: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| d.cdf(x))
}

/// `(n, mean, sample variance)` of the finite values.
pub fn moments(xs: &[f64]) -> (usize, f64, f64) {
    let xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    let n = xs.len();
    if n == 0 {
        return (0, f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    (n, mean, var)
}
