//! Sections of `report.md` for the statistics and the dynamics: differences to the baseline
//! (one table per quantity) and steps to threshold / learning-rate range.

use std::fmt::Write;

use crate::dynamics::lr_text;
use crate::stats::{fmt_num, p_text};
use crate::types::GroupReport;

/// `### Differences to the baseline`: per quantity, each configuration's mean over seeds, its
/// baseline's, the difference with its 95% Welch interval, Welch's p and Holm's p.
pub fn comparisons(s: &mut String, g: &GroupReport) {
    if g.comparisons.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Differences to the baseline\n");
    let _ = writeln!(
        s,
        "Each configuration against the baseline run with the same task and settings: mean ± std over seeds, \
         difference of means with its 95% interval (Welch–Satterthwaite), Welch's two-sided p, and Holm's p \
         across the rows of one table. **Bold**: the interval excludes zero. With one seed on a side no test is \
         possible and the row says so.\n"
    );
    for t in &g.comparisons {
        let digits = t.quantity.diff_digits;
        let _ = writeln!(s, "**{}** (`{}`)\n", t.header, t.key);
        let _ =
            writeln!(s, "| configuration | n | mean | baseline | n | mean | diff [95% CI] | p | p (Holm) |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for c in &t.rows {
            let ms = |m: f64, sd: Option<f64>| match sd {
                Some(sd) => format!("{} ± {}", fmt_num(m, digits), fmt_num(sd, digits)),
                None => fmt_num(m, digits),
            };
            let diff = c.diff_text(digits);
            let diff = if c.excludes_zero() { format!("**{diff}**") } else { diff };
            let (p, ph) = match (c.p, c.p_holm, c.no_test) {
                (Some(p), Some(ph), _) => (p_text(p), p_text(ph)),
                (_, _, Some(why)) => (why.text().to_string(), "-".into()),
                _ => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {diff} | {p} | {ph} |",
                c.label,
                c.n,
                ms(c.mean, c.std),
                c.baseline,
                c.n_base,
                ms(c.mean_base, c.std_base)
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
