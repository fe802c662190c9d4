//! The task interface: what the trainer asks of every task (language modelling, recall,
//! scattered-data interpolation, prototype classification), and what the registry asks of
//! every task's config ([`TaskSpec`]).
//!
//! A task owns its data, its loss and its scores; the trainer owns the loop, the optimizer and
//! the files. Errors are `anyhow` errors with context (candle's errors convert with `?`).
//!
//! A leaf: it imports no registry. A task computes its own scores type ([`Task::Scores`]); the
//! registry converts it into its enum of every task's scores for `summary.json`.

use anyhow::Result;
use attnlab_model::hub::HubOptions;
use attnlab_model::{Model, ModelConfig};
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::tasks::report::TaskReport;

/// The name a task is registered under (`[task] kind = ...` and `summary.json`'s `task`). The
/// registry implements it for each task's config from its one list of tasks, so a task file
/// reads its name (for its error messages) and never spells it.
pub trait TaskName {
    /// The name (`text`, `recall`, ...).
    const NAME: &'static str;
}

/// The config side of a task, implemented by each task's config struct in the task's own file:
/// what the registry needs to validate it, report it and build it.
pub trait TaskSpec: TaskName {
    /// The task this config builds.
    type Task: Task + 'static;

    /// Rejects settings that make no sense, naming the field.
    fn validate(&self) -> Result<()>;

    /// What the report shows for runs of this task (the registry adds the configuration line).
    fn report(&self) -> TaskReport;

    /// Builds the task (reading the corpus, drawing the validation set, ...).
    fn build(&self, cx: &TaskContext) -> Result<Self::Task>;
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

/// The run's settings a task is built from, beside its own config.
#[derive(Debug, Clone, Copy)]
pub struct TaskContext<'a> {
    /// The model as configured (before the task fills the fields it determines).
    pub model: &'a ModelConfig,
    /// Sequences (examples) per training step (`train.batch_size`).
    pub batch_size: usize,
    /// Number of fixed validation batches (`train.eval_batches`).
    pub eval_batches: usize,
    /// The run seed.
    pub seed: u64,
    /// Device and hub settings.
    pub env: &'a TaskEnv,
}

/// One batch. The meaning of `inputs` is the task's own (token ids for a GPT, context and query
/// points for a set regressor, ...); the trainer only passes batches back to the task.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Model inputs, in the order the task's loss expects them.
    pub inputs: Vec<Tensor>,
    /// Targets (class ids, token ids or values).
    pub targets: Tensor,
    /// Optional per-target weights (e.g. 1 at answer positions, 0 elsewhere).
    pub weights: Option<Tensor>,
    /// Items this batch trains on (tokens for text, points for interpolation), for throughput.
    pub n_items: usize,
}

/// A training task.
pub trait Task {
    /// The task's own typed scores (merged into `summary.json` by the registry).
    type Scores;

    /// Sets the model fields the task determines (e.g. a GPT's `vocab_size` from the tokenizer,
    /// `block_size` from the sequence length) and rejects a model the task cannot use, naming
    /// the field. Called once before the model is built; the default changes nothing.
    fn configure_model(&self, _model: &mut ModelConfig) -> Result<()> {
        Ok(())
    }

    /// The training batch for `step`. Randomness comes from `rng`, which the trainer saves and
    /// restores, so a resumed run sees the same batches as an uninterrupted one.
    fn train_batch(&mut self, step: usize, rng: &mut ChaCha8Rng, batch_size: usize) -> Result<Batch>;

    /// The fixed validation set (the same batches at every evaluation).
    fn val_batches(&self) -> &[Batch];

    /// Mean loss of `model` on `batch`, a scalar tensor connected to the model's variables.
    fn loss(&self, model: &Model, batch: &Batch) -> Result<Tensor>;

    /// The task's own scores of a trained model, merged into `summary.json`
    /// (e.g. `val_accuracy`, or `franke` errors).
    fn scores(&self, model: &Model) -> Result<Self::Scores>;

    /// Cheap scores written on every validation line of `metrics.jsonl` beside the loss (e.g.
    /// recall's `accuracy`, from which the report measures when a run leaves the plateau).
    /// None by default.
    fn eval_scores(&self, _model: &Model) -> Result<Map<String, Value>> {
        Ok(Map::new())
    }

    /// What the run's result depends on beyond its config, recorded in `RUN/inputs.json`
    /// (e.g. the corpus's and the tokenizer's SHA-256): runs that differ here are not seeds of
    /// one configuration, and a resume with different inputs is not exact. Default: nothing.
    fn inputs(&self) -> Map<String, Value> {
        Map::new()
    }

    /// Extra files saved with every checkpoint, such as `tokenizer.json`.
    fn checkpoint_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(Vec::new())
    }
}
