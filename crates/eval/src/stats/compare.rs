//! Comparisons of configurations with their baselines over seeds: one table per quantity, each
//! row ending in one of three verdicts ([`Verdict`]).
//!
//! Per row: the paired t-test of per-seed differences when every seed is present once on both
//! sides, else Welch's test ([`super::ttest`]); its 95% interval (per comparison); TOST within
//! the quantity's margin `±delta` ([`super::tost`]); Fieller's 95% interval of the ratio of
//! means for quantities on a ratio scale with positive values ([`super::ratio`]); the smallest
//! difference the design detects with 80% power at the observed spread ([`super::power`]).
//! Holm's correction ([`super::holm`]) runs across the table's rows, separately for the tests of
//! difference and for the TOST p-values.

use std::collections::BTreeMap;

use serde::Serialize;

use super::holm::holm;
use super::power::{Design, detectable_effect};
use super::ratio::{Ratio, fieller};
use super::tost::tost;
use super::ttest::{NoTest, TTest, TestKind, moments, paired, t_quantile, welch};
use super::{MeanStd, fmt_num};
use crate::quantity::Quantity;

/// Confidence level of every interval in the report (per comparison).
pub const LEVEL: f64 = 0.95;
/// Family-wise significance level of the Holm-corrected tests (difference and TOST).
pub const ALPHA: f64 = 0.05;
/// Power at which the smallest detectable difference is given.
pub const POWER: f64 = 0.8;

/// The values over seeds of one configuration.
#[derive(Debug, Clone)]
pub struct Arm {
    /// The configuration's label.
    pub label: String,
    /// Run names, one per value.
    pub runs: Vec<String>,
    /// The runs' seeds, one per value (`None` where a run's config has none).
    pub seeds: Vec<Option<u64>>,
    /// One value per seed.
    pub values: Vec<f64>,
}

/// What a comparison concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Holm-corrected p of "no difference" below [`ALPHA`].
    Different,
    /// Holm-corrected TOST p below [`ALPHA`]: the difference lies within `±delta`.
    Equivalent,
    /// Neither: the seeds cannot tell (see the detectable difference).
    NotResolved,
    /// No test was possible (one seed on a side, or no variance).
    NoTest,
}

impl Verdict {
    /// `different` / `equivalent within ±δ` / `not resolved` / `no test possible`.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Different => "different",
            Verdict::Equivalent => "equivalent within ±δ",
            Verdict::NotResolved => "not resolved",
            Verdict::NoTest => "no test possible",
        }
    }
}

/// One configuration against its baseline, for one quantity.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The configuration.
    pub label: String,
    /// Its baseline configuration.
    pub baseline: String,
    /// The runs behind the configuration's numbers.
    pub runs: Vec<String>,
    /// The runs behind the baseline's numbers.
    pub baseline_runs: Vec<String>,
    /// Number of seeds of the configuration.
    pub n: usize,
    /// Mean over its seeds.
    pub mean: f64,
    /// Sample standard deviation over its seeds (`None` for one seed).
    pub std: Option<f64>,
    /// Number of seeds of the baseline.
    pub n_base: usize,
    /// Baseline mean.
    pub mean_base: f64,
    /// Baseline sample standard deviation.
    pub std_base: Option<f64>,
    /// `mean - mean_base`.
    pub diff: f64,
    /// The test made: paired (every seed on both sides) or Welch.
    pub test: Option<TestKind>,
    /// Its degrees of freedom.
    pub df: Option<f64>,
    /// Lower end of the 95% interval of the difference (per comparison).
    pub ci_low: Option<f64>,
    /// Upper end of that interval.
    pub ci_high: Option<f64>,
    /// Two-sided p of "no difference".
    pub p: Option<f64>,
    /// Holm-corrected p across the table's rows.
    pub p_holm: Option<f64>,
    /// The equivalence margin in the quantity's unit (`±delta`).
    pub delta: Option<f64>,
    /// TOST p-value of "the difference is at least `delta`".
    pub p_tost: Option<f64>,
    /// Holm-corrected TOST p across the table's rows.
    pub p_tost_holm: Option<f64>,
    /// `mean / mean_base` with Fieller's 95% interval (ratio-scale quantities, positive values).
    pub ratio: Option<Ratio>,
    /// The smallest difference this design detects with 80% power at the observed spread
    /// (two-sided, at alpha = 0.05 / rows, the level the first Holm step needs).
    pub detectable: Option<f64>,
    /// What the comparison concludes.
    pub verdict: Verdict,
    /// Why no test was made, when none was.
    pub no_test: Option<NoTest>,
}

