//! The one writer of a run's files: every file of a run directory or checkpoint (weights,
//! optimizer moments, configs, logs, summaries) is written by [`write_file`], so each gets the
//! mode the process's umask gives an ordinary file (`0666 & !umask`: 0644 under umask 022,
//! 0600 under 077), whichever library produced its bytes.
//!
//! Libraries that write files themselves do not: safetensors' `serialize_to_file` writes to a
//! `tempfile::NamedTempFile` (always 0600) and renames it. Weights are therefore serialised to
//! bytes ([`safetensors_bytes`]) and written here.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

/// The `__metadata__` of every safetensors file attnlab writes: `{"format": "pt"}`, as
/// PyTorch's writers put it, so that `safe_open(path, "pt").metadata().get("format")` works.
pub const SAFETENSORS_METADATA: [(&str, &str); 1] = [("format", "pt")];

/// Writes `bytes` to `path` through a temporary sibling (`.NAME.tmp-PID`), synced and renamed
/// over `path`: a reader sees the old or the new file, never a part. The file is created by
/// `open(O_CREAT)` with mode 0666, so the umask alone decides its permissions.
///
/// Errors are the OS error, with the file named.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_sibling(path);
    let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(named)
}

/// Serialises `tensors` in the safetensors format (names sorted, as safetensors does), with
/// [`SAFETENSORS_METADATA`] in the header.
pub fn safetensors_bytes(tensors: &HashMap<String, Tensor>) -> candle_core::Result<Vec<u8>> {
    let metadata: HashMap<String, String> =
        SAFETENSORS_METADATA.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), Some(metadata))
        .map_err(|e| candle_core::Error::Msg(format!("serialising tensors: {e}")))
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
