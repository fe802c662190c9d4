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
