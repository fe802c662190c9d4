//! Reading a corpus file (the text task reads its corpus, the BPE tokenizer trains on one).

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Reads a corpus file: it must exist, be non-empty and be UTF-8. A leading byte-order mark
/// (U+FEFF) is a marker of the file, not text, and is dropped.
pub fn read_corpus(path: &Path) -> Result<String> {
    let mut bytes = std::fs::read(path).with_context(|| format!("reading corpus {}", path.display()))?;
    if bytes.starts_with("\u{feff}".as_bytes()) {
        bytes.drain(..3);
    }
    if bytes.is_empty() {
        bail!("corpus {} is empty", path.display())
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "corpus {} is not valid UTF-8 (at byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}
