//! The findings part "Does it hold as models grow?" and the words of the scaling section, from
//! the report types only ([`crate::types::ScalingReport`]). A fit that is poor (fewer than three
//! sizes, a loss that does not fall with compute) says so and is never extrapolated; a trend
//! whose interval holds zero is "not resolved"; a steady trend needs its 90% interval inside
//! the margin per decade.

use crate::stats::fmt_num;
use crate::stats::scaling::{Fit, GapTrend, Multiplier, Trend};
use crate::types::{FamilyScaling, GroupReport, Part, Statement};

/// `1.3e13`: FLOPs in two significant digits.
pub fn flops_text(c: f64) -> String {
    format!("{c:.1e}")
}

/// `+0.078`: a signed number.
fn signed(x: f64, digits: usize) -> String {
    crate::stats::compare::signed(x, digits)
}

/// `x` with `digits` decimals, 0 where it rounds to 0 (a bootstrap bound at the edge E = 0 is
/// `1e-15`, not a number to print).
fn fixed(x: f64, digits: usize) -> String {
    let x = if x.abs() < 0.5 * 10f64.powi(-(digits as i32)) { 0.0 } else { x };
    fmt_num(x, digits)
}

/// `[a, b]` with `digits` decimals.
fn interval(ci: [f64; 2], digits: usize) -> String {
    format!("[{}, {}]", fixed(ci[0], digits), fixed(ci[1], digits))
}

/// `1,771,200`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fit in words: `power law L = 1.42 + 0.80·(C / 1.5e11)^-0.21 (alpha 0.21 [0.15, 0.30], E 1.42 [1.30,
/// 1.50])`, `log-linear: -0.19 [-0.21, -0.17] nats per decade (E not identified: ...)`, or
/// `poor fit: why`.
pub fn fit_text(fit: &Fit) -> String {
    match fit {
        Fit::PowerLaw { e, a, alpha, c_ref, e_ci, alpha_ci, rmse, .. } => {
            let edge = if e_ci[0] < 1e-6 {
                "; E's interval reaches 0: the floor is not bounded away from zero by these sizes"
            } else {
                ""
            };
            format!(
                "power law L = {} + {}·(C / {})^-{} (E {} {}, alpha {} {}; rms residual {}{edge})",
                fmt_num(*e, 3),
                fmt_num(*a, 3),
                flops_text(*c_ref),
                fmt_num(*alpha, 3),
                fmt_num(*e, 3),
                interval(*e_ci, 3),
                fmt_num(*alpha, 3),
                interval(*alpha_ci, 3),
                fmt_num(*rmse, 3)
            )
        }
        Fit::LogLinear { slope, slope_ci, rmse, why_not_power_law, .. } => format!(
            "log-linear: {} {} nats per decade of compute (no power law: {why_not_power_law}; rms residual {})",
            signed(*slope, 3),
            interval(*slope_ci, 3),
            fmt_num(*rmse, 3)
        ),
        Fit::Poor { why, slope } => match slope {
            Some(s) => format!(
                "poor fit, not extrapolated: {why} (descriptive slope {} nats per decade)",
                signed(*s, 3)
            ),
            None => format!("poor fit, not extrapolated: {why}"),
        },
    }
}

/// The direction of a gap's trend in words.
pub fn trend_word(t: Trend) -> &'static str {
    match t {
        Trend::Shrinking => "shrinking",
        Trend::Growing => "growing",
        Trend::Steady => "steady",
        Trend::NotResolved => "not resolved",
    }
}

/// `+0.080 [+0.050, +0.110] at 1.5e11 ... +0.030 [...] at 1.3e13; slope -0.020 [-0.040, -0.001]
/// nats per decade (paired bootstrap): shrinking`.
pub fn trend_text(t: &GapTrend, direction: Option<Trend>, margin: f64) -> String {
    let per: Vec<String> = t
        .rungs
        .iter()
        .map(|r| {
            format!(
                "{} [{}, {}] at {}",
                signed(r.gap, 3),
                signed(r.gap_ci[0], 3),
                signed(r.gap_ci[1], 3),
                flops_text(r.compute)
            )
        })
        .collect();
    let word = direction.map_or("not resolved", trend_word);
    let steady = if direction == Some(Trend::Steady) {
        format!(" within ±{} per decade", fmt_num(margin, 3))
    } else {
        String::new()
    };
    format!(
        "gap {}; its slope {} [{}, {}] nats per decade of compute ({} bootstrap over seeds): {word}{steady}",
        per.join(", "),
        signed(t.slope, 3),
        signed(t.slope_ci[0], 3),
        signed(t.slope_ci[1], 3),
        if t.paired { "paired" } else { "unpaired" },
    )
}

