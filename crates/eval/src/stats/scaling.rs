//! Scaling-law fits over a ladder of model sizes: does a difference hold as models grow?
//!
//! - [`fit`]: the saturating power law `L(C) = E + A (C / C_ref)^(-alpha)` of the final
//!   validation loss `L` (nats) in training compute `C` (FLOPs) — the form of Kaplan et al. 2020,
//!   "Scaling laws for neural language models", with the irreducible term `E` of Hoffmann et al.
//!   2022, "Training compute-optimal large language models" — fitted by least squares over every
//!   seed's point, with the log-linear `L = a + b log10(C / C_ref)` as the fallback when the floor
//!   `E` is not identified.
//! - [`gap_trend`]: how the gap between a configuration and its baseline moves per decade of `C`.
//! - [`compute_multiplier`]: how much more compute the baseline needs to reach a configuration's
//!   loss.
//!
//! Every interval is a 95% (or 90%) percentile bootstrap interval over seeds (Efron & Tibshirani
//! 1993, "An introduction to the bootstrap", ch. 13): each rung's seeds are resampled with
//! replacement, jointly on both sides of a rung whose two ladders ran the same seeds. With few
//! seeds these intervals are too narrow: resampling `n` seeds keeps `(n - 1) / n` of the
//! variance, and in 20 planted ladders (5 rungs, 3 seeds, noise sd 0.005 nats) the 95% intervals
//! held the planted `E`, `A`, `alpha` 16, 15 and 16 times.

use argmin::core::{CostFunction, Executor, State};
use argmin::solver::brent::BrentOpt;
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use statrs::statistics::{Data, OrderStatistics};

/// Two computes within this relative distance are the same rung (1%).
pub const SAME_COMPUTE: f64 = 0.01;

/// The floor `E` counts as at an edge of `[0, min L)` within this fraction of the loss span
/// `max L - min L` (over every seed's point) of either edge: 1%.
pub const EDGE: f64 = 0.01;

/// One size of a ladder: its training compute and the final validation losses of its seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Rung {
    /// Training compute `C` in FLOPs (> 0).
    pub compute: f64,
    /// `(seed, final validation loss in nats)`, one per run; the seed pairs runs across ladders.
    pub losses: Vec<(Option<u64>, f64)>,
}

/// A configuration's rungs, in any order (sorted by compute inside).
#[derive(Debug, Clone, Serialize)]
pub struct Ladder {
    /// The sizes, one rung each (computes differ by more than [`SAME_COMPUTE`]).
    pub rungs: Vec<Rung>,
}

/// The percentile bootstrap's settings (Efron & Tibshirani 1993).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bootstrap {
    /// Number of resamples (default 1000).
    pub replicates: usize,
    /// Seed of the `ChaCha8Rng` that draws them: a given seed gives the same intervals.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self { replicates: 1000, seed: 2020 }
    }
}

/// A ladder's scaling fit of final validation loss (nats) on training compute (FLOPs).
#[derive(Debug, Clone, Serialize)]
pub enum Fit {
    /// `L(C) = e + a (C / c_ref)^(-alpha)` (Kaplan et al. 2020; Hoffmann et al. 2022), least
    /// squares in `L` over every seed's point, the floor `e` profiled out.
    PowerLaw {
        /// Irreducible loss `E`, nats (the floor the loss approaches as `C` grows).
        e: f64,
        /// Reducible loss at `c_ref`, nats: `A` of `A (C / c_ref)^(-alpha)`.
        a: f64,
        /// Exponent `alpha` (> 0): the reducible loss falls by `10^(-alpha)` per decade of `C`.
        alpha: f64,
        /// Reference compute, FLOPs: the smallest rung's.
        c_ref: f64,
        /// 95% percentile bootstrap interval of `e`, nats.
        e_ci: [f64; 2],
        /// 95% percentile bootstrap interval of `a`, nats.
        a_ci: [f64; 2],
        /// 95% percentile bootstrap interval of `alpha`.
        alpha_ci: [f64; 2],
        /// Root mean square residual over every seed's point, nats.
        rmse: f64,
    },
    /// `L(C) = intercept + slope log10(C / c_ref)`, least squares over every seed's point.
    LogLinear {
        /// Loss at `c_ref`, nats.
        intercept: f64,
        /// Nats per decade of `C` (negative: the loss falls).
        slope: f64,
        /// Reference compute, FLOPs: the smallest rung's.
        c_ref: f64,
        /// 95% percentile bootstrap interval of `intercept`, nats.
        intercept_ci: [f64; 2],
        /// 95% percentile bootstrap interval of `slope`, nats per decade.
        slope_ci: [f64; 2],
        /// Root mean square residual over every seed's point, nats.
        rmse: f64,
        /// Why the power law's floor was not identified, in words.
        why_not_power_law: String,
    },
    /// No fit to extrapolate from.
    Poor {
        /// Why, in words ("2 sizes: a fit needs at least 3", "the mean loss rises ...").
        why: String,
        /// Descriptive least-squares slope of `L` on `log10 C`, nats per decade (not for
        /// extrapolation); `None` without two valid rungs.
        slope: Option<f64>,
    },
}

