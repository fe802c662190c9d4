//! Grouping runs for comparison: by task (runs of different tasks are reported side by side,
//! never mixed in one table), and within a task by configuration up to the seed.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::run::Run;
use crate::screen::Status;

/// Top-level config keys that do not change what a run computes, ignored when comparing configs.
const IGNORED_KEYS: [&str; 4] = ["name", "seed", "out", "resume"];

/// Runs of one task with the same task configuration.
#[derive(Debug, Clone)]
pub struct TaskGroup {
    /// Identifier used in file names: the task kind, with a number when one kind has several
    /// task configurations (`recall`, `text_2`).
    pub id: String,
    /// The task kind.
    pub task: String,
    /// The runs' indices into the caller's slice, grouped by configuration up to the seed.
    pub seed_groups: Vec<SeedGroup>,
}

impl TaskGroup {
    /// The group with only the seed groups `keep` accepts, their labels unchanged (a tuned
    /// sweep's report compares the seed groups at each configuration's chosen value).
    pub fn only(&self, keep: impl Fn(&SeedGroup) -> bool) -> TaskGroup {
        TaskGroup {
            id: self.id.clone(),
            task: self.task.clone(),
            seed_groups: self.seed_groups.iter().filter(|sg| keep(sg)).cloned().collect(),
        }
    }
}

/// Runs that differ only in their seed.
#[derive(Debug, Clone)]
pub struct SeedGroup {
    /// What tells this group apart from the others of its task: `key=value` for every dotted
    /// config key that differs between groups (e.g. `metric=idw`), or the metric.
    pub label: String,
    /// The attention metric (`model.metric`).
    pub metric: String,
    /// Indices of the runs.
    pub runs: Vec<usize>,
}

/// The config flattened to dotted keys (`model.metric` -> value), without [`IGNORED_KEYS`].
pub fn flatten(config: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Value::Object(map) = config {
        for (k, v) in map {
            if !IGNORED_KEYS.contains(&k.as_str()) {
                flatten_into(v, k, &mut out);
            }
        }
    }
    out
}

fn flatten_into(v: &Value, path: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, sub) in map {
                flatten_into(sub, &format!("{path}.{k}"), out);
            }
        }
        _ => {
            out.insert(path.to_string(), v.clone());
        }
    }
}

