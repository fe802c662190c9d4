//! Atomic JSON files of a run directory.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// Writes `bytes` to `path` through a temporary file and a rename, with the umask's ordinary
/// mode: the run directory's one writer, [`attnlab_model::files::write_file`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(attnlab_model::files::write_file(path, bytes)?)
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    write_atomic(path, &serde_json::to_vec_pretty(value)?)
}

/// Reads a JSON file; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {} as JSON", path.display()))
}
