//! The numbers of one run, as a flat map from dotted keys to values: every number of
//! `summary.json` (`franke.model.rms`, `val_accuracy`, ...), with the basic ones derived from
//! `metrics.jsonl` when the run has no summary yet, and bits per character for text.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::run::{Run, Split};

/// Dotted key -> value.
pub type Numbers = BTreeMap<String, f64>;

/// Every number of the run (see the module doc).
pub fn run_numbers(run: &Run) -> Numbers {
    let mut out = Numbers::new();
    if let Some(summary) = &run.summary {
        flatten_numbers(summary, "", &mut out);
    }
    for (key, value) in derived(run) {
        out.entry(key.to_string()).or_insert(value);
    }
    if run.task() == "text"
        && let Some(loss) = out.get("final_val_loss").copied()
    {
        // Cross-entropy in nats per token; for a character tokenizer a token is a character.
        out.entry("bits_per_token".into()).or_insert(loss / std::f64::consts::LN_2);
    }
    out
}

/// Whether a text run's tokenizer is character-level (then bits per token are bits per character).
pub fn char_level(run: &Run) -> bool {
    let tok = run.config.pointer("/task/tokenizer");
    let text = match tok {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(m)) => m.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
        _ => String::new(),
    };
    text.contains("char")
}

fn flatten_numbers(v: &Value, path: &str, out: &mut Numbers) {
    match v {
        Value::Object(map) => {
            for (k, sub) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                flatten_numbers(sub, &p, out);
            }
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.insert(path.to_string(), x);
            }
        }
        _ => {}
    }
}

/// Numbers that `metrics.jsonl` alone gives.
fn derived(run: &Run) -> Vec<(&'static str, f64)> {
    let train: Vec<_> = run.split(Split::Train).collect();
    let val: Vec<_> = run.split(Split::Val).collect();
    let mut out = Vec::new();
    if let Some(last) = run.records.iter().map(|r| r.step).max() {
        out.push(("steps", last as f64));
    }
    if let Some(r) = train.last() {
        out.push(("final_train_loss", r.loss));
    }
    if let Some(r) = val.last() {
        out.push(("final_val_loss", r.loss));
    }
    if let Some(best) = val.iter().map(|r| r.loss).filter(|x| x.is_finite()).reduce(f64::min) {
        out.push(("best_val_loss", best));
    }
    let mut tps: Vec<f64> = train.iter().filter_map(|r| r.tokens_per_s).filter(|x| x.is_finite()).collect();
    if !tps.is_empty() {
        tps.sort_by(f64::total_cmp);
        out.push(("tokens_per_s", tps[tps.len() / 2]));
    }
    let timed: Vec<(u64, f64)> = train.iter().filter_map(|r| Some((r.step, r.wall_s?))).collect();
    if let (Some(first), Some(last)) = (timed.first(), timed.last())
        && last.0 > first.0
    {
        out.push(("ms_per_step", 1000.0 * (last.1 - first.1) / (last.0 - first.0) as f64));
    }
    if let Some(w) = run.records.iter().filter_map(|r| r.wall_s).reduce(f64::max) {
        out.push(("wall_s", w));
    }
    out
}

/// A column of the final tables: header and dotted key.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// Key into [`Numbers`].
    pub key: &'static str,
    /// Decimals shown.
    pub digits: usize,
}

const fn col(header: &'static str, key: &'static str, digits: usize) -> Column {
    Column { header, key, digits }
}

/// The columns of the final table for a task kind: its scores, then cost.
pub fn columns(task: &str, char_level: bool) -> Vec<Column> {
    let mut cols = vec![col("val loss", "final_val_loss", 4), col("best val", "best_val_loss", 4)];
    match task {
        "text" if char_level => cols.push(col("bits/char", "bits_per_token", 3)),
        "text" => cols.push(col("bits/token", "bits_per_token", 3)),
        "recall" => cols.push(col("val acc", "val_accuracy", 3)),
        "prototype" => {
            cols.push(col("val acc", "val_accuracy", 3));
            cols.push(col("train acc", "train_accuracy", 3));
            cols.push(col("key→data median", "key_distances.median", 3));
            cols.push(col("key→data max", "key_distances.max", 3));
        }
        "scattered" => {
            cols.push(col("val mse", "val_mse", 4));
            cols.push(col("Shepard p2 val mse", "val_shepard_p2_mse", 4));
            cols.push(col("Franke max", "franke.model.max_abs", 4));
            cols.push(col("Franke mean", "franke.model.mean_abs", 4));
            cols.push(col("Franke rms", "franke.model.rms", 4));
        }
        _ => {}
    }
    cols.extend([
        col("steps", "steps", 0),
        col("tokens/s", "tokens_per_s", 0),
        col("ms/step", "ms_per_step", 1),
        col("wall s", "wall_s", 1),
    ]);
    cols
}

/// Classical baselines in a summary's `franke` section: `(name, max_abs, mean_abs, rms)`.
pub fn franke_baselines(numbers: &Numbers) -> Vec<(String, [Option<f64>; 3])> {
    let mut names: Vec<String> = numbers
        .keys()
        .filter_map(|k| k.strip_prefix("franke."))
        .filter_map(|k| k.split_once('.').map(|(m, _)| m.to_string()))
        .filter(|m| m != "model")
        .collect();
    names.dedup();
    names
        .into_iter()
        .map(|m| {
            let get = |s: &str| numbers.get(&format!("franke.{m}.{s}")).copied();
            let vals = [get("max_abs"), get("mean_abs"), get("rms")];
            (m, vals)
        })
        .collect()
}
