//! The tasks, chosen by `[task] kind = ...`, and the one place that builds them.
//!
//! To add a task: a module with its config struct (`#[serde(deny_unknown_fields)]`), its scores
//! struct and report (columns, pictures) and a type implementing [`Task`]; a variant of
//! [`TaskConfig`] and of [`TaskScores`]. The compiler then names the arms to add here
//! ([`TaskConfig::name`], [`TaskConfig::validate`], [`TaskConfig::report`], [`build_task`]).

pub mod augment;
pub mod franke;
pub mod icl_baselines;
pub mod icl_curve;
pub mod moons;
pub mod prototype;
pub mod recall;
pub mod regression;
pub mod report;
pub mod scattered;
pub mod shepard;
pub mod text;
pub mod tokenizer;

use anyhow::{Result, bail};
use attnlab_model::hub::HubOptions;
use attnlab_model::{Gpt, GptConfig, Model, ModelConfig};
use candle_core::{D, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::task::{Batch, Task};
pub use prototype::{PrototypeTask, PrototypeTaskConfig};
pub use recall::{RecallConfig, RecallTask};
pub use regression::{RegressionConfig, RegressionTask};
pub use report::{Column, Picture, TaskReport, TaskScores, Unit, nats_to_bits};
pub use scattered::{ScatteredConfig, ScatteredTask};
pub use text::{TextConfig, TextTask};

/// Configuration of any task; `kind` selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskConfig {
    /// Next-token prediction on a text corpus.
    Text(TextConfig),
    /// Multi-query associative recall (MQAR).
    Recall(RecallConfig),
    /// In-context scattered-data interpolation (set regressor).
    Scattered(ScatteredConfig),
    /// McCarter's prototype networks on two moons.
    Prototype(PrototypeTaskConfig),
    /// In-context regression of linear, sparse linear, ReLU-network and bump functions.
    Regression(RegressionConfig),
}

impl TaskConfig {
    /// The task's name (`text`, `recall`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            TaskConfig::Text(_) => "text",
            TaskConfig::Recall(_) => "recall",
            TaskConfig::Scattered(_) => "scattered",
            TaskConfig::Prototype(_) => "prototype",
            TaskConfig::Regression(_) => "regression",
        }
    }

    /// Rejects settings that make no sense, naming the field.
    pub fn validate(&self) -> Result<()> {
        match self {
            TaskConfig::Text(c) => c.validate(),
            TaskConfig::Recall(c) => c.validate(),
            TaskConfig::Scattered(c) => c.validate(),
            TaskConfig::Prototype(c) => c.validate(),
            TaskConfig::Regression(c) => c.validate(),
        }
    }

    /// What the report shows for runs of this task: columns, pictures, configuration line.
    pub fn report(&self) -> TaskReport {
        match self {
            TaskConfig::Text(c) => c.report(),
            TaskConfig::Recall(c) => c.report(),
            TaskConfig::Scattered(c) => c.report(),
            TaskConfig::Prototype(c) => c.report(),
            TaskConfig::Regression(c) => c.report(),
        }
    }
}

/// What building a task may need besides its config.
#[derive(Debug, Clone)]
pub struct TaskEnv {
    /// Where batches live.
    pub device: Device,
    /// Hub endpoint and cache for `hub:` corpora and tokenizers.
    pub hub: HubOptions,
}

impl TaskEnv {
    /// The default hub settings (`HF_ENDPOINT`, `HF_HOME`) on `device`.
    pub fn on(device: &Device) -> Self {
        Self { device: device.clone(), hub: HubOptions::default() }
    }
}

/// Builds the task of `run`, lets it set the model fields it determines, and validates the
/// model; returns the resolved config (as saved in `config.json`) and the task.
pub fn build_task(run: &RunConfig, env: &TaskEnv) -> Result<(RunConfig, Box<dyn Task>)> {
    let t = &run.train;
    let task: Box<dyn Task> = match &run.task {
        TaskConfig::Text(c) => {
            let block = gpt_config(&run.model, "text")?.block_size;
            Box::new(TextTask::new(c, block, t.batch_size, t.eval_batches, run.seed, &env.device, &env.hub)?)
        }
        TaskConfig::Recall(c) => {
            Box::new(RecallTask::new(c, t.batch_size, t.eval_batches, run.seed, &env.device)?)
        }
        TaskConfig::Scattered(c) => Box::new(ScatteredTask::new(c, run.seed, &env.device)?),
        TaskConfig::Prototype(c) => Box::new(PrototypeTask::new(c, run.seed, &env.device)?),
        TaskConfig::Regression(c) => Box::new(RegressionTask::new(c, run.seed, &env.device)?),
    };
    let mut resolved = run.clone();
    task.configure_model(&mut resolved.model)?;
    resolved.model.validate()?;
    // Every default written out: a later change of a default cannot change this run.
    resolved.model = resolved.model.resolved();
    Ok((resolved, task))
}

