//! What `--resume` may change: settings that do not alter the steps already taken
//! (`steps` when the schedule's length is kept, the eval / checkpoint / log intervals), and
//! nothing else unless asked (`--allow-changes`, which prints each change).

use std::path::Path;

use anyhow::{Result, bail};

use crate::config::{RunConfig, TrainConfig};

/// The `train.*` settings whose change alters a run's past (its rates, batches, updates or
/// validation set), read from a [`TrainConfig`].
type Read = fn(&TrainConfig) -> String;
const PAST: [(&str, Read); 10] = [
    ("batch_size", |t| t.batch_size.to_string()),
    ("lr", |t| t.lr.to_string()),
    ("min_lr", |t| t.min_lr().to_string()),
    ("warmup_steps", |t| t.warmup_steps.to_string()),
    ("weight_decay", |t| t.weight_decay.to_string()),
    ("beta1", |t| t.beta1.to_string()),
    ("beta2", |t| t.beta2.to_string()),
    ("adam_eps", |t| t.adam_eps.to_string()),
    ("grad_clip", |t| t.grad_clip.to_string()),
    ("eval_batches", |t| t.eval_batches.to_string()),
];

/// Compares the config a run was saved with (`saved`, `done` steps taken) with the one it is
/// resumed with. A different model is always an error; other changes that alter the past are an
/// error naming each one, or — with `allow` — returned as lines to print.
pub fn resume_changes(
    saved: &RunConfig,
    run: &RunConfig,
    done: usize,
    dir: &Path,
    allow: bool,
) -> Result<Vec<String>> {
    if saved.model != run.model {
        bail!(
            "cannot resume {}: its model config differs from this one\n  run:    {}\n  config: {}",
            dir.display(),
            serde_json::to_string(&saved.model)?,
            serde_json::to_string(&run.model)?
        )
    }
    if run.train.steps < done {
        bail!("cannot resume {}: train.steps {} is below the {done} steps already done", dir.display(), run.train.steps)
    }
    let mut changes = Vec::new();
    if saved.seed != run.seed {
        changes.push(format!("seed {} -> {}", saved.seed, run.seed));
    }
    if saved.task != run.task {
        changes.push(format!(
            "task {} -> {}",
            serde_json::to_string(&saved.task)?,
            serde_json::to_string(&run.task)?
        ));
    }
    for (key, read) in PAST {
        let (a, b) = (read(&saved.train), read(&run.train));
        if a != b {
            changes.push(format!("train.{key} {a} -> {b}"));
        }
    }
    let (a, b) = (saved.train.decay_steps(), run.train.decay_steps());
    if a != b {
        changes.push(format!(
            "the schedule's length (train.lr_decay_steps, default train.steps) {a} -> {b}, which changes the learning rate of every step after warm-up; to add steps without changing the schedule, also pass --set train.lr_decay_steps={a}"
        ));
    }
    if changes.is_empty() || allow {
        return Ok(changes);
    }
    bail!(
        "cannot resume {} exactly: these settings differ from the run's and would alter its past:\n  {}\npass --allow-changes to continue anyway",
        dir.display(),
        changes.join("\n  ")
    )
}
