//! Comparisons of configurations with their baselines over seeds: one table per quantity,
//! Welch's test per row and Holm's correction across the table's rows.

use serde::Serialize;

use super::holm::holm;
use super::welch::{NoTest, welch};
use super::{MeanStd, fmt_num};
use crate::quantity::Quantity;

/// Confidence level of every interval in the report.
pub const LEVEL: f64 = 0.95;
/// Family-wise significance level of the Holm-corrected tests.
pub const ALPHA: f64 = 0.05;

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
    /// Lower end of the 95% interval of the difference (Welch).
    pub ci_low: Option<f64>,
    /// Upper end of the 95% interval.
    pub ci_high: Option<f64>,
    /// Welch's two-sided p-value.
    pub p: Option<f64>,
    /// Holm-corrected p-value across the table's rows.
    pub p_holm: Option<f64>,
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

    /// `+0.012 [-0.004, +0.028]` (or the difference alone without an interval).
    pub fn diff_text(&self, digits: usize) -> String {
        let sign = |x: f64| if x >= 0.0 { format!("+{}", fmt_num(x, digits)) } else { fmt_num(x, digits) };
        match (self.ci_low, self.ci_high) {
            (Some(lo), Some(hi)) => format!("{} [{}, {}]", sign(self.diff), sign(lo), sign(hi)),
            _ => sign(self.diff),
        }
    }
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
    let mut rows: Vec<Comparison> = pairs.iter().filter_map(|(a, b)| compare(a, b)).collect();
    let adjusted = holm(&rows.iter().map(|r| r.p).collect::<Vec<_>>());
    for (r, p) in rows.iter_mut().zip(adjusted) {
        r.p_holm = p;
    }
    ComparisonTable {
        key: quantity.key.to_string(),
        header: quantity.header.to_string(),
        quantity: *quantity,
        rows,
    }
}

fn compare(a: &Arm, b: &Arm) -> Option<Comparison> {
    let (ma, mb) = (MeanStd::of(&a.values)?, MeanStd::of(&b.values)?);
    let test = welch(&a.values, &b.values, LEVEL);
    Some(Comparison {
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
        ci_low: test.ok().map(|w| w.ci_low),
        ci_high: test.ok().map(|w| w.ci_high),
        p: test.ok().map(|w| w.p),
        p_holm: None,
        no_test: test.err(),
    })
}
