//! Helpers shared by the binary's test modules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `attnlab` binary with quiet logs, one thread and no colour.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_attnlab"));
    c.env("RUST_LOG", "warn").env("RAYON_NUM_THREADS", "1").env("NO_COLOR", "1");
    c
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `p` as a string for command lines and configs.
pub fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The command succeeded; returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command failed with a message (exit 1), not a panic; returns stderr.
pub fn failed(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected a clean failure: {err}");
    assert!(err.contains("error:") && !err.contains("panicked"), "{err}");
    err
}