impl Fit {
    /// The fitted loss (nats) at `compute` FLOPs; `None` for [`Fit::Poor`] or a compute that is
    /// not finite and positive.
    pub fn predict(&self, compute: f64) -> Option<f64> {
        if !(compute.is_finite() && compute > 0.0) {
            return None;
        }
        match self {
            Fit::PowerLaw { e, a, alpha, c_ref, .. } => Some(e + a * (compute / c_ref).powf(-alpha)),
            Fit::LogLinear { intercept, slope, c_ref, .. } => {
                Some(intercept + slope * (compute / c_ref).log10())
            }
            Fit::Poor { .. } => None,
        }
    }

    /// The compute (FLOPs) at which the fit reaches `loss` nats, the inverse of
    /// [`Fit::predict`]: `c_ref ((loss - e) / a)^(-1 / alpha)` for the power law,
    /// `c_ref 10^((loss - intercept) / slope)` for the log-linear fit. `None` at or below the
    /// power law's floor `e`, for a log-linear slope that is not negative, for [`Fit::Poor`], or
    /// where the result is not finite.
    pub fn compute_to_reach(&self, loss: f64) -> Option<f64> {
        if !loss.is_finite() {
            return None;
        }
        match self {
            Fit::PowerLaw { e, a, alpha, c_ref, .. } => {
                PowerParams { e: *e, a: *a, alpha: *alpha, rmse: 0.0 }.reach(loss, *c_ref)
            }
            Fit::LogLinear { intercept, slope, c_ref, .. } => {
                LineParams { intercept: *intercept, slope: *slope, rmse: 0.0 }.reach(loss, *c_ref)
            }
            Fit::Poor { .. } => None,
        }
    }

    /// `"power law"`, `"log-linear"` or `"poor"`.
    pub fn form(&self) -> &'static str {
        match self {
            Fit::PowerLaw { .. } => "power law",
            Fit::LogLinear { .. } => "log-linear",
            Fit::Poor { .. } => "poor",
        }
    }
}

/// The gap between a configuration and its baseline at one shared rung.
#[derive(Debug, Clone, Serialize)]
pub struct GapAt {
    /// Training compute, FLOPs (the baseline's).
    pub compute: f64,
    /// `mean(ladder) - mean(baseline)` of the final validation loss, nats (negative: the
    /// configuration is better).
    pub gap: f64,
    /// 95% percentile bootstrap interval of `gap`, nats.
    pub gap_ci: [f64; 2],
}

/// How the gap to the baseline moves with compute.
#[derive(Debug, Clone, Serialize)]
pub struct GapTrend {
    /// The shared rungs, by increasing compute.
    pub rungs: Vec<GapAt>,
    /// Least-squares slope of `gap` on `log10 C`, nats per decade of compute.
    pub slope: f64,
    /// 95% percentile bootstrap interval of `slope`.
    pub slope_ci: [f64; 2],
    /// 90% percentile bootstrap interval of `slope` (for [`Trend::Steady`], as in TOST).
    pub slope_ci90: [f64; 2],
    /// Whether every shared rung was resampled by seed pairs (both sides ran the same seeds).
    pub paired: bool,
}

/// Which way the gap moves as compute grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Trend {
    /// The 95% slope interval excludes 0 and the gap moves toward 0.
    Shrinking,
    /// The 95% slope interval excludes 0 and the gap moves away from 0.
    Growing,
    /// The 90% slope interval lies inside `±margin` nats per decade.
    Steady,
    /// Neither.
    NotResolved,
}

impl GapTrend {
    /// The trend at `margin` nats per decade: growing or shrinking first (the 95% slope interval
    /// excludes 0; the direction relative to the sign of the gap at the largest shared rung, a
    /// gap of exactly 0 there counting as growing), else steady (the 90% interval inside
    /// `±margin`), else not resolved — the precedence of [`super::compare::Verdict`].
    pub fn direction(&self, margin: f64) -> Trend {
        let [lo, hi] = self.slope_ci;
        if lo > 0.0 || hi < 0.0 {
            let last = self.rungs.last().map_or(0.0, |r| r.gap);
            return if last * self.slope < 0.0 { Trend::Shrinking } else { Trend::Growing };
        }
        let [lo90, hi90] = self.slope_ci90;
        if -margin < lo90 && hi90 < margin { Trend::Steady } else { Trend::NotResolved }
    }
}

/// How much compute the baseline needs to reach a configuration's loss.
#[derive(Debug, Clone, Serialize)]
pub struct Multiplier {
    /// `C* / C_m`: the baseline's compute to reach `loss` over the configuration's `compute`
    /// (> 1: the configuration is ahead).
    pub value: f64,
    /// 95% percentile bootstrap interval of `value` over the replicates where `C*` is defined.
    pub ci: [f64; 2],
    /// Whether `C*` lies outside the baseline's measured compute range.
    pub extrapolated: bool,
    /// The baseline fit's form: `"power law"` or `"log-linear"`.
    pub form: &'static str,
    /// The configuration's largest compute `C_m`, FLOPs.
    pub compute: f64,
    /// The configuration's mean loss at `C_m`, nats.
    pub loss: f64,
    /// `C*`: the baseline's compute to reach `loss`, FLOPs.
    pub baseline_compute: f64,
    /// Bootstrap replicates left out because `C*` was undefined there (the replicate's loss at
    /// or below its refitted floor, or a refit without a solution).
    pub undefined_replicates: usize,
}