impl Comparison {
    /// The 95% interval excludes zero (the uncorrected test rejects at 5%).
    pub fn excludes_zero(&self) -> bool {
        matches!((self.ci_low, self.ci_high), (Some(lo), Some(hi)) if lo > 0.0 || hi < 0.0)
    }

    /// The Holm-corrected test rejects "no difference" at [`ALPHA`].
    pub fn significant(&self) -> bool {
        self.p_holm.is_some_and(|p| p < ALPHA)
    }

    /// The Holm-corrected TOST rejects "a difference of at least delta" at [`ALPHA`].
    pub fn within_margin(&self) -> bool {
        self.p_tost_holm.is_some_and(|p| p < ALPHA)
    }

    /// `+0.012 [-0.004, +0.028]` (or the difference alone without an interval).
    pub fn diff_text(&self, digits: usize) -> String {
        match (self.ci_low, self.ci_high) {
            (Some(lo), Some(hi)) => {
                format!("{} [{}, {}]", signed(self.diff, digits), signed(lo, digits), signed(hi, digits))
            }
            _ => signed(self.diff, digits),
        }
    }
}

/// `+x` or `-x` with `digits` decimals.
pub fn signed(x: f64, digits: usize) -> String {
    if x >= 0.0 { format!("+{}", fmt_num(x, digits)) } else { fmt_num(x, digits) }
}

/// Comparisons of one quantity, with Holm's correction across its rows.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonTable {
    /// The quantity's key (e.g. `final_val_loss`).
    pub key: String,
    /// Its header in the report.
    pub header: String,
    /// The quantity's row of the quantity table.
    pub quantity: Quantity,
    /// One row per configuration that has a baseline.
    pub rows: Vec<Comparison>,
}

/// Compares each `(arm, baseline)` pair for `quantity`; rows without a value on either side
/// are left out.
pub fn comparison_table(quantity: &Quantity, pairs: &[(Arm, Arm)]) -> ComparisonTable {
    let tested: Vec<(Comparison, Option<TTest>, Option<f64>)> =
        pairs.iter().filter_map(|(a, b)| compare(quantity, a, b)).collect();
    let m = tested.iter().filter(|r| r.1.is_some()).count().max(1);
    let mut rows: Vec<Comparison> = Vec::new();
    for (mut c, test, sd) in tested {
        if let (Some(t), Some(sd)) = (test, sd) {
            let design = match t.kind {
                TestKind::Paired => Design::Paired(c.n),
                TestKind::Welch => Design::Independent(c.n, c.n_base),
            };
            c.detectable = detectable_effect(design, ALPHA / m as f64, POWER).map(|d| d * sd);
        }
        rows.push(c);
    }
    let p_holm = holm(&rows.iter().map(|r| r.p).collect::<Vec<_>>());
    let tost_holm = holm(&rows.iter().map(|r| r.p_tost).collect::<Vec<_>>());
    for ((r, p), pt) in rows.iter_mut().zip(p_holm).zip(tost_holm) {
        r.p_holm = p;
        r.p_tost_holm = pt;
        r.verdict = match r.no_test {
            Some(_) => Verdict::NoTest,
            None if r.significant() => Verdict::Different,
            None if r.within_margin() => Verdict::Equivalent,
            None => Verdict::NotResolved,
        };
    }
    ComparisonTable {
        key: quantity.key.to_string(),
        header: quantity.header.to_string(),
        quantity: *quantity,
        rows,
    }
}

