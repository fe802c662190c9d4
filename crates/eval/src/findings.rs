//! Findings: what the runs say about each part of attnlab's question, every sentence built from
//! the report's own numbers, each with the runs it rests on. A part the runs cannot answer says
//! so and names the sweep that would.
//!
//! Every comparison ends in one of three verdicts ([`Verdict`], see
//! [`crate::stats::compare`]): *different* (Holm-corrected p < 0.05), *equivalent within ±δ*
//! (TOST, Holm-corrected, p < 0.05, with the quantity's margin δ) or *not resolved*, which gives
//! the difference, its interval and the smallest difference the seeds could detect. A failed
//! test of difference is never reported as sameness.

use attnlab_train::tasks::report::Question;

use crate::quantity::Quantity;
use crate::stats::compare::{Comparison, ComparisonTable, Verdict};
use crate::stats::ttest::TestKind;
use crate::stats::{fmt_num, p_text};
use crate::types::{Findings, GroupReport, SeedGroupReport, Statement};

/// The sweep that answers every part.
pub const ANSWER_SWEEP: &str = "configs/sweeps/answer.toml";

/// The findings of the task groups' numbers against `baseline`: normalisation, geometry,
/// dynamics, cost, and scale.
pub fn findings(groups: &[GroupReport], baseline: &str) -> Findings {
    Findings {
        parts: vec![
            crate::findings_parts::normalisation(groups, baseline),
            crate::findings_parts::geometry(groups),
            crate::findings_parts::dynamics(groups),
            crate::findings_parts::cost(groups, baseline),
            crate::findings_scaling::scaling(groups),
            crate::findings_parts::locations(groups),
        ],
    }
}

/// `48x closer [40, 57]` (a ratio below 1, by its inverse) or `1.30x higher [1.10, 1.50]`: the
/// ratio of the means with Fieller's 95% interval, in the quantity's words.
pub fn ratio_text(q: &Quantity, c: &Comparison) -> Option<String> {
    let r = c.ratio?;
    let (less, more) = q.ratio_words();
    Some(if r.ratio < 1.0 {
        format!(
            "{}x {less} [{}, {}]",
            ratio_num(1.0 / r.ratio),
            ratio_num(1.0 / r.high),
            ratio_num(1.0 / r.low)
        )
    } else {
        format!("{}x {more} [{}, {}]", ratio_num(r.ratio), ratio_num(r.low), ratio_num(r.high))
    })
}