/// Fits `ladder`'s final validation loss against compute (see [`Fit`] and the module doc).
///
/// [`Fit::Poor`] for fewer than 3 rungs, rung means that do not fall strictly with compute, or
/// invalid input (a compute or loss that is not finite, a compute not positive, a rung without
/// losses, two rungs within [`SAME_COMPUTE`], no bootstrap replicates). The power law's floor `E`
/// is profiled: for fixed `E` in `[0, min L)`, `ln(L - E) = ln A - alpha ln(C / C_ref)` is linear
/// least squares (nalgebra's SVD), and Brent's method (argmin's `BrentOpt`, bracketed by a scan
/// of 64 points uniform in `ln(min L - E)`) minimises the sum of squares in `L` over `E`. `E` is
/// identified when it lies more than [`EDGE`] of the loss span from either end and `alpha > 0`;
/// otherwise the log-linear fit, with the reason. The bootstrap refits the chosen form.
pub fn fit(ladder: &Ladder, boot: &Bootstrap) -> Fit {
    let rungs = match validate(ladder) {
        Ok(r) => r,
        Err(why) => return Fit::Poor { why, slope: None },
    };
    if boot.replicates == 0 {
        return Fit::Poor { why: "no bootstrap replicates asked for".into(), slope: None };
    }
    let c_ref = rungs[0].compute;
    let slope = fit_line(&points(&rungs, c_ref)).map(|l| l.slope);
    if rungs.len() < 3 {
        return Fit::Poor { why: format!("{} sizes: a fit needs at least 3", rungs.len()), slope };
    }
    if let Some(why) = not_decreasing(&rungs) {
        return Fit::Poor { why, slope };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(boot.seed);
    match form_of(&rungs, c_ref) {
        Ok(p) => {
            let reps: Vec<PowerParams> = (0..boot.replicates)
                .filter_map(|_| fit_power(&points(&resample(&rungs, &mut rng), c_ref)))
                .collect();
            Fit::PowerLaw {
                e: p.e,
                a: p.a,
                alpha: p.alpha,
                c_ref,
                e_ci: interval(reps.iter().map(|r| r.e), 0.95),
                a_ci: interval(reps.iter().map(|r| r.a), 0.95),
                alpha_ci: interval(reps.iter().map(|r| r.alpha), 0.95),
                rmse: p.rmse,
            }
        }
        Err(why) => {
            let Some(l) = fit_line(&points(&rungs, c_ref)) else {
                return Fit::Poor { why: "the least-squares line has no unique solution".into(), slope };
            };
            let reps: Vec<LineParams> = (0..boot.replicates)
                .filter_map(|_| fit_line(&points(&resample(&rungs, &mut rng), c_ref)))
                .collect();
            Fit::LogLinear {
                intercept: l.intercept,
                slope: l.slope,
                c_ref,
                intercept_ci: interval(reps.iter().map(|r| r.intercept), 0.95),
                slope_ci: interval(reps.iter().map(|r| r.slope), 0.95),
                rmse: l.rmse,
                why_not_power_law: why,
            }
        }
    }
}

/// The gap `mean(ladder) - mean(baseline)` (nats) at each rung both ladders share (computes
/// within [`SAME_COMPUTE`]; the baseline's compute is reported) and its least-squares slope on
/// `log10 C` (nats per decade), with percentile bootstrap intervals (paired by seed on a rung
/// where both sides ran the same seeds, else each side resampled on its own). `None` with fewer
/// than 2 shared rungs, invalid input (see [`fit`]) or no bootstrap replicates.
pub fn gap_trend(ladder: &Ladder, baseline: &Ladder, boot: &Bootstrap) -> Option<GapTrend> {
    let a = validate(ladder).ok()?;
    let b = validate(baseline).ok()?;
    let links = links(&a, &b);
    if links.len() < 2 || boot.replicates == 0 {
        return None;
    }
    let gaps = |a: &[RungData], b: &[RungData]| -> Vec<f64> {
        links.iter().map(|l| mean(&a[l.a].losses) - mean(&b[l.b].losses)).collect()
    };
    let x: Vec<f64> = links.iter().map(|l| b[l.b].compute.log10()).collect();
    let gap = gaps(&a, &b);
    let slope = line(&x, &gap)?.1;
    let mut rng = ChaCha8Rng::seed_from_u64(boot.seed);
    let mut rung_reps = vec![Vec::with_capacity(boot.replicates); links.len()];
    let mut slope_reps = Vec::with_capacity(boot.replicates);
    for _ in 0..boot.replicates {
        let (ra, rb) = resample_two(&a, &b, &links, &mut rng);
        let g = gaps(&ra, &rb);
        for (reps, gi) in rung_reps.iter_mut().zip(&g) {
            reps.push(*gi);
        }
        if let Some((_, s)) = line(&x, &g) {
            slope_reps.push(s);
        }
    }
    let rungs = links
        .iter()
        .zip(&gap)
        .zip(rung_reps)
        .map(|((l, &g), reps)| GapAt {
            compute: b[l.b].compute,
            gap: g,
            gap_ci: interval(reps.into_iter(), 0.95),
        })
        .collect();
    Some(GapTrend {
        rungs,
        slope,
        slope_ci: interval(slope_reps.iter().copied(), 0.95),
        slope_ci90: interval(slope_reps.iter().copied(), 0.90),
        paired: links.iter().all(|l| l.pairs.is_some()),
    })
}

/// At `ladder`'s largest rung (compute `C_m`, mean loss `L_m`), the multiplier `C* / C_m` with
/// `C*` = the baseline fit's [`Fit::compute_to_reach`]`(L_m)`: how much compute the baseline
/// needs to reach this configuration's loss (> 1: the configuration is ahead). The bootstrap
/// resamples both ladders' seeds (jointly on a rung both ran with the same seeds), refits the
/// baseline in the point estimate's form and recomputes; replicates where `C*` is undefined are
/// counted and left out.
///
/// # Errors
/// Invalid input (see [`fit`]), a baseline fit that is [`Fit::Poor`] (its reason), or `L_m` at or
/// below the baseline power law's floor `E` (the baseline never reaches it).
pub fn compute_multiplier(
    ladder: &Ladder,
    baseline: &Ladder,
    boot: &Bootstrap,
) -> Result<Multiplier, String> {
    let a = validate(ladder).map_err(|e| format!("the configuration's ladder: {e}"))?;
    let b = validate(baseline).map_err(|e| format!("the baseline's ladder: {e}"))?;
    let base = fit(baseline, boot);
    let top = a.last().ok_or("the configuration's ladder has no rungs")?;
    let (c_m, l_m) = (top.compute, mean(&top.losses));
    let c_star = match &base {
        Fit::Poor { why, .. } => return Err(format!("the baseline's fit is poor: {why}")),
        Fit::PowerLaw { e, .. } if l_m <= *e => {
            return Err(format!(
                "the loss {l_m:.4} at C = {c_m:.3e} is at or below the baseline power law's floor \
                 E = {e:.4}: the baseline never reaches it"
            ));
        }
        f => f
            .compute_to_reach(l_m)
            .ok_or_else(|| format!("the baseline's {} fit does not reach the loss {l_m:.4}", f.form()))?,
    };
    let c_ref = b[0].compute;
    let power = matches!(base, Fit::PowerLaw { .. });
    let links = links(&a, &b);
    let mut rng = ChaCha8Rng::seed_from_u64(boot.seed);
    let mut reps = Vec::with_capacity(boot.replicates);
    let mut undefined = 0;
    for _ in 0..boot.replicates {
        let (ra, rb) = resample_two(&a, &b, &links, &mut rng);
        let p = points(&rb, c_ref);
        let reach = |l: f64| {
            if power { fit_power(&p)?.reach(l, c_ref) } else { fit_line(&p)?.reach(l, c_ref) }
        };
        let l = ra.last().map(|r| mean(&r.losses));
        match l.and_then(reach) {
            Some(c) => reps.push(c / c_m),
            None => undefined += 1,
        }
    }
    let (lo, hi) = (b[0].compute, b[b.len() - 1].compute);
    Ok(Multiplier {
        value: c_star / c_m,
        ci: interval(reps.into_iter(), 0.95),
        extrapolated: c_star < lo || c_star > hi,
        form: base.form(),
        compute: c_m,
        loss: l_m,
        baseline_compute: c_star,
        undefined_replicates: undefined,
    })
}

/// A validated rung: seeds and losses side by side.
#[derive(Debug, Clone)]
struct RungData {
    compute: f64,
    seeds: Vec<Option<u64>>,
    losses: Vec<f64>,
}

/// The rungs sorted by compute, or what is wrong with the ladder.
fn validate(ladder: &Ladder) -> Result<Vec<RungData>, String> {
    if ladder.rungs.is_empty() {
        return Err("no rungs".into());
    }
    let mut rungs = Vec::with_capacity(ladder.rungs.len());
    for r in &ladder.rungs {
        if !(r.compute.is_finite() && r.compute > 0.0) {
            return Err(format!("a rung's compute {} is not a positive number of FLOPs", r.compute));
        }
        if r.losses.is_empty() {
            return Err(format!("the rung at C = {:.3e} has no losses", r.compute));
        }
        if let Some((_, l)) = r.losses.iter().find(|(_, l)| !l.is_finite()) {
            return Err(format!("the rung at C = {:.3e} has a loss of {l}", r.compute));
        }
        rungs.push(RungData {
            compute: r.compute,
            seeds: r.losses.iter().map(|(s, _)| *s).collect(),
            losses: r.losses.iter().map(|(_, l)| *l).collect(),
        });
    }
    rungs.sort_by(|a, b| a.compute.total_cmp(&b.compute));
    for w in rungs.windows(2) {
        if same_compute(w[0].compute, w[1].compute) {
            return Err(format!(
                "two rungs share a compute: C = {:.3e} and {:.3e} are within 1%",
                w[0].compute, w[1].compute
            ));
        }
    }
    Ok(rungs)
}

fn same_compute(a: f64, b: f64) -> bool {
    (a - b).abs() <= SAME_COMPUTE * b
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Where the rung means stop falling, in words; `None` when they fall strictly.
fn not_decreasing(rungs: &[RungData]) -> Option<String> {
    rungs.windows(2).find_map(|w| {
        let (m0, m1) = (mean(&w[0].losses), mean(&w[1].losses));
        if m1 < m0 {
            return None;
        }
        // Enough decimals for the two means to read apart.
        let d = (2..=6).find(|&d| format!("{m0:.d$}") != format!("{m1:.d$}")).unwrap_or(6);
        let verb = if m1 > m0 { "rises" } else { "stays" };
        Some(format!(
            "the mean loss {verb} from {m0:.d$} to {m1:.d$} between C = {:.2e} and {:.2e}",
            w[0].compute, w[1].compute
        ))
    })
}

/// Every seed's point: `x = ln(C / c_ref)`, `l` the loss (nats).
struct Points {
    x: Vec<f64>,
    l: Vec<f64>,
}

fn points(rungs: &[RungData], c_ref: f64) -> Points {
    let (mut x, mut l) = (Vec::new(), Vec::new());
    for r in rungs {
        let xi = (r.compute / c_ref).ln();
        for &li in &r.losses {
            x.push(xi);
            l.push(li);
        }
    }
    Points { x, l }
}

/// Least squares `y = b0 + b1 x` by nalgebra's SVD: `(b0, b1)`, `None` when the design has rank
/// below 2 or a result is not finite.
fn line(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let design = DMatrix::from_fn(x.len(), 2, |i, j| if j == 0 { 1.0 } else { x[i] });
    let svd = design.svd(true, true);
    let eps = 1e-12 * svd.singular_values.max();
    if svd.rank(eps) < 2 {
        return None;
    }
    let b = svd.solve(&DVector::from_column_slice(y), eps).ok()?;
    (b[0].is_finite() && b[1].is_finite()).then_some((b[0], b[1]))
}

/// A power law's parameters (see [`Fit::PowerLaw`]).
struct PowerParams {
    e: f64,
    a: f64,
    alpha: f64,
    rmse: f64,
}

/// A log-linear fit's parameters (see [`Fit::LogLinear`]).
struct LineParams {
    intercept: f64,
    slope: f64,
    rmse: f64,
}

impl PowerParams {
    /// `c_ref ((loss - e) / a)^(-1 / alpha)`, FLOPs; `None` at or below `e` or not finite.
    fn reach(&self, loss: f64, c_ref: f64) -> Option<f64> {
        if !(loss.is_finite() && loss > self.e) {
            return None;
        }
        positive(c_ref * ((loss - self.e) / self.a).powf(-1.0 / self.alpha))
    }
}

impl LineParams {
    /// `c_ref 10^((loss - intercept) / slope)`, FLOPs; `None` for a slope that is not negative
    /// or a result that is not finite.
    fn reach(&self, loss: f64, c_ref: f64) -> Option<f64> {
        if !(loss.is_finite() && self.slope < 0.0) {
            return None;
        }
        positive(c_ref * 10f64.powf((loss - self.intercept) / self.slope))
    }
}

fn positive(c: f64) -> Option<f64> {
    (c.is_finite() && c > 0.0).then_some(c)
}

fn fit_line(p: &Points) -> Option<LineParams> {
    let x10: Vec<f64> = p.x.iter().map(|x| x / std::f64::consts::LN_10).collect();
    let (intercept, slope) = line(&x10, &p.l)?;
    let sse: f64 = x10.iter().zip(&p.l).map(|(x, l)| (l - intercept - slope * x).powi(2)).sum();
    Some(LineParams { intercept, slope, rmse: (sse / p.l.len() as f64).sqrt() })
}

/// For a fixed floor `e`: `ln A` and `alpha` by the log-space line, and the sum of squares in `L`.
fn profile(p: &Points, e: f64) -> Option<(f64, f64, f64)> {
    let y: Vec<f64> = p.l.iter().map(|l| (l - e).ln()).collect();
    let (ln_a, neg_alpha) = line(&p.x, &y)?;
    let a = ln_a.exp();
    let sse = p.x.iter().zip(&p.l).map(|(x, l)| (l - e - a * (neg_alpha * x).exp()).powi(2)).sum();
    Some((sse, a, -neg_alpha))
}

/// The profiled sum of squares as a function of `t = ln(min L - E)`, for argmin.
struct Profile<'a> {
    points: &'a Points,
    l_min: f64,
}

impl CostFunction for Profile<'_> {
    type Param = f64;
    type Output = f64;

    fn cost(&self, t: &f64) -> Result<f64, argmin::core::Error> {
        profile(self.points, self.l_min - t.exp())
            .map(|(sse, _, _)| sse)
            .ok_or_else(|| argmin::core::Error::msg("the log-space line has no unique solution"))
    }
}

