//! Findings: what the runs say about each part of attnlab's question, every sentence built from
//! the report's own numbers (means over seeds, differences to the baseline with their 95%
//! interval, Welch's p and Holm's corrected p), each with the runs it rests on. A part the runs
//! cannot answer says so and names the sweep that would.
//!
//! A difference is called significant only when its Holm-corrected p is below
//! [`crate::stats::compare::ALPHA`]; otherwise the sentence says "no significant difference".

use serde::Serialize;

use crate::report::{GroupReport, SeedGroupReport};
use crate::stats::compare::{Comparison, ComparisonTable};
use crate::stats::fmt_num;

/// The sweep that answers every part.
pub const ANSWER_SWEEP: &str = "configs/sweeps/answer.toml";

/// One sentence and the runs behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// The sentence.
    pub text: String,
    /// Names of the runs its numbers come from.
    pub runs: Vec<String>,
}

/// One part of the question.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    /// The question.
    pub title: String,
    /// What the runs show.
    pub statements: Vec<Statement>,
    /// What they cannot show, and the sweep that would.
    pub gaps: Vec<String>,
}

/// The four parts, in the question's order.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    /// Normalisation, geometry, dynamics, cost.
    pub parts: Vec<Part>,
}

impl Findings {
    /// The findings of the task groups' numbers against `baseline`.
    pub fn of(groups: &[GroupReport], baseline: &str) -> Self {
        Self {
            parts: vec![
                crate::findings_parts::normalisation(groups, baseline),
                crate::findings_parts::geometry(groups),
                crate::findings_parts::dynamics(groups),
                crate::findings_parts::cost(groups, baseline),
            ],
        }
    }

    /// The findings as Markdown (the opening section of `report.md`).
    pub fn markdown(&self) -> String {
        let mut s = String::from("## Findings\n\n");
        s += "Differences are mean over seeds minus the baseline's, with a 95% Welch interval; \
              *significant* means Holm-corrected p < 0.05 across the configurations of one quantity.\n\n";
        for (i, p) in self.parts.iter().enumerate() {
            s += &format!("### {}. {}\n\n", i + 1, p.title);
            for st in &p.statements {
                s += &format!("- {}\n", st.text);
            }
            for g in &p.gaps {
                s += &format!("- *Not answered here:* {g}\n");
            }
            if p.statements.is_empty() && p.gaps.is_empty() {
                s += "- Nothing in these runs bears on this part.\n";
            }
            s += "\n";
        }
        s
    }
}

/// A p-value as text (`< 0.001` below that).
pub fn p_text(p: f64) -> String {
    if p < 0.001 { "< 0.001".into() } else { format!("{p:.3}") }
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

/// `0.123 ± 0.004` of a seed group's number, or `-`.
pub fn mean_text(sg: &SeedGroupReport, key: &str, digits: usize) -> String {
    sg.numbers.get(key).map_or("-".into(), |m| m.text(digits))
}

/// A number with `digits` decimals.
pub fn num(x: f64, digits: usize) -> String {
    fmt_num(x, digits)
}
