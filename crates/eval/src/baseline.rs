//! Which configuration each configuration is compared with: the one of the same task and
//! settings whose attention metric is the baseline (`dot` unless the caller names another).
//! "Same settings" means the same flattened config up to the seed and the metric's own
//! parameters (`power`, `eps`, `temperature`, ...), which have no meaning across metrics.

use std::collections::BTreeMap;

use attnlab_model::{MetricKind, MetricSpec};
use serde_json::Value;

use crate::group::{TaskGroup, flatten};
use crate::run::Run;

/// The metric every configuration is compared with unless a sweep names another.
pub const DEFAULT_BASELINE: &str = "dot";

/// The dotted config keys of the metric and its parameters (`model.metric`, `model.power`, ...).
pub fn metric_keys() -> Vec<String> {
    let spec = serde_json::to_value(MetricSpec::of(MetricKind::Dot)).unwrap_or(Value::Null);
    let mut keys: Vec<String> = match spec {
        Value::Object(m) => m.keys().map(|k| format!("model.{k}")).collect(),
        _ => Vec::new(),
    };
    // Optional fields are left out when unset (`power`): name them too.
    for k in ["model.metric", "model.power"] {
        if !keys.iter().any(|x| x == k) {
            keys.push(k.into());
        }
    }
    // The score scale is a recipe setting shared by the metrics that have one (and ignored by the
    // others), not a metric's own parameter: runs differing in it are different settings.
    keys.retain(|k| k != "model.attn_scale" && k != "model.learn_scale");
    keys
}

/// A run's settings: its flattened config without the seed, the name and the metric's keys,
/// and without `model.attn_scale` where it is the model's default
/// ([`attnlab_model::ModelConfig::default_scale`], to 1e-12 relative: JSON parsing may move
/// the last digit): a saved config writes the default out for
/// the metrics with a score scale only, so `dot` at its default scale has the settings of an
/// `idw` run, which has none.
pub fn settings(config: &Value) -> BTreeMap<String, Value> {
    let mut flat = flatten(config);
    for k in metric_keys() {
        flat.remove(&k);
    }
    let default = config
        .get("model")
        .and_then(|m| serde_json::from_value::<attnlab_model::ModelConfig>(m.clone()).ok())
        .and_then(|m| m.default_scale());
    if let (Some(set), Some(default)) = (flat.get("model.attn_scale").and_then(Value::as_f64), default)
        && (set - default).abs() <= 1e-12 * default.abs()
    {
        flat.remove("model.attn_scale");
    }
    flat
}

/// For each seed group of `group`, the index of its baseline seed group: the first other group
/// with metric `baseline` and the same [`settings`], apart from the `tuned` key (a tuned sweep
/// compares each configuration at its own chosen value with the baseline at the baseline's).
/// `None` for the baseline groups themselves and for groups whose settings no baseline run
/// shares.
pub fn baselines(group: &TaskGroup, runs: &[Run], baseline: &str, tuned: Option<&str>) -> Vec<Option<usize>> {
    let settings_of = |i: usize| {
        let mut s = settings(&runs[i].config);
        if let Some(key) = tuned {
            s.remove(key);
        }
        s
    };
    let keys: Vec<Option<BTreeMap<String, Value>>> =
        group.seed_groups.iter().map(|sg| sg.runs.first().map(|&i| settings_of(i))).collect();
    group
        .seed_groups
        .iter()
        .enumerate()
        .map(|(i, sg)| {
            if sg.metric == baseline {
                return None;
            }
            group.seed_groups.iter().enumerate().position(|(j, other)| {
                j != i && other.metric == baseline && keys[j].is_some() && keys[j] == keys[i]
            })
        })
        .collect()
}

/// Where the normalisation sits in a run's model, as text: `norm=layernorm, qk_norm=none,
/// attn_norm=true` (the defaults when the config has no such key), or `-` for models without
/// a residual-stream norm (prototype networks).
pub fn placement(config: &Value) -> String {
    let model = config.get("model");
    let Some(norm) = model.and_then(|m| m.get("norm")) else { return "-".into() };
    let get = |k: &str, default: &str| {
        model.and_then(|m| m.get(k)).map_or_else(|| default.to_string(), crate::group::value_text)
    };
    format!(
        "norm={}, qk_norm={}, attn_norm={}",
        crate::group::value_text(norm),
        get("qk_norm", "none"),
        get("attn_norm", "true")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::SeedGroup;

    fn run(metric: &str, lr: f64) -> Run {
        Run {
            dir: format!("/runs/{metric}_{lr}").into(),
            name: format!("{metric}_{lr}"),
            config: serde_json::json!({"model": {"metric": metric}, "train": {"lr": lr}}),
            task_config: None,
            records: Vec::new(),
            summary: None,
        }
    }

    #[test]
    fn a_tuned_key_is_left_out_when_matching_a_baseline() {
        let runs = vec![run("dot", 1e-3), run("idw", 3e-3)];
        let sg =
            |metric: &str, i: usize| SeedGroup { label: metric.into(), metric: metric.into(), runs: vec![i] };
        let group =
            TaskGroup { id: "t".into(), task: "text".into(), seed_groups: vec![sg("dot", 0), sg("idw", 1)] };
        assert_eq!(
            baselines(&group, &runs, "dot", None),
            vec![None, None],
            "different rates: different settings"
        );
        assert_eq!(
            baselines(&group, &runs, "dot", Some("train.lr")),
            vec![None, Some(0)],
            "tuned: dot at its own rate"
        );
    }
}