/// Number of points of the scan that brackets Brent's search.
const SCAN: usize = 64;

/// The least-squares power law with `E` in `[0, min L)` (see [`fit`]); `None` when the losses
/// are not positive, all equal, or the lines have no unique solution.
fn fit_power(p: &Points) -> Option<PowerParams> {
    let l_min = p.l.iter().copied().fold(f64::INFINITY, f64::min);
    let l_max = p.l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = l_max - l_min;
    if !(l_min > 0.0 && span > 0.0) {
        return None;
    }
    // t = ln(min L - E): t_hi is E = 0, t_lo is E a millionth of the span below min L.
    let (t_lo, t_hi) = ((1e-6 * span).ln(), l_min.ln());
    if t_lo >= t_hi {
        return None;
    }
    let problem = Profile { points: p, l_min };
    let grid: Vec<f64> = (0..SCAN).map(|i| t_lo + (t_hi - t_lo) * i as f64 / (SCAN - 1) as f64).collect();
    let costs: Vec<f64> = grid.iter().map(|t| problem.cost(t).unwrap_or(f64::INFINITY)).collect();
    let k = (0..SCAN).min_by(|&i, &j| costs[i].total_cmp(&costs[j]))?;
    if !costs[k].is_finite() {
        return None;
    }
    let (lo, hi) = (grid[k.saturating_sub(1)], grid[(k + 1).min(SCAN - 1)]);
    let solver = BrentOpt::new(lo, hi).set_tolerance(f64::EPSILON.sqrt(), 1e-12);
    let brent = Executor::new(problem, solver)
        .configure(|s| s.max_iters(200))
        .timer(false)
        .run()
        .ok()
        .and_then(|r| Some((*r.state().get_best_param()?, r.state().get_best_cost())));
    let t = match brent {
        Some((t, c)) if c <= costs[k] => t,
        _ => grid[k],
    };
    let e = l_min - t.exp();
    let (sse, a, alpha) = profile(p, e)?;
    Some(PowerParams { e, a, alpha, rmse: (sse / p.l.len() as f64).sqrt() })
}

