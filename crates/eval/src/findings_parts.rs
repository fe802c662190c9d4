//! The four parts of the findings (see [`crate::findings`]), each from the task groups' tables.

use attnlab_train::tasks::report::{FINAL_VAL_LOSS, Question, Unit};

use crate::dynamics::lr_text;
use crate::findings::{
    ANSWER_SWEEP, mean_text, num, table, table_runs, table_statement, tables_for, verdict,
};
use crate::quantity::{KEY_NORM_CV, NEAR_UNIFORM_HEADS, TV_TO_DOT};
use crate::types::{GroupReport, Part, Statement};

/// Part 1: does normalisation make distance and dot attention the same? Per placement present:
/// key-norm dispersion and TV to dot of the `neg_sq_euclid` runs, and their loss difference.
pub fn normalisation(groups: &[GroupReport], baseline: &str) -> Part {
    let mut statements = Vec::new();
    let mut placements: Vec<String> = Vec::new();
    for g in groups {
        for sg in g.seed_groups.iter().filter(|sg| sg.metric == "neg_sq_euclid") {
            placements.push(sg.placement.clone());
            let loss_table = table(g, FINAL_VAL_LOSS);
            let row = loss_table.and_then(|t| t.rows.iter().find(|c| c.label == sg.label).map(|c| (t, c)));
            let loss = row.map_or_else(
                || format!("no `{baseline}` run with these settings to compare with"),
                |(t, c)| format!("final val loss vs {}: {}", c.baseline, verdict(&t.quantity, c)),
            );
            let tv = sg.numbers.get(TV_TO_DOT);
            let same = tv.map_or(String::new(), |m| {
                if m.mean < 0.01 { " (the two attentions coincide)".into() } else { String::new() }
            });
            let mut runs = sg.runs.clone();
            if let Some((_, c)) = row {
                runs.extend(c.baseline_runs.iter().cloned());
            }
            statements.push(Statement {
                text: format!(
                    "`{}`, {} ({}): key-norm CV of the keys {}; TV between its attention and dot attention from \
                     the same q, k at twice its score scale {}{same}; {loss}.",
                    g.id,
                    sg.label,
                    sg.placement,
                    mean_text(sg, KEY_NORM_CV, 3),
                    mean_text(sg, TV_TO_DOT, 3),
                ),
                runs,
            });
        }
    }
    placements.sort();
    placements.dedup();
    let mut gaps = Vec::new();
    if placements.is_empty() {
        gaps.push(format!(
            "no `neg_sq_euclid` runs, so nothing here compares it with dot; {ANSWER_SWEEP} runs it under pre-norm, \
             qk_norm = rms and attn_norm = false."
        ));
    } else if placements.len() < 2 {
        gaps.push(format!(
            "one normalisation placement only ({}); {ANSWER_SWEEP} compares pre-norm, qk_norm = rms and \
             attn_norm = false.",
            placements[0]
        ));
    }
    Part { title: "Does normalisation make them the same?".into(), statements, gaps }
}

/// Part 2: statistical and geometric differences per metric.
pub fn geometry(groups: &[GroupReport]) -> Part {
    let mut statements = Vec::new();
    for g in groups {
        for t in tables_for(g, Question::Geometry) {
            statements.push(table_statement(g, t));
        }
        let flagged: Vec<String> = g
            .seed_groups
            .iter()
            .filter_map(|sg| {
                let m = sg.numbers.get(NEAR_UNIFORM_HEADS)?;
                (m.mean > 0.0).then(|| format!("{} {}%", sg.label, num(100.0 * m.mean, 0)))
            })
            .collect();
        if !flagged.is_empty() {
            statements.push(Statement {
                text: format!(
                    "`{}`: share of heads within {}% of uniform attention's entropy under the same mask: {}.",
                    g.id,
                    num(100.0 * crate::diagnostics::NEAR_UNIFORM, 0),
                    flagged.join(", ")
                ),
                runs: g.runs.iter().map(|r| r.name.clone()).collect(),
            });
        }
    }
    let gaps = if statements.is_empty() {
        vec![format!(
            "no attention geometry compared with a baseline (GPT or prototype runs of several metrics, one of them \
             the baseline); {ANSWER_SWEEP} provides them."
        )]
    } else {
        Vec::new()
    };
    Part { title: "Statistical and geometric differences?".into(), statements, gaps }
}

