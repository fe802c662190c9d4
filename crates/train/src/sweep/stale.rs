//! Finished runs trained on other inputs than the sweep's files now (an edited corpus, another
//! tokenizer): `RUN/inputs.json` against the inputs the run's task reads today. A sweep refuses
//! to reuse them, as it refuses runs of an edited sweep, unless told to keep them.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use serde_json::Value;

use super::PlannedRun;
use crate::rundir::RunDir;
use crate::tasks::TaskEnv;

/// A finished run whose recorded inputs differ from the sweep's files now.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleRun {
    /// The run's name.
    pub name: String,
    /// Each input that changed: `key: recorded -> now`.
    pub changes: Vec<String>,
}

impl StaleRun {
    /// `NAME (corpus_sha256 1a2b3c4d… -> 5e6f7a8b…)`.
    pub fn line(&self) -> String {
        format!("{} ({})", self.name, self.changes.join(", "))
    }
}

/// The finished runs among `runs` (in `out`) whose `inputs.json` differs from what their task
/// reads now. Each distinct task configuration is built once (on the CPU).
pub fn stale_runs(runs: &[&PlannedRun], out: &Path) -> Result<Vec<StaleRun>> {
    let mut now: HashMap<String, Value> = HashMap::new();
    let mut stale = Vec::new();
    for run in runs {
        let dir = RunDir::new(run.dir(out));
        if !dir.is_finished() {
            continue;
        }
        let Some(recorded) = dir.read_inputs()? else { continue };
        let key = serde_json::to_string(&run.config.task)?;
        if !now.contains_key(&key) {
            let (_, task) = run
                .config
                .build_task(&TaskEnv::on(&Device::Cpu))
                .with_context(|| format!("reading the inputs of run {}", run.name))?;
            now.insert(key.clone(), Value::Object(task.inputs()));
        }
        let current = &now[&key];
        let changes = changes(&recorded, current);
        if !changes.is_empty() {
            stale.push(StaleRun { name: run.name.clone(), changes });
        }
    }
    Ok(stale)
}

/// `key: old -> new` for every key whose value differs (hashes shortened to 12 characters).
fn changes(recorded: &Value, current: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (recorded.as_object().unwrap_or(&empty), current.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let short = |v: Option<&Value>| match v {
        Some(Value::String(s)) if s.chars().count() > 12 => {
            format!("{}…", s.chars().take(12).collect::<String>())
        }
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "none".into(),
    };
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} -> {}", short(a.get(k)), short(b.get(k))))
        .collect()
}