/// The power law when its floor is identified, else why not (see [`fit`]).
fn form_of(rungs: &[RungData], c_ref: f64) -> Result<PowerParams, String> {
    let p = points(rungs, c_ref);
    let l_min = p.l.iter().copied().fold(f64::INFINITY, f64::min);
    let l_max = p.l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let Some(q) = fit_power(&p) else {
        return Err(format!(
            "no power law with a floor E in [0, {l_min:.4}) could be fitted (the losses must be \
             positive and not all equal)"
        ));
    };
    let tol = EDGE * (l_max - l_min);
    if q.e <= tol {
        Err(format!(
            "the best floor E = {:.4} sits at the edge E = 0: the losses show no curvature toward \
             a floor over this range",
            q.e
        ))
    } else if q.e >= l_min - tol {
        Err(format!(
            "the best floor E = {:.4} sits at the smallest loss {l_min:.4}: the floor is not \
             identified from these sizes",
            q.e
        ))
    } else if q.alpha <= 0.0 {
        Err(format!("the fitted exponent alpha = {:.4} is not positive", q.alpha))
    } else {
        Ok(q)
    }
}

/// A rung of `a` matched to one of `b` (within [`SAME_COMPUTE`]), with the seed order of both
/// sides when they ran the same seeds.
struct Link {
    a: usize,
    b: usize,
    pairs: Option<(Vec<usize>, Vec<usize>)>,
}

