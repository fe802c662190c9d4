//! The task interface: what the trainer asks of every task (language modelling, recall,
//! scattered-data interpolation, prototype classification).
//!
//! A task owns its data, its loss and its scores; the trainer owns the loop, the optimizer and
//! the files. Errors are `anyhow` errors with context (candle's errors convert with `?`).

use anyhow::Result;
use attnlab_model::{Model, ModelConfig};
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::tasks::TaskScores;

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
    /// Short name (`text`, `recall`, `scattered`, `prototype`).
    fn name(&self) -> &'static str;

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
    fn scores(&self, model: &Model) -> Result<TaskScores>;

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