/// Part 3: training dynamics: final losses, plateau escape, learning-rate range, logit growth.
pub fn dynamics(groups: &[GroupReport]) -> Part {
    let mut statements = Vec::new();
    let (mut any_escape, mut any_lr) = (false, false);
    for g in groups {
        // The losses first, then the dynamics the curves show, then the other quantities.
        let (losses, others): (Vec<_>, Vec<_>) =
            tables_for(g, Question::Dynamics).partition(|t| t.quantity.unit == Unit::Nats);
        for t in losses {
            statements.push(table_statement(g, t));
        }
        if !g.escapes.is_empty() {
            any_escape = true;
            let th = g.escapes[0].threshold.text();
            let items: Vec<String> = g
                .escapes
                .iter()
                .map(|e| {
                    let when = e.mean_steps.map_or("never".into(), |s| format!("mean step {}", num(s, 0)));
                    format!("{} {}/{} seeds ({when})", e.label, e.reached, e.runs.len())
                })
                .collect();
            statements.push(Statement {
                text: format!("`{}`, seeds reaching {th}: {}.", g.id, items.join(", ")),
                runs: g.escapes.iter().flat_map(|e| e.runs.iter().map(|r| r.0.clone())).collect(),
            });
        }
        for r in &g.lr_ranges {
            any_lr = true;
            let tried: Vec<String> = r
                .rates
                .iter()
                .map(|(lr, ok, div, unf)| {
                    let unf = if *unf > 0 { format!(", {unf} unfinished") } else { String::new() };
                    format!("{} ({ok} trained, {div} diverged{unf})", lr_text(*lr))
                })
                .collect();
            let best = r.largest_stable.map_or("none".into(), lr_text);
            statements.push(Statement {
                text: format!(
                    "`{}`, {}: largest learning rate without divergence {best}; tried {}.",
                    g.id,
                    r.label,
                    tried.join(", ")
                ),
                runs: g.runs.iter().map(|x| x.name.clone()).collect(),
            });
        }
        for t in others {
            statements.push(table_statement(g, t));
        }
    }
    let mut gaps = Vec::new();
    if !any_escape {
        gaps.push(format!(
            "no plateau escape measured (it needs recall runs whose evaluations log `accuracy`, or character-level \
             text); {ANSWER_SWEEP} has both."
        ));
    }
    if !any_lr {
        gaps.push(format!(
            "every setting ran at one learning rate, so the range without divergence is unknown; {ANSWER_SWEEP} \
             has a learning-rate axis."
        ));
    }
    Part { title: "Training dynamics?".into(), statements, gaps }
}

/// Part 4: is it only cost? Throughput and step time relative to the baseline.
pub fn cost(groups: &[GroupReport], baseline: &str) -> Part {
    let mut statements = Vec::new();
    for g in groups {
        for t in tables_for(g, Question::Cost) {
            if t.quantity.unit != Unit::ItemsPerSecond {
                statements.push(table_statement(g, t));
                continue;
            }
            let ratios: Vec<String> = t
                .rows
                .iter()
                .filter(|c| c.mean_base > 0.0)
                .map(|c| format!("{} {}x", c.label, num(c.mean / c.mean_base, 2)))
                .collect();
            statements.push(Statement {
                text: format!("`{}`, {} relative to {baseline}: {}.", g.id, t.header, ratios.join(", ")),
                runs: table_runs(t),
            });
            statements.push(table_statement(g, t));
        }
    }
    let gaps = if statements.is_empty() {
        vec![format!("no throughput recorded against a `{baseline}` baseline.")]
    } else {
        vec![
            "timings come from the runs as they ran (other work on the machine adds noise); `attnlab bench` \
              measures cost on a quiet machine."
                .into(),
        ]
    };
    Part { title: "Only cost?".into(), statements, gaps }
}

/// Part 6: locations or directions? Per task group with in-context error curves: which
/// classical baseline each configuration's curve lies closest to (least squares: a learner like
/// gradient descent on the context; Nadaraya-Watson, Shepard, k-NN: a kernel smoother).
pub fn locations(groups: &[GroupReport]) -> Part {
    let mut statements = Vec::new();
    for g in groups.iter().filter(|g| !g.closest_baselines.is_empty()) {
        let items: Vec<String> = g
            .closest_baselines
            .iter()
            .map(|c| format!("{}: {} (mean gap {})", c.label, c.baseline, num(c.gap, 3)))
            .collect();
        let runs = g.closest_baselines.iter().flat_map(|c| c.runs.iter().cloned()).collect();
        statements.push(Statement {
            text: format!(
                "`{}`, the classical baseline each configuration's error curve (mean over seeds, every \
                 number of in-context examples) lies closest to: {}.",
                g.id,
                items.join("; ")
            ),
            runs,
        });
    }
    let gaps = if statements.is_empty() {
        vec![
            "no in-context regression runs; configs/sweeps/regression.toml compares the metrics with least \
              squares and the kernel smoothers."
                .to_string(),
        ]
    } else {
        vec![
            "closeness is a description, not a test; the error tables (err n=d, err n=2d) give each metric's \
              verdict against dot."
                .to_string(),
        ]
    };
    Part { title: "Locations or directions: least squares or a kernel smoother?".into(), statements, gaps }
}