/// The rungs `a` and `b` share, by increasing compute.
fn links(a: &[RungData], b: &[RungData]) -> Vec<Link> {
    b.iter()
        .enumerate()
        .filter_map(|(j, rb)| {
            let i = a.iter().position(|ra| same_compute(ra.compute, rb.compute))?;
            Some(Link { a: i, b: j, pairs: pairs(&a[i], rb) })
        })
        .collect()
}

/// Indices of `a` and `b` aligned by seed, when both ran the same set of distinct, named seeds.
fn pairs(a: &RungData, b: &RungData) -> Option<(Vec<usize>, Vec<usize>)> {
    let sa: Vec<u64> = a.seeds.iter().copied().collect::<Option<_>>()?;
    let sb: Vec<u64> = b.seeds.iter().copied().collect::<Option<_>>()?;
    let mut sorted = sb.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sa.len() != sb.len() || sorted.len() != sb.len() {
        return None;
    }
    let ia: Vec<usize> = sb.iter().map(|s| sa.iter().position(|x| x == s)).collect::<Option<_>>()?;
    Some((ia, (0..sb.len()).collect()))
}

/// The rung with the losses at `idx`.
fn pick(r: &RungData, idx: impl Iterator<Item = usize>) -> RungData {
    let (seeds, losses) = idx.map(|i| (r.seeds[i], r.losses[i])).unzip();
    RungData { compute: r.compute, seeds, losses }
}

fn draw(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    (0..n).map(|_| rng.random_range(0..n)).collect()
}

/// Each rung's seeds resampled with replacement.
fn resample(rungs: &[RungData], rng: &mut ChaCha8Rng) -> Vec<RungData> {
    rungs.iter().map(|r| pick(r, draw(r.losses.len(), rng).into_iter())).collect()
}

/// Both ladders resampled: a linked rung with seed pairs draws one set of seed indices for both
/// sides, every other rung its own.
fn resample_two(
    a: &[RungData],
    b: &[RungData],
    links: &[Link],
    rng: &mut ChaCha8Rng,
) -> (Vec<RungData>, Vec<RungData>) {
    let mut ra: Vec<Option<RungData>> = vec![None; a.len()];
    let mut rb: Vec<Option<RungData>> = vec![None; b.len()];
    for l in links {
        if let Some((ia, ib)) = &l.pairs {
            let idx = draw(ib.len(), rng);
            ra[l.a] = Some(pick(&a[l.a], idx.iter().map(|&k| ia[k])));
            rb[l.b] = Some(pick(&b[l.b], idx.iter().map(|&k| ib[k])));
        }
    }
    let mut fill = |slots: Vec<Option<RungData>>, rungs: &[RungData]| -> Vec<RungData> {
        slots
            .into_iter()
            .zip(rungs)
            .map(|(s, r)| s.unwrap_or_else(|| pick(r, draw(r.losses.len(), rng).into_iter())))
            .collect()
    };
    let ra = fill(ra, a);
    let rb = fill(rb, b);
    (ra, rb)
}

