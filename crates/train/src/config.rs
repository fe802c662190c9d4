//! The run configuration: `seed`, `[model]`, `[task]`, `[train]`, read strictly from TOML,
//! with dotted `--set key=value` overrides.
//!
//! Unknown keys are errors naming the key by its dotted path (`train.stpes`); invalid values
//! name the field (`train.lr must be > 0`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use attnlab_model::ModelConfig;
use attnlab_model::config::from_value_strict;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::tasks::{AnyTask, TaskConfig, TaskEnv, build_task};
pub use crate::train_config::{TrainConfig, non_negative, positive};

/// A whole run: what to train, on what, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Run name; the default output directory is `checkpoints/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Seed of everything random: weights, data, batch order.
    pub seed: u64,
    /// The model (`kind = "gpt"`, ...).
    pub model: ModelConfig,
    /// The task (`kind = "text"`, `"recall"`, ...).
    pub task: TaskConfig,
    /// Optimisation and bookkeeping.
    pub train: TrainConfig,
}

impl RunConfig {
    /// Reads a TOML run config and applies `overrides` (`key=value`, dotted keys).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut value = toml_to_value(&text).with_context(|| format!("parsing {}", path.display()))?;
        apply_overrides(&mut value, overrides)?;
        Self::from_value(value).with_context(|| format!("in {}", path.display()))
    }

    /// Reads a run config from a JSON value (e.g. a run's `config.json`) strictly, and validates it.
    pub fn from_value(mut value: Value) -> Result<Self> {
        fill_task_set_fields(&mut value);
        let Value::Object(mut top) = value else { bail!("a run config must be a table") };
        let model = section(&mut top, "model")?;
        let task = section(&mut top, "task")?;
        let train = section(&mut top, "train")?;
        let seed = match top.remove("seed") {
            Some(v) => parse_field::<u64>(v, "seed")?,
            None => bail!("missing key `seed`"),
        };
        let name = match top.remove("name") {
            Some(v) => Some(parse_field::<String>(v, "name")?),
            None => None,
        };
        if let Some(key) = top.keys().next() {
            bail!("unknown key `{key}`")
        }
        let run = Self {
            name,
            seed,
            model: model_section(model)?,
            task: strict(task, "task")?,
            train: strict(train, "train")?,
        };
        run.validate()?;
        Ok(run)
    }

    /// Validates every section, naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name
            && (name.is_empty() || name.contains(['/', '\\']))
        {
            bail!("name must be a non-empty string without path separators, got {name:?}")
        }
        self.train.validate()?;
        self.task.validate()
    }

    /// Builds the run's task ([`build_task`]) and returns the resolved config (the model with
    /// the fields the task determines and every default written out, as saved in
    /// `config.json`) and the task.
    pub fn build_task(&self, env: &TaskEnv) -> Result<(RunConfig, Box<AnyTask>)> {
        let (model, task) = build_task(&self.task, &self.model, &self.train, self.seed, env)?;
        Ok((RunConfig { model, ..self.clone() }, task))
    }

    /// The config as JSON (as saved in `config.json`).
    pub fn to_value(&self) -> Result<Value> {
        serde_json::to_value(self).context("serialising the run config")
    }
}

fn section(top: &mut Map<String, Value>, key: &str) -> Result<Value> {
    top.remove(key).with_context(|| format!("missing section `[{key}]`"))
}

fn parse_field<T: DeserializeOwned>(v: Value, name: &str) -> Result<T> {
    serde_json::from_value(v).with_context(|| name.to_string())
}

/// Reads `[model]` strictly; its values are validated by `build_task`, once the task has set
/// the fields it determines (a GPT's `vocab_size`, ...).
fn model_section(value: Value) -> Result<ModelConfig> {
    if let Some(Value::String(metric)) = value.get("metric") {
        attnlab_model::MetricKind::parse(metric).context("model.metric")?;
    }
    strict(value, "model")
}

/// Reads `T` from `value`: type errors name the field (`train.lr: invalid type ...`), unknown
/// keys are rejected by dotted path.
pub fn strict<T: Serialize + DeserializeOwned>(value: Value, root: &str) -> Result<T> {
    let typed: std::result::Result<T, _> = serde_path_to_error::deserialize(value.clone());
    if let Err(e) = typed {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let at = if path == "." || path.is_empty() {
            // serde loses the path inside flattened structs: name the one key holding the bad value.
            key_holding(&value, &inner).map_or(root.to_string(), |k| format!("{root}.{k}"))
        } else {
            format!("{root}.{path}")
        };
        bail!("{at}: {inner}")
    }
    from_value_strict::<T>(value.clone(), root).map_err(|msg| {
        let hint = valid_keys::<T>(&value, &msg).map_or(String::new(), |(at, keys)| {
            format!(" (valid keys under `{}`: {})", if at.is_empty() { root } else { &at }, keys.join(", "))
        });
        anyhow::Error::msg(format!("{msg}{hint}"))
    })
}

