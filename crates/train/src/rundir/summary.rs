//! `summary.json`: the trainer's end-of-run numbers and the task's typed scores. A leaf: the
//! scores' type `S` is the registry's (`rundir::Summary` names it).

use serde::{Deserialize, Serialize};

/// The end-of-run summary (`summary.json`) with the task's scores `S`, flattened beside the
/// trainer's numbers (the registry's `TaskScores` tags them by `task`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryOf<S> {
    /// Optimiser steps done.
    pub steps: usize,
    /// Mean training loss over the last steps (up to 20), nats.
    pub final_train_loss: f64,
    /// Validation loss at the end, nats.
    pub final_val_loss: f64,
    /// Lowest validation loss seen, nats.
    pub best_val_loss: f64,
    /// Training throughput (items per second of training-step time).
    pub tokens_per_s: f64,
    /// Wall-clock seconds of the whole run (summed over resumes).
    pub wall_s: f64,
    /// Milliseconds per training step.
    pub ms_per_step: f64,
    /// Attention metric.
    pub metric: String,
    /// Run seed.
    pub seed: u64,
    /// Training compute (GPT runs; absent in older summaries and for other models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<crate::compute::Compute>,
    /// The task's own scores, with the task's name as `task`.
    #[serde(flatten)]
    pub scores: S,
}