/// The central `level` percentile interval of the finite values (statrs's quantile, Hyndman &
/// Fan type 8); `[NaN, NaN]` when there is none.
fn interval(values: impl Iterator<Item = f64>, level: f64) -> [f64; 2] {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return [f64::NAN; 2];
    }
    let mut d = Data::new(v);
    [d.quantile((1.0 - level) / 2.0), d.quantile((1.0 + level) / 2.0)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    /// Fast bootstrap for tests.
    const BOOT: Bootstrap = Bootstrap { replicates: 200, seed: 7 };

    /// 5 rungs, 1e11 ..= 1e13 FLOPs, half a decade apart.
    fn computes() -> Vec<f64> {
        (0..5).map(|i| 10f64.powf(11.0 + 0.5 * i as f64)).collect()
    }

    /// A ladder with `curve(C) + N(0, sd)` for seeds `seeds` at each compute.
    fn planted(curve: impl Fn(f64) -> f64, cs: &[f64], seeds: &[u64], sd: f64, rng: u64) -> Ladder {
        let mut rng = ChaCha8Rng::seed_from_u64(rng);
        let noise = Normal::new(0.0, sd).expect("sd > 0");
        let rungs = cs
            .iter()
            .map(|&c| Rung {
                compute: c,
                losses: seeds.iter().map(|&s| (Some(s), curve(c) + noise.sample(&mut rng))).collect(),
            })
            .collect();
        Ladder { rungs }
    }

    fn power(c: f64) -> f64 {
        1.5 + 0.8 * (c / 1e11).powf(-0.3)
    }

    fn inside(x: f64, ci: [f64; 2]) -> bool {
        ci[0] <= x && x <= ci[1]
    }

    #[test]
    fn fit_recovers_a_planted_power_law() {
        let ladder = planted(power, &computes(), &[0, 1, 2], 0.005, 11);
        let Fit::PowerLaw { e, a, alpha, c_ref, e_ci, a_ci, alpha_ci, rmse } = fit(&ladder, &BOOT) else {
            panic!("expected a power law, got {:?}", fit(&ladder, &BOOT));
        };
        assert_eq!(c_ref, 1e11);
        assert!(inside(1.5, e_ci), "E = {e}, {e_ci:?}");
        assert!(inside(0.8, a_ci), "A = {a}, {a_ci:?}");
        assert!(inside(0.3, alpha_ci), "alpha = {alpha}, {alpha_ci:?}");
        assert!(inside(e, e_ci) && inside(a, a_ci) && inside(alpha, alpha_ci));
        assert!(e_ci[1] - e_ci[0] < 0.12, "{e_ci:?}");
        assert!(a_ci[1] - a_ci[0] < 0.12, "{a_ci:?}");
        assert!(alpha_ci[1] - alpha_ci[0] < 0.07, "{alpha_ci:?}");
        assert!(rmse > 0.002 && rmse < 0.008, "rmse {rmse} vs noise sd 0.005");
    }

    #[test]
    fn the_bootstrap_is_deterministic_for_a_seed() {
        let ladder = planted(power, &computes(), &[0, 1, 2], 0.005, 11);
        let ci = |b: &Bootstrap| match fit(&ladder, b) {
            Fit::PowerLaw { e_ci, .. } => e_ci,
            f => panic!("expected a power law, got {f:?}"),
        };
        assert_eq!(ci(&BOOT), ci(&BOOT));
        assert_ne!(ci(&BOOT), ci(&Bootstrap { seed: 8, ..BOOT }));
    }

    #[test]
    fn log_linear_data_falls_back_with_a_reason() {
        let ladder = planted(|c| 3.0 - 0.1 * (c / 1e11).log10(), &computes(), &[0, 1, 2], 0.005, 3);
        let Fit::LogLinear { intercept, slope, slope_ci, intercept_ci, why_not_power_law, .. } =
            fit(&ladder, &BOOT)
        else {
            panic!("expected log-linear, got {:?}", fit(&ladder, &BOOT));
        };
        assert!(inside(-0.1, slope_ci), "slope {slope}, {slope_ci:?}");
        assert!(slope_ci[1] - slope_ci[0] < 0.02, "{slope_ci:?}");
        assert!(inside(3.0, intercept_ci), "intercept {intercept}, {intercept_ci:?}");
        assert!(why_not_power_law.contains("E = 0"), "{why_not_power_law}");
    }

    #[test]
    fn two_rungs_are_poor() {
        let ladder = planted(power, &computes()[..2], &[0, 1, 2], 0.005, 1);
        match fit(&ladder, &BOOT) {
            Fit::Poor { why, slope } => {
                assert_eq!(why, "2 sizes: a fit needs at least 3");
                assert!(slope.is_some_and(|s| s < 0.0), "{slope:?}");
            }
            f => panic!("expected poor, got {f:?}"),
        }
    }

    #[test]
    fn non_monotone_means_are_poor_naming_the_rise() {
        let means = [2.0, 1.8, 1.85, 1.7];
        let rungs = means
            .iter()
            .enumerate()
            .map(|(i, &m)| Rung {
                compute: 10f64.powf(11.0 + i as f64),
                losses: vec![(Some(0), m - 0.01), (Some(1), m + 0.01)],
            })
            .collect();
        match fit(&Ladder { rungs }, &BOOT) {
            Fit::Poor { why, .. } => {
                assert_eq!(why, "the mean loss rises from 1.80 to 1.85 between C = 1.00e12 and 1.00e13")
            }
            f => panic!("expected poor, got {f:?}"),
        }
    }

    #[test]
    fn invalid_input_is_named() {
        let bad = Ladder { rungs: vec![Rung { compute: 1e11, losses: vec![(None, f64::NAN)] }] };
        match fit(&bad, &BOOT) {
            Fit::Poor { why, .. } => assert_eq!(why, "the rung at C = 1.000e11 has a loss of NaN"),
            f => panic!("expected poor, got {f:?}"),
        }
    }

    #[test]
    fn predict_and_compute_to_reach_are_inverses() {
        let pl = fit(&planted(power, &computes(), &[0, 1, 2], 0.005, 11), &BOOT);
        let ll = fit(&planted(|c| 3.0 - 0.1 * (c / 1e11).log10(), &computes(), &[0, 1], 0.005, 3), &BOOT);
        assert_eq!((pl.form(), ll.form()), ("power law", "log-linear"));
        for f in [&pl, &ll] {
            for c in [3e10, 2e11, 5e12, 1e14] {
                let l = f.predict(c).expect("a fit predicts");
                let back = f.compute_to_reach(l).expect("reachable");
                assert!((back / c - 1.0).abs() < 1e-9, "{} at {c}: {back}", f.form());
            }
        }
        let Fit::PowerLaw { e, .. } = pl else { unreachable!("checked above") };
        assert_eq!(pl.compute_to_reach(e), None);
        assert_eq!(pl.compute_to_reach(e - 0.1), None);
        let poor = Fit::Poor { why: String::new(), slope: None };
        assert_eq!((poor.predict(1e12), poor.compute_to_reach(2.0)), (None, None));
    }

    #[test]
    fn a_shrinking_gap_is_found_paired() {
        let cs = computes();
        let base = planted(power, &cs, &[0, 1, 2], 0.005, 21);
        let cfg = planted(|c| power(c) + 0.1 - 0.03 * (c / 1e11).log10(), &cs, &[2, 0, 1], 0.005, 22);
        let t = gap_trend(&cfg, &base, &BOOT).expect("5 shared rungs");
        assert!(t.paired);
        assert_eq!(t.rungs.len(), 5);
        assert!(inside(-0.03, t.slope_ci), "slope {}, {:?}", t.slope, t.slope_ci);
        assert!(t.slope_ci[1] - t.slope_ci[0] < 0.02, "{:?}", t.slope_ci);
        assert!(inside(0.1, t.rungs[0].gap_ci), "{:?}", t.rungs[0]);
        assert_eq!(t.direction(0.02), Trend::Shrinking);
        // The same gap below the baseline, growing more negative: away from zero.
        let worse = planted(|c| power(c) - 0.01 - 0.03 * (c / 1e11).log10(), &cs, &[0, 1, 2], 0.005, 23);
        let t = gap_trend(&worse, &base, &BOOT).expect("5 shared rungs");
        assert_eq!(t.direction(0.02), Trend::Growing);
    }

    #[test]
    fn a_constant_gap_is_steady_and_unpaired_seeds_are_not_paired() {
        let cs = computes();
        let base = planted(power, &cs, &[0, 1, 2], 1e-4, 31);
        // Computes 0.5% off the baseline's still match; the baseline's are reported.
        let off: Vec<f64> = cs.iter().map(|c| c * 1.005).collect();
        let cfg = planted(|c| power(c / 1.005) + 0.001, &off, &[0, 1, 2], 1e-4, 32);
        let t = gap_trend(&cfg, &base, &BOOT).expect("5 shared rungs");
        assert!(t.paired);
        assert_eq!(t.rungs[4].compute, 1e13);
        assert!(t.rungs.iter().all(|r| (r.gap - 0.001).abs() < 5e-4), "{:?}", t.rungs);
        assert!(t.slope_ci90[0] > -0.02 && t.slope_ci90[1] < 0.02, "{:?}", t.slope_ci90);
        assert_eq!(t.direction(0.02), Trend::Steady);
        let other = planted(|c| power(c) + 0.001, &cs, &[5, 6, 7], 1e-4, 33);
        let t = gap_trend(&other, &base, &BOOT).expect("5 shared rungs");
        assert!(!t.paired);
        let one = planted(power, &cs[..1], &[0], 1e-4, 34);
        assert!(gap_trend(&one, &base, &BOOT).is_none());
    }

    #[test]
    fn the_multiplier_recovers_a_planted_factor_of_two() {
        let base = planted(power, &computes(), &[0, 1, 2], 0.005, 41);
        // The configuration's largest rung, 1e12, reaches the baseline's loss at 2e12.
        let cs = &computes()[..3];
        let cfg = planted(|c| power(2.0 * c), cs, &[0, 1, 2], 0.005, 42);
        let m = compute_multiplier(&cfg, &base, &BOOT).expect("a power-law baseline");
        assert_eq!((m.form, m.compute, m.extrapolated), ("power law", 1e12, false));
        assert!((m.value - 2.0).abs() < 0.3, "{m:?}");
        assert!(inside(2.0, m.ci), "{m:?}");
        assert!(m.ci[1] / m.ci[0] < 1.5, "{m:?}");
        assert!(m.undefined_replicates < 5, "{m:?}");
    }

    #[test]
    fn the_multiplier_refuses_a_loss_below_the_floor() {
        let base = planted(power, &computes(), &[0, 1, 2], 0.005, 41);
        let cfg = planted(|_| 1.3, &computes()[..3], &[0, 1, 2], 0.005, 43);
        let err = compute_multiplier(&cfg, &base, &BOOT).expect_err("1.3 is below E = 1.5");
        let Fit::PowerLaw { e, .. } = fit(&base, &BOOT) else { panic!("a power-law baseline") };
        assert!((e - 1.5).abs() < 0.05, "E = {e}");
        assert!(err.contains(&format!("below the baseline power law's floor E = {e:.4}")), "{err}");
        let poor = planted(power, &computes()[..2], &[0, 1, 2], 0.005, 44);
        let err = compute_multiplier(&cfg, &poor, &BOOT).expect_err("2 rungs");
        assert_eq!(err, "the baseline's fit is poor: 2 sizes: a fit needs at least 3");
    }
}