/// `1.8x [1.2, 2.9]` with what it means, or the reason none can be read.
pub fn multiplier_text(m: &Result<Multiplier, String>, baseline: &str) -> String {
    match m {
        Ok(m) => {
            let extra =
                if m.extrapolated { ", extrapolated beyond the baseline's measured compute" } else { "" };
            let undefined = if m.undefined_replicates > 0 {
                format!(
                    "; {} bootstrap replicates had no such compute and are left out",
                    m.undefined_replicates
                )
            } else {
                String::new()
            };
            let reading = if m.value >= 1.0 {
                format!("`{baseline}` needs {}x the compute to reach it", ratio(m.value))
            } else {
                format!("`{baseline}` reaches it with {}x the compute", ratio(m.value))
            };
            format!(
                "at the largest size, {reading} [{}, {}] (read off {}'s {} fit{extra}{undefined})",
                ratio(m.ci[0]),
                ratio(m.ci[1]),
                baseline,
                m.form
            )
        }
        Err(why) => format!("no compute multiplier: {why}"),
    }
}

fn ratio(x: f64) -> String {
    if x >= 10.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

/// `4 sizes, 98,624 to 1,771,200 non-embedding parameters (18x), 1.5e11 to 1.3e13 FLOPs (86x)`.
pub fn span_text(f: &FamilyScaling) -> String {
    let (Some(lo), Some(hi)) = (f.rungs.first(), f.rungs.last()) else { return "no sizes".into() };
    let params = match (lo.params, hi.params) {
        (Some(a), Some(b)) if a > 0.0 => {
            format!(
                "{} to {} non-embedding parameters ({}x), ",
                thousands(a as u64),
                thousands(b as u64),
                ratio(b / a)
            )
        }
        _ => String::new(),
    };
    format!(
        "{} sizes, {params}{} to {} FLOPs ({}x)",
        f.rungs.len(),
        flops_text(lo.compute),
        flops_text(hi.compute),
        ratio(hi.compute / lo.compute)
    )
}

/// Part 5: does the answer hold as models grow? Per task group with a ladder: each family's
/// fit, and each family against its baseline family: the gap's trend and the compute
/// multiplier.
pub fn scaling(groups: &[GroupReport]) -> Part {
    let mut statements = Vec::new();
    let mut gaps = Vec::new();
    for g in groups {
        let Some(s) = &g.scaling else { continue };
        for f in &s.families {
            let runs: Vec<String> = f.rungs.iter().flat_map(|r| r.runs.iter().cloned()).collect();
            let fit = f.fit.as_ref().map_or("no fit".into(), fit_text);
            let mut text = format!("`{}`, {} ({}): {fit}", g.id, f.label, span_text(f));
            if let Some(v) = &f.versus {
                match &v.trend {
                    Some(t) => text.push_str(&format!(
                        "; against {}: {}; {}",
                        v.baseline,
                        trend_text(t, v.direction, s.margin),
                        multiplier_text(&v.multiplier, &s.baseline)
                    )),
                    None => text
                        .push_str(&format!("; against {}: fewer than 2 shared sizes, no trend", v.baseline)),
                }
            }
            text.push('.');
            statements.push(Statement { text, runs });
        }
        if s.families.iter().flat_map(|f| &f.rungs).any(|r| r.n < 5) {
            gaps.push(format!(
                "`{}`: the fits' and trends' intervals are percentile bootstraps over at most {} seeds a size, \
                 which are too narrow at so few seeds; the per-size verdicts (paired t, Holm) are the stricter test.",
                g.id,
                s.families.iter().flat_map(|f| &f.rungs).map(|r| r.n).max().unwrap_or(0)
            ));
        }
        if s.families.iter().any(|f| f.rungs.len() < 3) {
            gaps.push(format!(
                "`{}`: a family with fewer than 3 sizes has no fit; a ladder needs at least 3 to say how a gap moves.",
                g.id
            ));
        }
    }
    if statements.is_empty() {
        gaps.push(
            "every compared configuration has one size: nothing here says how the answer moves with scale; \
             configs/sweeps/scale.toml climbs four sizes."
                .into(),
        );
    } else {
        gaps.push(
            "a trend is measured over the ladder's sizes only; beyond its largest size it is an extrapolation, \
             and configs/sweeps/scale_large.toml (cluster) and scale_gpu.toml (GPU) climb further."
                .into(),
        );
    }
    Part { title: "Does it hold as models grow?".into(), statements, gaps }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_read_in_two_significant_digits() {
        assert_eq!(flops_text(1.5109e11), "1.5e11");
        assert_eq!(flops_text(1.3e13), "1.3e13");
        assert_eq!(flops_text(2.0e-3), "2.0e-3");
    }

    #[test]
    fn counts_get_thousands_separators_and_edge_bounds_read_zero() {
        assert_eq!(thousands(1_771_200), "1,771,200");
        assert_eq!(thousands(98_624), "98,624");
        assert_eq!(thousands(512), "512");
        assert_eq!(interval([-1.3e-15, 1.169], 3), "[0.000, 1.169]");
    }
}