/// The seeds of `a` and `b` in one order when every value has a seed, each seed appears once
/// on each side and both sides have the same seeds: `(a's values, b's values)` aligned by seed.
fn pairs_by_seed(a: &Arm, b: &Arm) -> Option<(Vec<f64>, Vec<f64>)> {
    let side = |arm: &Arm| -> Option<BTreeMap<u64, f64>> {
        let mut m = BTreeMap::new();
        for (s, v) in arm.seeds.iter().zip(&arm.values) {
            if m.insert((*s)?, *v).is_some() {
                return None;
            }
        }
        (m.len() == arm.values.len()).then_some(m)
    };
    let (sa, sb) = (side(a)?, side(b)?);
    if sa.len() < 2 || !sa.keys().eq(sb.keys()) {
        return None;
    }
    Some((sa.into_values().collect(), sb.into_values().collect()))
}

/// The pooled standard deviation of two samples,
/// `sqrt(((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2))` (statsmodels' effect size).
fn pooled_sd(a: &Arm, b: &Arm) -> f64 {
    let (na, _, va) = moments(&a.values);
    let (nb, _, vb) = moments(&b.values);
    (((na as f64 - 1.0) * va + (nb as f64 - 1.0) * vb) / ((na + nb) as f64 - 2.0)).sqrt()
}

/// The row before Holm's correction, with its test and the standard deviation its detectable
/// difference scales with (of the per-seed differences when paired, pooled otherwise).
fn compare(q: &Quantity, a: &Arm, b: &Arm) -> Option<(Comparison, Option<TTest>, Option<f64>)> {
    let (ma, mb) = (MeanStd::of(&a.values)?, MeanStd::of(&b.values)?);
    let by_seed = pairs_by_seed(a, b);
    let (test, sd, cov) = match &by_seed {
        Some((xa, xb)) => {
            let d: Vec<f64> = xa.iter().zip(xb).map(|(x, y)| x - y).collect();
            let (n, _, vd) = moments(&d);
            let (_, mxa, _) = moments(xa);
            let (_, mxb, _) = moments(xb);
            let cov = xa.iter().zip(xb).map(|(x, y)| (x - mxa) * (y - mxb)).sum::<f64>()
                / ((n - 1) as f64 * n as f64);
            match paired(xa, xb, LEVEL) {
                // Per-seed differences without spread (identical runs) but samples with it:
                // Welch's test of the samples.
                Err(NoTest::NoVariance) => (welch(&a.values, &b.values, LEVEL), pooled_sd(a, b), 0.0),
                test => (test, vd.sqrt(), cov),
            }
        }
        None => (welch(&a.values, &b.values, LEVEL), pooled_sd(a, b), 0.0),
    };
    let delta = q.margin.map(|m| m.delta(mb.mean));
    let ok = test.ok();
    let ratio =
        ok.filter(|_| q.ratio_scale() && a.values.iter().chain(&b.values).all(|x| *x > 0.0)).and_then(|t| {
            let va = ma.std.map_or(f64::NAN, |s| s * s / ma.n as f64);
            let vb = mb.std.map_or(f64::NAN, |s| s * s / mb.n as f64);
            fieller(ma.mean, mb.mean, va, vb, cov, t_quantile(0.5 + LEVEL / 2.0, t.df))
        });
    let c = Comparison {
        label: a.label.clone(),
        baseline: b.label.clone(),
        runs: a.runs.clone(),
        baseline_runs: b.runs.clone(),
        n: ma.n,
        mean: ma.mean,
        std: ma.std,
        n_base: mb.n,
        mean_base: mb.mean,
        std_base: mb.std,
        diff: ma.mean - mb.mean,
        test: ok.map(|t| t.kind),
        df: ok.map(|t| t.df),
        ci_low: ok.map(|t| t.ci_low),
        ci_high: ok.map(|t| t.ci_high),
        p: ok.map(|t| t.p),
        p_holm: None,
        delta,
        p_tost: ok.zip(delta).and_then(|(t, d)| tost(&t, d)).map(|t| t.p),
        p_tost_holm: None,
        ratio,
        detectable: None,
        verdict: Verdict::NoTest,
        no_test: test.err(),
    };
    let sd = (sd.is_finite() && sd > 0.0).then_some(sd);
    Some((c, ok, sd))
}
