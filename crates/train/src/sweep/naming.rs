//! Run directory names: `<base>_<key>-<value>_...`, made safe for file systems and distinct
//! within a sweep before anything trains.
//!
//! A name keeps `[A-Za-z0-9_-]` (anything else becomes `_`). A name longer than [`MAX_NAME`]
//! bytes is cut and ends in `-` plus a short hash of the run's full base name and grid values,
//! which stay readable in the run's `sweep_run.json`. Names that collide (also when compared
//! without case, as on macOS and Windows file systems) each get their hash appended.

use std::collections::HashMap;

use anyhow::{Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::PlannedRun;

/// Longest run name, in bytes: well under the 255 of common file systems, leaving room for the
/// temporary siblings that atomic writes create and for report file names.
pub const MAX_NAME: usize = 96;

/// Hex digits of the hash that shortened or colliding names carry.
const HASH_HEX: usize = 8;

/// Keeps `[A-Za-z0-9_-]`, replacing everything else with `_`.
pub fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// A JSON value as short text (strings without quotes).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// The first `HASH_HEX` hex digits of the SHA-256 of `text` (stable across platforms and
/// versions, unlike `std`'s hasher).
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect::<String>()[..HASH_HEX].to_string()
}

/// The readable name of a run: base, then `key-value` per grid value (last key component).
fn readable_name(run: &PlannedRun) -> String {
    let mut parts = vec![sanitize(&run.base)];
    for (key, val) in &run.grid {
        let short = key.rsplit('.').next().unwrap_or(key);
        parts.push(sanitize(&format!("{short}-{}", value_text(val))));
    }
    parts.join("_")
}

/// The identity a hash is taken of: base and full grid values.
fn identity(run: &PlannedRun) -> String {
    serde_json::json!({"base": run.base, "grid": run.grid}).to_string()
}

/// `name` cut so that `name-HASH` fits [`MAX_NAME`].
fn with_hash(name: &str, hash: &str) -> String {
    let keep = MAX_NAME - HASH_HEX - 1;
    let cut = if name.len() > keep { &name[..keep] } else { name };
    format!("{}-{hash}", cut.trim_end_matches(['_', '-']))
}

/// Gives every run its directory name: readable, at most [`MAX_NAME`] bytes, distinct (also
/// without case). Errors only if two runs have the same base and grid values (a hash cannot
/// tell them apart).
pub fn assign_names(runs: &mut [PlannedRun]) -> Result<()> {
    for run in runs.iter_mut() {
        let name = readable_name(run);
        run.name = if name.len() > MAX_NAME { with_hash(&name, &short_hash(&identity(run))) } else { name };
    }
    let mut count: HashMap<String, usize> = HashMap::new();
    for run in runs.iter() {
        *count.entry(run.name.to_lowercase()).or_default() += 1;
    }
    for run in runs.iter_mut() {
        if count[&run.name.to_lowercase()] > 1 {
            let hash = short_hash(&identity(run));
            run.name = if run.name.len() + 1 + HASH_HEX > MAX_NAME {
                with_hash(&run.name, &hash)
            } else {
                format!("{}-{hash}", run.name)
            };
        }
    }
    let mut names: Vec<String> = runs.iter().map(|r| r.name.to_lowercase()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("two runs of the sweep would both be named `{}` (same base and grid values)", w[0])
    }
    Ok(())
}