/// A ratio: whole numbers from 10 on (`48`), two decimals below (`1.30`).
fn ratio_num(x: f64) -> String {
    if x >= 10.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

/// `paired t, 10 seeds` / `Welch, 2 vs 3 seeds`: the test of a row and its seeds.
pub fn design_text(c: &Comparison) -> String {
    match c.test {
        Some(TestKind::Paired) => format!("paired t, {} seeds", c.n),
        Some(TestKind::Welch) | None => format!("Welch, {} vs {} seeds", c.n, c.n_base),
    }
}

/// A comparison's verdict as a heading and its evidence:
/// - `different`, `(worse: 1.30x higher [1.10, 1.50]; +0.29 [+0.20, +0.38], paired t, 3 seeds,
///   Holm p 0.004)`;
/// - `equivalent within ±0.02`, `(+0.003 [-0.004, +0.010], Welch, 3 vs 3 seeds, TOST Holm p
///   0.010)`;
/// - `not resolved`, `(-1.95 [-3.70, -0.20], Welch, 2 vs 2 seeds, Holm p 0.350; a difference
///   below 2.1 could not be detected)`;
/// - `no test possible`, `(+0.3; n = 1 vs 1: fewer than 2 seeds on a side ...)`.
pub fn verdict_parts(q: &Quantity, c: &Comparison) -> (String, String) {
    let digits = q.diff_digits;
    let diff = c.diff_text(digits);
    let p = |x: Option<f64>| p_text(x.unwrap_or(f64::NAN));
    let delta = fmt_num(c.delta.unwrap_or(f64::NAN), digits);
    match c.verdict {
        Verdict::Different => {
            let ratio = ratio_text(q, c).map_or(String::new(), |r| format!(": {r}"));
            let inside =
                if c.within_margin() { format!("; inside ±{delta} all the same") } else { String::new() };
            let evidence = format!(
                "({}{ratio}; {diff}, {}, Holm p {}{inside})",
                q.change_word(c.diff),
                design_text(c),
                p(c.p_holm)
            );
            ("different".into(), evidence)
        }
        Verdict::Equivalent => (
            format!("equivalent within ±{delta}"),
            format!("({diff}, {}, TOST Holm p {})", design_text(c), p(c.p_tost_holm)),
        ),
        Verdict::NotResolved => {
            let detect = c.detectable.map_or(String::new(), |d| {
                format!("; a difference below {} could not be detected", fmt_num(d, digits))
            });
            ("not resolved".into(), format!("({diff}, {}, Holm p {}{detect})", design_text(c), p(c.p_holm)))
        }
        Verdict::NoTest => {
            let why = c.no_test.map_or("no test", |w| w.text());
            ("no test possible".into(), format!("({diff}; n = {} vs {}: {why})", c.n, c.n_base))
        }
    }
}

/// One comparison as it reads in a sentence: `different (worse: ...)`.
pub fn verdict(q: &Quantity, c: &Comparison) -> String {
    let (head, evidence) = verdict_parts(q, c);
    format!("{head} {evidence}")
}

/// One sentence over a comparison table: its configurations grouped by verdict, each with its
/// evidence.
pub fn table_statement(g: &GroupReport, t: &ComparisonTable) -> Statement {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for verdict in [Verdict::Different, Verdict::Equivalent, Verdict::NotResolved, Verdict::NoTest] {
        for c in t.rows.iter().filter(|c| c.verdict == verdict) {
            let (head, evidence) = verdict_parts(&t.quantity, c);
            let item = format!("{} {evidence}", c.label);
            match groups.iter_mut().find(|(h, _)| *h == head) {
                Some((_, items)) => items.push(item),
                None => groups.push((head, vec![item])),
            }
        }
    }
    let mut bases: Vec<&str> = t.rows.iter().map(|c| c.baseline.as_str()).collect();
    bases.dedup();
    let against = match bases.as_slice() {
        [one] => format!("against {one}"),
        _ => "each against its baseline with the same settings".to_string(),
    };
    let parts: Vec<String> = groups.iter().map(|(h, items)| format!("{h}: {}", items.join(", "))).collect();
    Statement {
        text: format!("`{}`, {} {against}: {}.", g.id, t.header, parts.join("; ")),
        runs: table_runs(t),
    }
}

/// The runs behind a table, each once.
pub fn table_runs(t: &ComparisonTable) -> Vec<String> {
    let mut runs: Vec<String> =
        t.rows.iter().flat_map(|c| c.runs.iter().chain(&c.baseline_runs).cloned()).collect();
    runs.sort();
    runs.dedup();
    runs
}

/// The group's table of `key`, if any.
pub fn table<'a>(g: &'a GroupReport, key: &str) -> Option<&'a ComparisonTable> {
    g.comparisons.iter().find(|t| t.key == key)
}

/// The group's tables whose quantity informs `question`, in table order.
pub fn tables_for(g: &GroupReport, question: Question) -> impl Iterator<Item = &ComparisonTable> {
    g.comparisons.iter().filter(move |t| t.quantity.question == Some(question))
}

/// `0.123 ± 0.004` of a seed group's number, or `-`.
pub fn mean_text(sg: &SeedGroupReport, key: &str, digits: usize) -> String {
    sg.numbers.get(key).map_or("-".into(), |m| m.text(digits))
}

/// A number with `digits` decimals.
pub fn num(x: f64, digits: usize) -> String {
    fmt_num(x, digits)
}
