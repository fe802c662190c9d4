//! Sections of `report.md` for the statistics and the dynamics: differences to the baseline
//! (one table per quantity) and steps to threshold / learning-rate range.

use std::fmt::Write;

use crate::dynamics::lr_text;
use crate::stats::compare::Verdict;
use crate::stats::{fmt_num, p_text};
use crate::types::GroupReport;

/// `### Differences to the baseline`: per quantity, each configuration's mean over seeds, its
/// baseline's, the test (paired or Welch), the difference with its 95% interval, the ratio of
/// means with Fieller's interval, Holm's p, the margin, TOST's Holm p, and the verdict.
pub fn comparisons(s: &mut String, g: &GroupReport) {
    if g.comparisons.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Differences to the baseline\n");
    let _ = writeln!(
        s,
        "Each configuration against the baseline run with the same task and settings: mean ± std over seeds; \
         the test: *paired t* on the per-seed differences when every seed ran on both sides (same seed, same \
         batches and shared initial weights), else *Welch*; the difference of means with its 95% interval \
         (per comparison, not corrected for multiplicity); the ratio of means with Fieller's 95% interval \
         (positive quantities); Holm's p across the rows of one table; the margin ±δ; the TOST p of \
         equivalence within ±δ, Holm-corrected across the rows. Verdict: *different* when Holm's p < 0.05, \
         *equivalent* when TOST's Holm p < 0.05, else *not resolved*, with the smallest difference the seeds \
         detect with 80% power at the observed spread (two-sided, α = 0.05 / rows). **Bold**: the interval \
         excludes zero. With one seed on a side no test is possible and the row says so.\n"
    );
    for t in &g.comparisons {
        let digits = t.quantity.diff_digits;
        let margin = t.quantity.margin.map_or("-".to_string(), |m| m.text());
        let _ = writeln!(s, "**{}** (`{}`, margin {margin})\n", t.header, t.key);
        let _ = writeln!(
            s,
            "| configuration | n | mean | baseline | n | mean | test | diff [95% CI] | ratio [95% CI] | p (Holm) | ±δ | TOST p (Holm) | verdict |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for c in &t.rows {
            let ms = |m: f64, sd: Option<f64>| match sd {
                Some(sd) => format!("{} ± {}", fmt_num(m, digits), fmt_num(sd, digits)),
                None => fmt_num(m, digits),
            };
            let diff = c.diff_text(digits);
            let diff = if c.excludes_zero() { format!("**{diff}**") } else { diff };
            let ratio = c.ratio.map_or("-".into(), |r| {
                format!("{} [{}, {}]", fmt_num(r.ratio, 3), fmt_num(r.low, 3), fmt_num(r.high, 3))
            });
            let test = c.test.map_or("-", |k| k.text());
            let p = |x: Option<f64>| x.map_or("-".to_string(), p_text);
            let delta = c.delta.map_or("-".into(), |d| fmt_num(d, digits));
            let verdict = match (c.verdict, c.no_test, c.detectable) {
                (Verdict::NoTest, Some(why), _) => why.text().to_string(),
                (Verdict::NotResolved, _, Some(d)) => {
                    format!("not resolved (detectable: {})", fmt_num(d, digits))
                }
                (v, _, _) => v.text().to_string(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {test} | {diff} | {ratio} | {} | {delta} | {} | {verdict} |",
                c.label,
                c.n,
                ms(c.mean, c.std),
                c.baseline,
                c.n_base,
                ms(c.mean_base, c.std_base),
                p(c.p_holm),
                p(c.p_tost_holm),
            );
        }
        let _ = writeln!(s);
    }
}

/// `### Training dynamics`: seeds reaching the task's threshold and the learning-rate range.
pub fn dynamics(s: &mut String, g: &GroupReport) {
    if g.escapes.is_empty() && g.lr_ranges.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Training dynamics\n");
    if let Some(first) = g.escapes.first() {
        let _ = writeln!(
            s,
            "First evaluation step with {} (\"never\" if no evaluation got there), per seed.\n",
            first.threshold.text()
        );
        let _ = writeln!(s, "| configuration | seeds reaching it | mean step | per run |\n|---|---|---|---|");
        for e in &g.escapes {
            let per: Vec<String> = e
                .runs
                .iter()
                .map(|(n, st)| format!("{n}: {}", st.map_or("never".into(), |x| x.to_string())))
                .collect();
            let mean = e.mean_steps.map_or("never".into(), |m| fmt_num(m, 0));
            let _ =
                writeln!(s, "| {} | {}/{} | {mean} | {} |", e.label, e.reached, e.runs.len(), per.join(", "));
        }
        let _ = writeln!(s);
    }
    if !g.lr_ranges.is_empty() {
        let _ = writeln!(
            s,
            "Learning rates tried per setting. A run diverged when its loss became non-finite or its final \
             validation loss was no lower than its first. A sweep's runs that stopped early (a \
             non-finite loss stops training) are counted here too, and listed under \"Runs that did not \
             finish\" at the end.\n"
        );
        let _ = writeln!(
            s,
            "| setting | largest rate without divergence | rates: trained / diverged / unfinished |"
        );
        let _ = writeln!(s, "|---|---|---|");
        for r in &g.lr_ranges {
            let rates: Vec<String> =
                r.rates.iter().map(|(lr, a, b, c)| format!("{}: {a}/{b}/{c}", lr_text(*lr))).collect();
            let best = r.largest_stable.map_or("none".into(), lr_text);
            let _ = writeln!(s, "| {} | {best} | {} |", r.label, rates.join(", "));
        }
        let _ = writeln!(s);
    }
}

/// `### Tuned KEY`: each configuration's selection curve (the first seed's final validation
/// loss at every tried value) and its chosen value.
pub fn tuning(s: &mut String, g: &GroupReport) {
    let Some(key) = &g.tuned_key else { return };
    if g.tuning.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Tuned `{key}`\n");
    let _ = writeln!(
        s,
        "Every value was trained at each configuration's first seed; the value with the lowest final \
         validation loss was chosen, and the other seeds ran there only. The tables and pictures above \
         compare each configuration at its own chosen value with its baseline at the baseline's own. \
         attnlab's tasks have no separate test split: the choice was made on the validation loss the \
         report compares, so the first seed's number at the chosen value is optimistic by the \
         selection (the other seeds' are not).\n"
    );
    let _ = writeln!(s, "| configuration | final val loss (first seed) per value | chosen |\n|---|---|---|");
    for c in &g.tuning {
        let per: Vec<String> = c
            .points
            .iter()
            .map(|p| {
                let loss = p.loss.map_or("diverged or failed".into(), |l| fmt_num(l, 3));
                let mark = if Some(p.value) == c.chosen { "**" } else { "" };
                format!("{}: {mark}{loss}{mark}", lr_text(p.value))
            })
            .collect();
        let chosen = c.chosen.map_or("not chosen".into(), lr_text);
        let _ = writeln!(s, "| {} | {} | {chosen} |", c.label, per.join(", "));
    }
    let _ = writeln!(s);
}

/// `### Scaling`: each family's sizes, its fit, and its gap to the baseline family per size
/// (with that size's verdict), the gap's trend and the compute multiplier.
pub fn scaling(s: &mut String, g: &GroupReport) {
    use crate::findings_scaling::{fit_text, flops_text, multiplier_text, span_text, trend_text};
    let Some(sc) = &g.scaling else { return };
    let _ = writeln!(s, "### Scaling: does it hold as models grow?\n");
    let _ = writeln!(
        s,
        "Final validation loss against training FLOPs C (README \"Compute\"), per configuration up to \
         its size. Fits: L(C) = E + A·C^-alpha (least squares over every seed, E profiled), or \
         log-linear L = a + b·log10 C where E is not identified; intervals are 95% percentile \
         bootstraps over seeds. A gap's trend is its least-squares slope against log10 C; steady \
         means its 90% interval lies inside ±{} nats per decade. A percentile bootstrap over few seeds \
         is too narrow (over 3 seeds a rung keeps 2/3 of its variance; on planted ladders the 95% \
         intervals held the truth about 16 times in 20): read a trend from a 3-seed ladder as \
         indicative, and the per-size t-test verdicts (last column below) as the stricter test.\n",
        fmt_num(sc.margin, 3)
    );
    let _ = writeln!(s, "| configuration | sizes | fit |\n|---|---|---|");
    for f in &sc.families {
        let fit = f.fit.as_ref().map_or("-".into(), fit_text);
        let _ = writeln!(s, "| {} | {} | {fit} |", f.label, span_text(f));
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| configuration | size (FLOPs) | seeds | mean (min-max) | against {} at this size |\n|---|---|---|---|---|",
        sc.baseline
    );
    for f in &sc.families {
        for r in &f.rungs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} ({}-{}) | {} |",
                r.label,
                flops_text(r.compute),
                r.n,
                fmt_num(r.mean, 3),
                fmt_num(r.min, 3),
                fmt_num(r.max, 3),
                r.verdict.as_deref().unwrap_or("-")
            );
        }
    }
    let _ = writeln!(s);
    let versus: Vec<_> = sc.families.iter().filter_map(|f| f.versus.as_ref().map(|v| (f, v))).collect();
    if !versus.is_empty() {
        let _ = writeln!(
            s,
            "| configuration | against | gap and its trend | compute multiplier |\n|---|---|---|---|"
        );
        for (f, v) in versus {
            let trend = v
                .trend
                .as_ref()
                .map_or("fewer than 2 shared sizes".into(), |t| trend_text(t, v.direction, sc.margin));
            let _ = writeln!(
                s,
                "| {} | {} | {trend} | {} |",
                f.label,
                v.baseline,
                multiplier_text(&v.multiplier, &sc.baseline)
            );
        }
        let _ = writeln!(s);
    }
}
