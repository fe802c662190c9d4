//! The one check every command runs on the directory it writes: never the input run, never
//! inside it, and never over a run or checkpoint the command did not make.

use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};
use attnlab_model::checkpoint::{CONFIG_FILE, LAST_DIR, MODEL_FILE};

use crate::rundir::METRICS_FILE;

/// The command that writes a directory, which decides what it may already hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// `train --out`: a run directory (its own run is resumed or refused by the trainer).
    Train,
    /// `augment --out`: a checkpoint, replaced whole; only an earlier augmentation
    /// (`augment.json`) may be replaced.
    Augment,
    /// `eval --out` / a sweep's report: report files beside whatever else is there, never
    /// in a run or checkpoint.
    Report,
    /// `sweep --out`: a sweep directory (`runs/`, `report/`), never a run or checkpoint.
    Sweep,
    /// A sweep's own report (`OUT/report`), the one report allowed inside a sweep directory.
    SweepReport,
}

/// File that marks a sweep directory (`OUT/sweep.json`, the sweep's plan): `eval --out` never
/// writes into one, which holds runs the report did not make and the sweep's own report.
pub const SWEEP_FILE: &str = "sweep.json";

/// File an augmented checkpoint carries (its report), which marks it as `augment`'s own.
pub const AUGMENT_FILE: &str = "augment.json";

/// Errors, naming both paths, when `out` is one of `inputs` (runs or checkpoints read by the
/// command), lies inside one, contains one while `writer` replaces `out` whole, or holds a run
/// or checkpoint that `writer` does not make.
pub fn check_output(out: &Path, inputs: &[&Path], writer: Writer) -> Result<()> {
    let out_abs = absolute(out);
    for input in inputs {
        let input_abs = absolute(input);
        if out_abs == input_abs {
            bail!("output {} is the input {}: choose another directory", out.display(), input.display())
        }
        if out_abs.starts_with(&input_abs) {
            bail!(
                "output {} is inside the input {}: choose a directory outside it",
                out.display(),
                input.display()
            )
        }
        if writer == Writer::Augment && input_abs.starts_with(&out_abs) {
            bail!(
                "output {} contains the input {} and would be replaced whole: choose another directory",
                out.display(),
                input.display()
            )
        }
    }
    if writer == Writer::Report {
        let mut dir = Some(out_abs.as_path());
        while let Some(d) = dir {
            if d.join(SWEEP_FILE).is_file() {
                bail!(
                    "output {} is inside the sweep directory {} (its runs and report are the sweep's): choose a directory outside it",
                    out.display(),
                    d.display()
                )
            }
            dir = d.parent();
        }
    }
    let mut ancestor = out_abs.parent();
    while let Some(dir) = ancestor {
        if holds_run(dir) || holds_checkpoint(dir) {
            bail!(
                "output {} is inside the run or checkpoint {}: choose a directory outside it",
                out.display(),
                dir.display()
            )
        }
        ancestor = dir.parent();
    }
    let foreign = match writer {
        Writer::Train => holds_checkpoint(&out_abs) && !holds_run(&out_abs),
        Writer::Augment => {
            (holds_run(&out_abs) || holds_checkpoint(&out_abs)) && !out_abs.join(AUGMENT_FILE).is_file()
        }
        Writer::Report | Writer::Sweep | Writer::SweepReport => {
            holds_run(&out_abs) || holds_checkpoint(&out_abs)
        }
    };
    if foreign {
        bail!(
            "output {} already holds a run or checkpoint that this command did not make: choose another directory",
            out.display()
        )
    }
    Ok(())
}

/// A run directory: `config.json` with `metrics.jsonl` or `last/`.
fn holds_run(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && (dir.join(METRICS_FILE).is_file() || dir.join(LAST_DIR).is_dir())
}

/// A checkpoint directory: `config.json` and `model.safetensors`.
fn holds_checkpoint(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && dir.join(MODEL_FILE).is_file()
}

/// `path` made absolute and free of `.`/`..`, resolving symbolic links as far as the path exists.
fn absolute(path: &Path) -> PathBuf {
    let joined = normalise(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    let mut existing = joined;
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        out.push(name);
    }
    out
}

fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
