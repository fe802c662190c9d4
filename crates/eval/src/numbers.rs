//! The numbers of one run, as a flat map from dotted keys to values: every number of
//! `summary.json` (`franke.model.rms`, `val_accuracy`, ...), with the basic ones derived from
//! `metrics.jsonl` when the run has no summary yet, and the columns its task derives (bits from
//! nats), as the quantity table says ([`crate::quantity`]).

use std::collections::BTreeMap;

use attnlab_train::tasks::nats_to_bits;
use serde_json::Value;

use crate::quantity::Compute;
use crate::run::{Run, Split};

/// Dotted key -> value.
pub type Numbers = BTreeMap<String, f64>;

/// Every number of the run (see the module doc).
pub fn run_numbers(run: &Run) -> Numbers {
    let mut out = Numbers::new();
    if let Some(summary) = run.summary.as_ref().and_then(|s| serde_json::to_value(s).ok()) {
        flatten_numbers(&summary, "", &mut out);
    }
    for (key, value) in derived(run) {
        out.entry(key.to_string()).or_insert(value);
    }
    for q in crate::quantity::table(&run.task_report().columns) {
        match q.compute {
            Compute::Stored | Compute::Heads { .. } => {}
            Compute::BitsFromNats(nats) => {
                if let Some(v) = out.get(nats).copied() {
                    out.entry(q.key.into()).or_insert(nats_to_bits(v));
                }
            }
        }
    }
    out
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
    let timed: Vec<(usize, f64)> = train.iter().filter_map(|r| Some((r.step, r.wall_s?))).collect();
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
