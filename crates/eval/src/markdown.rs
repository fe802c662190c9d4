//! `report.md`: the report as Markdown tables and picture links.

use std::fmt::Write;

use attnlab_train::tasks::Column;

use crate::numbers::franke_baselines;
use crate::stats::{MeanStd, fmt_num, per_layer_mean};
use crate::types::{Findings, GroupReport, Report};

/// Renders the whole report.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# attnlab report\n");
    let tasks: Vec<String> = report.groups.iter().map(|g| format!("`{}`", g.id)).collect();
    let _ = writeln!(
        s,
        "{} runs in {} task group(s): {}. Numbers are final values from each run's `summary.json` \
         (or its `metrics.jsonl` while it has none); `a ± b` is mean ± sample standard deviation over seeds.\n",
        report.n_runs,
        report.groups.len(),
        tasks.join(", ")
    );
    if !report.duplicates.is_empty() {
        let _ = writeln!(s, "Given more than once and counted once: {}.\n", report.duplicates.join(", "));
    }
    if !report.not_started.is_empty() {
        let _ = writeln!(s, "Not started (no metrics yet), left out: {}.\n", report.not_started.join(", "));
    }
    s += &findings(&report.findings);
    for g in &report.groups {
        group(&mut s, g);
    }
    s += &crate::screen::unreadable_section(&report.unreadable);
    s
}

/// The findings (the opening section of `report.md`).
fn findings(f: &Findings) -> String {
    let mut s = String::from("## Findings\n\n");
    s += "Differences are mean over seeds minus the baseline's, with a 95% interval per comparison (not \
          corrected for multiplicity); the test is a paired t on per-seed differences when every seed ran on \
          both sides, else Welch's. Each comparison ends in one of three verdicts, at the family-wise level \
          over the configurations of one quantity: *different* (Holm-corrected p < 0.05), *equivalent within \
          ±δ* (both one-sided tests of TOST reject, Holm-corrected p < 0.05, with the quantity's margin δ) or \
          *not resolved*, with the smallest difference the seeds could detect (80% power at the observed \
          spread, α = 0.05 / rows). Ratios are of means, with Fieller's 95% interval.\n\n";
    for (i, p) in f.parts.iter().enumerate() {
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

fn group(s: &mut String, g: &GroupReport) {
    match &g.tuned_key {
        Some(key) => {
            let _ = writeln!(
                s,
                "## Task `{}` ({} runs at each configuration's chosen `{key}`; every tried value is under \"Tuned `{key}`\")\n",
                g.id,
                g.runs.len()
            );
        }
        None => {
            let _ = writeln!(s, "## Task `{}` ({} runs)\n", g.id, g.runs.len());
        }
    }
    let _ = writeln!(s, "Task configuration: `{}`\n", g.task_config);
    let cols = &g.columns;
    let _ = writeln!(s, "### Final numbers, mean ± std over seeds\n");
    table_header(s, "configuration", "seeds", cols);
    for sg in &g.seed_groups {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| sg.numbers.get(c.key).map_or("-".into(), |m: &MeanStd| m.text(c.digits)))
            .collect();
        let _ = writeln!(s, "| {} | {} | {} |", sg.label, sg.runs.len(), cells.join(" | "));
    }
    if let Some(first) = g.runs.first() {
        let base = franke_baselines(&first.numbers);
        if !base.is_empty() {
            let _ = writeln!(s, "\nClassical baselines on Franke's F1 (same points for every run):\n");
            let _ = writeln!(s, "| method | max abs | mean abs | rms |\n|---|---|---|---|");
            for (name, vals) in base {
                let v: Vec<String> = vals.iter().map(|x| x.map_or("-".into(), |x| fmt_num(x, 4))).collect();
                let _ = writeln!(s, "| {name} | {} |", v.join(" | "));
            }
        }
    }
    let _ = writeln!(s);
    crate::sections::comparisons(s, g);
    crate::sections::dynamics(s, g);
    crate::sections::tuning(s, g);
    crate::sections::scaling(s, g);
    let _ = writeln!(s, "### Runs\n");
    table_header(s, "run", "seed", cols);
    for r in &g.runs {
        let cells: Vec<String> =
            cols.iter().map(|c| r.numbers.get(c.key).map_or("-".into(), |x| fmt_num(*x, c.digits))).collect();
        let done = match (r.non_finite_weights, r.finished) {
            (true, _) => " (non-finite weights: no numbers)",
            (false, true) => "",
            (false, false) => " (unfinished)",
        };
        let seed = r.seed.map_or("-".into(), |x| x.to_string());
        let _ = writeln!(s, "| {}{done} | {seed} | {} |", r.name, cells.join(" | "));
    }
    let _ = writeln!(s, "\n### Loss curves\n");
    for f in g.figures.iter().filter(|f| f.contains("_loss_") && f.ends_with(".png")) {
        let _ = writeln!(s, "![{f}]({f})\n");
    }
    let _ = writeln!(s, "SVG versions lie beside the PNGs. Training curves are smoothed (EMA 0.9).\n");
    for f in g.task_figures.iter().filter(|f| f.ends_with(".png")) {
        let _ = writeln!(s, "### What the models learned\n\n![{f}]({f})\n");
    }
    params_section(s, g);
    geometry_section(s, g);
    notes_section(s, g);
}

fn table_header(s: &mut String, first: &str, second: &str, cols: &[Column]) {
    let heads: Vec<&str> = cols.iter().map(|c| c.header).collect();
    let _ = writeln!(s, "| {first} | {second} | {} |", heads.join(" | "));
    let _ = writeln!(s, "|---|---|{}", "---|".repeat(cols.len()));
}

fn params_section(s: &mut String, g: &GroupReport) {
    if g.runs.iter().all(|r| r.params.is_none()) {
        return;
    }
    let _ = writeln!(s, "### Learned attention parameters, per layer (mean over heads and seeds)\n");
    let _ = writeln!(
        s,
        "Frobenius norms of each head's slice of W_q, W_k, W_v, W_o, and the three leading singular values \
         of the head's score form W_q^T W_k (= W_q W_k^T for row vectors). Per head in `report.json`.\n"
    );
    let _ = writeln!(
        s,
        "| configuration | layer | ‖W_q‖ | ‖W_k‖ | ‖W_v‖ | ‖W_o‖ | σ1(W_qW_kᵀ) | σ2 | σ3 | temperature | power |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for sg in &g.seed_groups {
        let heads: Vec<_> = g
            .runs
            .iter()
            .filter(|r| r.label == sg.label)
            .filter_map(|r| r.params.as_ref())
            .flatten()
            .collect();
        type Get = fn(&crate::params::HeadParams) -> Option<f64>;
        let getters: [Get; 10] = [
            |h| Some(h.q.fro),
            |h| Some(h.k.fro),
            |h| Some(h.v.fro),
            |h| Some(h.o.fro),
            |h| h.qk.sv.first().copied(),
            |h| h.qk.sv.get(1).copied(),
            |h| h.qk.sv.get(2).copied(),
            |h| h.temperature,
            |h| h.power,
            |_| None,
        ];
        let cols: Vec<Vec<f64>> = getters[..9]
            .iter()
            .map(|get| per_layer_mean(heads.iter().filter_map(|h| get(h).map(|v| (h.layer, v)))))
            .collect();
        let n_layers = cols.iter().map(Vec::len).max().unwrap_or(0);
        for l in 0..n_layers {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| c.get(l).filter(|v| v.is_finite()).map_or("-".into(), |v| fmt_num(*v, 3)))
                .collect();
            let _ = writeln!(s, "| {} | {l} | {} |", sg.label, cells.join(" | "));
        }
    }
    let _ = writeln!(s);
}

