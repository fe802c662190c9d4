//! Findings: what the runs say about each part of attnlab's question, every sentence built from
//! the report's own numbers (means over seeds, differences to the baseline with their 95%
//! interval, Welch's p and Holm's corrected p), each with the runs it rests on. A part the runs
//! cannot answer says so and names the sweep that would.
//!
//! A difference is called significant only when its Holm-corrected p is below
//! [`crate::stats::compare::ALPHA`]; otherwise the sentence says "no significant difference".

use attnlab_train::tasks::report::Question;

use crate::stats::compare::{Comparison, ComparisonTable};
use crate::stats::{fmt_num, p_text};
use crate::types::{Findings, GroupReport, SeedGroupReport, Statement};

/// The sweep that answers every part.
pub const ANSWER_SWEEP: &str = "configs/sweeps/answer.toml";

/// The findings of the task groups' numbers against `baseline`: normalisation, geometry,
/// dynamics, cost.
pub fn findings(groups: &[GroupReport], baseline: &str) -> Findings {
    Findings {
        parts: vec![
            crate::findings_parts::normalisation(groups, baseline),
            crate::findings_parts::geometry(groups),
            crate::findings_parts::dynamics(groups),
            crate::findings_parts::cost(groups, baseline),
        ],
    }
}

/// How one comparison reads: `no significant difference (+0.01 [-0.02, +0.04], Welch p 0.41,
/// Holm p 0.82)`, `higher (...)`, or why no test was possible.
pub fn verdict(c: &Comparison, digits: usize) -> String {
    let diff = c.diff_text(digits);
    match (c.p, c.p_holm) {
        (Some(p), Some(ph)) => {
            let what = if !c.significant() {
                "no significant difference"
            } else if c.diff > 0.0 {
                "significantly higher"
            } else {
                "significantly lower"
            };
            format!("{what} ({diff}, Welch p {}, Holm p {})", p_text(p), p_text(ph))
        }
        _ => {
            let why = c.no_test.map_or("no test", |w| w.text());
            format!("{diff} (n = {} vs {}: {why})", c.n, c.n_base)
        }
    }
}

/// One sentence over a comparison table: the configurations significantly above and below
/// their baselines (with difference, interval and Holm's p), those with no significant
/// difference, and those where no test was possible.
pub fn table_statement(g: &GroupReport, t: &ComparisonTable, digits: usize) -> Statement {
    let sig = |c: &&Comparison| c.significant();
    let with_p = |c: &Comparison| {
        format!("{} ({}, Holm p {})", c.label, c.diff_text(digits), p_text(c.p_holm.unwrap_or(f64::NAN)))
    };
    let higher: Vec<String> = t.rows.iter().filter(sig).filter(|c| c.diff > 0.0).map(with_p).collect();
    let lower: Vec<String> = t.rows.iter().filter(sig).filter(|c| c.diff <= 0.0).map(with_p).collect();
    let same: Vec<String> =
        t.rows.iter().filter(|c| c.p_holm.is_some() && !c.significant()).map(|c| c.label.clone()).collect();
    let untested: Vec<String> = t
        .rows
        .iter()
        .filter(|c| c.p_holm.is_none())
        .map(|c| {
            let why = c.no_test.map_or("no test", |w| w.text());
            format!("{} ({}; n = {} vs {}: {why})", c.label, c.diff_text(digits), c.n, c.n_base)
        })
        .collect();
    let mut bases: Vec<&str> = t.rows.iter().map(|c| c.baseline.as_str()).collect();
    bases.dedup();
    let against = match bases.as_slice() {
        [one] => format!("against {one}"),
        _ => "each against its baseline with the same settings".to_string(),
    };
    let mut parts = Vec::new();
    for (what, items) in [
        ("significantly higher", higher),
        ("significantly lower", lower),
        ("no significant difference", same),
        ("no test possible", untested),
    ] {
        if !items.is_empty() {
            parts.push(format!("{what}: {}", items.join(", ")));
        }
    }
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