/// The one top-level key of `value` whose scalar value is quoted in serde's message `msg`
/// (``unknown variant `rmss` ``, `invalid type: string "yes"`), if exactly one is.
fn key_holding(value: &Value, msg: &str) -> Option<String> {
    let quoted: Vec<&str> = msg.split(['`', '"']).skip(1).step_by(2).collect();
    let mut keys = value.as_object()?.iter().filter(|(_, v)| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) => v.to_string(),
            _ => return false,
        };
        quoted.contains(&text.as_str())
    });
    match (keys.next(), keys.next()) {
        (Some((k, _)), None) => Some(k.clone()),
        _ => None,
    }
}

/// For an ``unknown key `a.b.c` `` message about `value` read as `T`: the parent path
/// (`a.b`, without the root) and the keys `T` knows there, sorted.
fn valid_keys<T: Serialize + DeserializeOwned>(value: &Value, msg: &str) -> Option<(String, Vec<String>)> {
    let path = msg.strip_prefix("unknown key `")?.strip_suffix('`')?;
    let back = serde_json::to_value(serde_json::from_value::<T>(value.clone()).ok()?).ok()?;
    let parts: Vec<&str> = path.split('.').collect();
    let parents = parts.get(1..parts.len().saturating_sub(1)).unwrap_or_default();
    let mut at = &back;
    for p in parents {
        at = at.get(p)?;
    }
    let mut keys: Vec<String> = at.as_object()?.keys().cloned().collect();
    keys.sort();
    Some((parts[..parts.len().saturating_sub(1)].join("."), keys))
}

/// Fields a task sets on a GPT (`vocab_size`, `block_size`) may be left out of `[model]`;
/// they are filled with 0 here and set by the task (see `Task::configure_model`).
fn fill_task_set_fields(value: &mut Value) {
    if let Some(Value::Object(model)) = value.get_mut("model")
        && model.get("kind").and_then(Value::as_str) == Some("gpt")
    {
        for key in ["vocab_size", "block_size"] {
            model.entry(key).or_insert(Value::from(0));
        }
    }
}

/// Parses TOML text into a JSON value; `inf` and `nan` are errors naming their key
/// ([`reject_non_finite`]).
pub fn toml_to_value(text: &str) -> Result<Value> {
    let table: toml::Table = toml::from_str(text)?;
    for (key, v) in &table {
        reject_non_finite(v, key)?;
    }
    Ok(serde_json::to_value(table)?)
}

/// Rejects non-finite floats (`inf`, `nan`) in `v` at dotted key `at`, naming the key. Configs
/// are read through JSON, which has no such numbers: serde_json would turn them into `null`, and
/// the error would then name the wrong problem (`invalid type: null`, or an unknown key).
pub fn reject_non_finite(v: &toml::Value, at: &str) -> Result<()> {
    match v {
        toml::Value::Float(f) if !f.is_finite() => bail!("{at}: {f} is not a finite number"),
        toml::Value::Table(t) => t.iter().try_for_each(|(k, v)| reject_non_finite(v, &format!("{at}.{k}"))),
        toml::Value::Array(a) => a.iter().try_for_each(|v| reject_non_finite(v, at)),
        _ => Ok(()),
    }
}

/// Applies `key=value` overrides; the value is a TOML scalar (number, bool, quoted string),
/// and a bare word is a string (`model.metric=idw`). Keys are dotted paths; a key the config
/// does not know is rejected when the config is read.
pub fn apply_overrides(value: &mut Value, overrides: &[String]) -> Result<()> {
    for item in overrides {
        let Some((key, raw)) = item.split_once('=') else {
            bail!("override `{item}` is not of the form key=value")
        };
        if let Some(v) = scalar_toml(raw.trim()) {
            reject_non_finite(&v, key.trim())?;
        }
        set_dotted(value, key.trim(), parse_scalar(raw.trim()))
            .with_context(|| format!("applying override `{item}`"))?;
    }
    Ok(())
}

/// Parses an override value as a TOML scalar; anything else is taken as a string.
pub fn parse_scalar(raw: &str) -> Value {
    match scalar_toml(raw) {
        Some(v) => serde_json::to_value(v).unwrap_or_else(|_| Value::String(raw.to_string())),
        None => Value::String(raw.to_string()),
    }
}

/// `raw` read as a TOML value, if it is one.
fn scalar_toml(raw: &str) -> Option<toml::Value> {
    let parsed: std::result::Result<toml::Table, _> = toml::from_str(&format!("v = {raw}"));
    parsed.ok().and_then(|mut t| t.remove("v"))
}

/// Sets `value[a][b][c] = new` for the key `a.b.c`, creating the last key if needed; the
/// parents must exist as tables.
pub fn set_dotted(value: &mut Value, key: &str, new: Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("`{key}` is not a valid dotted key")
    }
    let (last, parents) = parts.split_last().context("empty key")?;
    let mut cur = value;
    for (i, p) in parents.iter().enumerate() {
        let here = parts[..=i].join(".");
        cur = match cur {
            Value::Object(m) => m.get_mut(*p).with_context(|| format!("unknown key `{here}`"))?,
            _ => bail!("unknown key `{here}`"),
        };
    }
    match cur {
        Value::Object(m) => {
            m.insert((*last).to_string(), new);
            Ok(())
        }
        _ => bail!("`{}` is not a table, so `{key}` cannot be set", parents.join(".")),
    }
}