/// Checks that `model` is a set regressor over inputs of `dim` coordinates, as `task` needs;
/// the error names `model.dim` and `task.dim`, or the model kind `task` needs.
pub fn set_regressor_of_dim(model: &ModelConfig, dim: usize, task: &str) -> Result<()> {
    match model {
        ModelConfig::SetRegressor(m) if m.dim == dim => Ok(()),
        ModelConfig::SetRegressor(m) => bail!("model.dim ({}) must equal task.dim ({dim})", m.dim),
        _ => bail!("the {task} task needs model.kind = \"set_regressor\""),
    }
}

/// The GPT config inside `model`, or an error saying that `task` needs a GPT.
pub fn gpt_config<'a>(model: &'a ModelConfig, task: &str) -> Result<&'a GptConfig> {
    match model {
        ModelConfig::Gpt(g) => Ok(g),
        _ => bail!("the {task} task needs model.kind = \"gpt\""),
    }
}

/// Like [`gpt_config`], mutable (for [`Task::configure_model`]).
pub fn gpt_config_mut<'a>(model: &'a mut ModelConfig, task: &str) -> Result<&'a mut GptConfig> {
    match model {
        ModelConfig::Gpt(g) => Ok(g),
        _ => bail!("the {task} task needs model.kind = \"gpt\""),
    }
}

/// Fills a size the task decides (`model.<field>` left at 0), or checks that the configured
/// value covers what the task needs (`needed`, described by `source` in the error).
pub fn fill_at_least(field: &str, value: &mut usize, needed: usize, source: &str) -> Result<()> {
    if *value == 0 {
        *value = needed;
    } else if *value < needed {
        bail!("model.{field} {value} is smaller than {source}")
    }
    Ok(())
}

/// The GPT inside `model`, or an error saying that `task` needs one.
pub fn gpt_of<'a>(model: &'a Model, task: &str) -> Result<&'a Gpt> {
    match model.as_gpt() {
        Some(g) => Ok(g),
        None => bail!("the {task} task needs a GPT model"),
    }
}

/// Per-position log-probabilities of the targets: logits `(b, t, v)`, targets `(b, t)` -> `(b, t)`.
pub fn target_log_probs(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    logp.gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?.squeeze(D::Minus1)
}

/// Mean cross-entropy of a batch: `-sum(w * log p(target)) / sum(w)`, with `w = 1` when the
/// batch has no weights. Logits `(b, t, v)`, targets and weights `(b, t)`; returns a scalar.
pub fn batch_loss(logits: &Tensor, batch: &Batch) -> candle_core::Result<Tensor> {
    let lp = target_log_probs(logits, &batch.targets)?;
    match &batch.weights {
        None => lp.mean_all()?.neg(),
        Some(w) => {
            let total = w.sum_all()?.to_scalar::<f32>()?.max(1e-12);
            (lp * w)?.sum_all()? / (-total as f64)
        }
    }
}

/// Fraction of weighted positions where the argmax of `logits` `(b, t, v)` equals the target.
pub fn weighted_accuracy(logits: &Tensor, batch: &Batch) -> candle_core::Result<(f64, f64)> {
    let pred = logits.argmax(D::Minus1)?; // (b, t)
    let hit = pred.eq(&batch.targets)?.to_dtype(candle_core::DType::F32)?;
    let (hits, n) = match &batch.weights {
        None => (hit.sum_all()?.to_scalar::<f32>()?, hit.elem_count() as f32),
        Some(w) => ((hit * w)?.sum_all()?.to_scalar::<f32>()?, w.sum_all()?.to_scalar::<f32>()?),
    };
    Ok((hits as f64, n as f64))
}