fn geometry_section(s: &mut String, g: &GroupReport) {
    let Some(inputs) = g.runs.iter().find_map(|r| r.geometry.as_ref()).map(|g| g.inputs.clone()) else {
        return;
    };
    let _ = writeln!(s, "### Attention geometry, per layer (mean over heads and seeds)\n");
    let _ = writeln!(
        s,
        "Inputs: {inputs}. Key-norm CV = std/mean of |k| over positions (0 means distance and dot attention \
         coincide for `neg_sq_euclid`); entropy in nats, beside uniform attention's under the same mask \
         (`mean_i ln(i+1)` when causal); near-uniform = share of heads within {near}% of it; entropy (dot) and \
         TV to dot compare with dot-product attention from the same q, k at the same effective scale (dot scale: \
         `2s` for `neg_sq_euclid` at scale s, whose `-s|q-k|^2` is dot at `2s` plus the key bias `-s|k|^2`; \
         the run's own scale s for the other metrics; s is each head's learned scale under `learn_scale`), so \
         TV isolates the key bias; mean distance in positions; \
         max |score| = largest pre-softmax score (logit growth); sink = mean weight on the first position \
         (queries seeing at least two keys), sink heads = share of heads with sink > {sink}; unselected = share \
         of keys no query ranks first.\n",
        near = fmt_num(100.0 * crate::diagnostics::NEAR_UNIFORM, 0),
        sink = crate::diagnostics::SINK_THRESHOLD,
    );
    let _ = writeln!(
        s,
        "| configuration | layer | key-norm CV | entropy | uniform | near-uniform | entropy (dot) | mean distance | TV to dot | dot scale | max abs score | sink | sink heads | unselected |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for sg in &g.seed_groups {
        let heads: Vec<_> = g
            .runs
            .iter()
            .filter(|r| r.label == sg.label)
            .filter_map(|r| r.geometry.as_ref())
            .flat_map(|x| &x.heads)
            .collect();
        type Get = fn(&crate::geometry::HeadGeometry) -> f64;
        let near = |h: &crate::geometry::HeadGeometry| {
            f64::from(u8::from(h.entropy_ratio() >= 1.0 - crate::diagnostics::NEAR_UNIFORM))
        };
        let getters: [Get; 12] = [
            |h| h.key_norm_cv,
            |h| h.entropy,
            |h| h.entropy_uniform,
            near,
            |h| h.entropy_dot,
            |h| h.mean_distance,
            |h| h.tv_to_dot,
            |h| h.dot_scale,
            |h| h.max_logit,
            |h| h.sink_mass,
            |h| f64::from(u8::from(h.sink_mass > crate::diagnostics::SINK_THRESHOLD)),
            |h| h.unselected_keys,
        ];
        let cols: Vec<Vec<f64>> =
            getters.iter().map(|get| per_layer_mean(heads.iter().map(|h| (h.layer, get(h))))).collect();
        for l in 0..cols[0].len() {
            let cells: Vec<String> = cols.iter().map(|c| fmt_num(c[l], 3)).collect();
            let _ = writeln!(s, "| {} | {l} | {} |", sg.label, cells.join(" | "));
        }
    }
    for f in g.figures.iter().filter(|f| f.contains("_geometry") && f.ends_with(".png")) {
        let _ = writeln!(s, "\n![{f}]({f})");
    }
    let _ = writeln!(s);
}

fn notes_section(s: &mut String, g: &GroupReport) {
    let notes: Vec<String> =
        g.runs.iter().flat_map(|r| r.notes.iter().map(move |n| format!("- `{}`: {n}", r.name))).collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "### Notes\n\n{}\n", notes.join("\n"));
    }
}