/// Groups `runs` by task configuration, then by configuration up to the seed; order follows the
/// first appearance of each group in `runs`.
pub fn group_runs(runs: &[Run]) -> Vec<TaskGroup> {
    let mut tasks: Vec<(String, Value, Vec<usize>)> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let task_cfg = run.config.get("task").cloned().unwrap_or(Value::Null);
        let kind = run.task();
        match tasks.iter_mut().find(|(k, c, _)| *k == kind && *c == task_cfg) {
            Some((_, _, idx)) => idx.push(i),
            None => tasks.push((kind, task_cfg, vec![i])),
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    tasks
        .into_iter()
        .map(|(task, _, idx)| {
            let n = seen.entry(task.clone()).or_insert(0);
            *n += 1;
            let id = if *n == 1 { sanitize(&task) } else { format!("{}_{n}", sanitize(&task)) };
            TaskGroup { id, task, seed_groups: seed_groups(runs, &idx) }
        })
        .collect()
}

fn seed_groups(runs: &[Run], idx: &[usize]) -> Vec<SeedGroup> {
    let mut groups: Vec<(BTreeMap<String, Value>, Vec<usize>)> = Vec::new();
    for &i in idx {
        let mut flat = flatten(&runs[i].config);
        // Runs that differ in standing or in what they were trained on are never pooled.
        flat.insert("status".into(), Value::from(Status::of(&runs[i]).word()));
        for (k, v) in recorded_inputs(&runs[i].dir) {
            flat.insert(format!("inputs.{k}"), v);
        }
        match groups.iter_mut().find(|(f, _)| *f == flat) {
            Some((_, members)) => members.push(i),
            None => groups.push((flat, vec![i])),
        }
    }
    let differing: Vec<String> = match groups.first() {
        Some((first, _)) => {
            let mut keys: Vec<String> = groups.iter().flat_map(|(f, _)| f.keys().cloned()).collect();
            keys.sort();
            keys.dedup();
            keys.retain(|k| groups.iter().any(|(f, _)| f.get(k) != first.get(k)));
            keys
        }
        None => Vec::new(),
    };
    let differing = without_resolved_defaults(differing, &groups);
    groups
        .into_iter()
        .map(|(flat, members)| {
            let metric = runs[members[0]].metric();
            let label = label_of(&flat, &differing, &metric);
            SeedGroup { label, metric, runs: members }
        })
        .collect()
}

/// The keys a saved config writes out for its metric ([`attnlab_model::ModelConfig::resolved`]:
/// the power of the distance metrics, the score scale of the scaled ones). They differ whenever
/// the metric does, so they name a configuration only where the other differing keys do not
/// already tell the configurations apart (a sweep over `model.power`, say).
const RESOLVED_DEFAULTS: [&str; 2] = ["model.power", "model.attn_scale"];

/// `differing` less each resolved-default key whose values the other keys already determine:
/// dropping it leaves every configuration distinct. `metric=dot` against `metric=idw`, not
/// `metric=dot, attn_scale=0.5, power=-` against `metric=idw, attn_scale=-, power=2.0`.
fn without_resolved_defaults(
    mut differing: Vec<String>,
    groups: &[(BTreeMap<String, Value>, Vec<usize>)],
) -> Vec<String> {
    for key in RESOLVED_DEFAULTS {
        let Some(at) = differing.iter().position(|k| k == key) else { continue };
        let rest: Vec<&String> = differing.iter().filter(|k| *k != key).collect();
        let project =
            |f: &BTreeMap<String, Value>| rest.iter().map(|k| f.get(k.as_str()).cloned()).collect::<Vec<_>>();
        let projected: Vec<_> = groups.iter().map(|(f, _)| project(f)).collect();
        let distinct = projected.iter().enumerate().all(|(i, a)| projected[..i].iter().all(|b| b != a));
        if distinct {
            differing.remove(at);
        }
    }
    differing
}

/// What the run recorded it depends on beyond its config (`inputs.json`: corpus and tokenizer
/// hashes, read through [`attnlab_train::RunDir`]); empty when absent or unreadable.
fn recorded_inputs(dir: &std::path::Path) -> serde_json::Map<String, Value> {
    match attnlab_train::RunDir::new(dir).read_inputs() {
        Ok(Some(Value::Object(m))) => m,
        _ => serde_json::Map::new(),
    }
}

/// `metric=idw, n_protos=16`: the differing keys by their last component (full key if the last
/// components clash); the metric alone when nothing differs.
fn label_of(flat: &BTreeMap<String, Value>, differing: &[String], metric: &str) -> String {
    if differing.is_empty() {
        return metric.to_string();
    }
    let short = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    let clash = |k: &str| differing.iter().filter(|o| short(o) == short(k)).count() > 1;
    let mut keys: Vec<&String> = differing.iter().collect();
    // The metric first: it is what the reports compare.
    keys.sort_by_key(|k| (k.as_str() != "model.metric", k.as_str()));
    keys.iter()
        .map(|k| {
            let name = if clash(k) { k.to_string() } else { short(k) };
            format!("{name}={}", value_text(flat.get(k.as_str()).unwrap_or(&Value::Null)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A seed-group label without its `key=...` parts, for keys by the short names labels give
/// them (`lr`, `n_embd`); `all` when nothing is left.
pub fn label_without(label: &str, shorts: &[&str]) -> String {
    let parts: Vec<&str> = label
        .split(", ")
        .filter(|p| !shorts.iter().any(|k| p.strip_prefix(k).is_some_and(|r| r.starts_with('='))))
        .collect();
    if parts.is_empty() { "all".to_string() } else { parts.join(", ") }
}

/// The short name a label gives a dotted key (`n_embd` for `model.n_embd`).
pub fn short_key(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// A JSON value as short text (strings without quotes).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// Keeps `[A-Za-z0-9_-]`, replacing everything else with `_`.
pub fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}
