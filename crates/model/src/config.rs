//! Strict reading of configuration values: unknown keys are errors that name the key.
//!
//! serde's `deny_unknown_fields` does not work with `#[serde(flatten)]` or internally tagged
//! enums, which the model configs use; instead a value is read, written back, and every key of
//! the input that did not survive the round trip is reported by its dotted path.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Reads `T` from `value`, rejecting unknown keys. `root` prefixes paths in messages (e.g. `model`).
pub fn from_value_strict<T: Serialize + DeserializeOwned>(value: Value, root: &str) -> Result<T, String> {
    let parsed: T = serde_json::from_value(value.clone()).map_err(|e| format!("{root}: {e}"))?;
    let back = serde_json::to_value(&parsed).map_err(|e| format!("{root}: {e}"))?;
    match first_unknown_key(&value, &back, root) {
        Some(path) => Err(format!("unknown key `{path}`")),
        None => Ok(parsed),
    }
}

fn first_unknown_key(input: &Value, known: &Value, path: &str) -> Option<String> {
    let (Value::Object(a), Value::Object(b)) = (input, known) else { return None };
    for (k, v) in a {
        let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        match b.get(k) {
            None => return Some(sub),
            Some(w) => {
                if let Some(p) = first_unknown_key(v, w, &sub) {
                    return Some(p);
                }
            }
        }
    }
    None
}
