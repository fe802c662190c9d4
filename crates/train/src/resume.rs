//! Starting or resuming a run directory: a run without a checkpoint starts again from step 0,
//! and `--resume` may change only settings that do not alter the steps already taken (`steps`
//! when the schedule's length is kept, the eval / checkpoint / log intervals), nothing else
//! unless asked (`--allow-changes`, which prints each change).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::config::{RunConfig, TrainConfig};
use crate::rundir::{self, RunDir};
use crate::tasks::AnyTask;

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
    // Configs saved before defaults were written out (`power`, `attn_scale` unset) mean the
    // defaults of today's version: compare them resolved.
    if saved.model.resolved() != run.model.resolved() {
        bail!(
            "cannot resume {}: its model config differs from this one\n  run:    {}\n  config: {}",
            dir.display(),
            serde_json::to_string(&saved.model)?,
            serde_json::to_string(&run.model)?
        )
    }
    if run.train.steps < done {
        bail!(
            "cannot resume {}: train.steps {} is below the {done} steps already done",
            dir.display(),
            run.train.steps
        )
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

/// Makes the run directory ready; returns whether to continue from its `last/` checkpoint.
///
/// A run that failed before its first `last/` checkpoint leaves only its own files
/// (`config.json`, `metrics.jsonl`, maybe the step-0 `best/`): it is started afresh, also when
/// asked to resume (from step 0).
pub fn prepare_dir(dir: &RunDir, resume: bool) -> Result<bool> {
    let out_dir = dir.root();
    for ckpt in [dir.last_dir(), dir.best_dir()] {
        attnlab_model::checkpoint::recover_dir(&ckpt)?;
    }
    if dir.can_resume() {
        if !resume {
            bail!(
                "{} already holds a run (checkpoint {}); resume it with --resume or choose another --out",
                out_dir.display(),
                dir.last_dir().display()
            )
        }
        return Ok(true);
    }
    let leftovers = [dir.config_path(), dir.metrics_path(), dir.summary_path(), dir.inputs_path()];
    let config: Option<Value> = rundir::read_json(&leftovers[0]).ok();
    let is_run_config = |v: &Value| ["model", "task", "train"].iter().all(|k| v.get(k).is_some());
    if leftovers[0].exists() && !config.as_ref().is_some_and(is_run_config) {
        bail!(
            "{} holds a config.json that is not an attnlab run's: choose another directory",
            out_dir.display()
        )
    }
    if resume || leftovers.iter().any(|p| p.exists()) {
        tracing::warn!(dir = %out_dir.display(), "the run there has no checkpoint yet: starting it again from step 0");
    }
    for file in leftovers {
        if file.exists() {
            std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
        }
    }
    let best = dir.best_dir();
    if best.exists() {
        std::fs::remove_dir_all(&best).with_context(|| format!("removing {}", best.display()))?;
    }
    Ok(false)
}

/// Writes `RUN/inputs.json`; on resume, inputs that differ from the recorded ones (another
/// corpus or tokenizer) are refused unless `allow_changes`.
pub fn record_inputs(task: &AnyTask, dir: &RunDir, resume: bool, allow_changes: bool) -> Result<()> {
    let inputs = Value::Object(task.inputs());
    if resume
        && let Some(saved) = dir.read_inputs()?
        && saved != inputs
    {
        let change = format!("inputs {saved} -> {inputs} (the corpus or tokenizer changed)");
        if !allow_changes {
            bail!(
                "cannot resume {} exactly: {change}; pass --allow-changes to continue anyway",
                dir.root().display()
            )
        }
        tracing::warn!("resuming {} with a change (--allow-changes): {change}", dir.root().display());
    }
    rundir::write_json(&dir.inputs_path(), &inputs)
}
