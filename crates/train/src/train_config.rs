//! `[train]`: optimiser, schedule and bookkeeping settings. A leaf (the task registry reads the
//! batch sizes from it; `config.rs` on top reads the whole run).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

fn default_min_lr_ratio() -> f64 {
    0.1
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.99
}
fn default_adam_eps() -> f64 {
    1e-8
}
fn default_weight_decay() -> f64 {
    0.1
}
fn default_grad_clip() -> f64 {
    1.0
}
fn default_eval_interval() -> usize {
    250
}
fn default_eval_batches() -> usize {
    20
}
fn default_ckpt_interval() -> usize {
    500
}
fn default_log_interval() -> usize {
    10
}

/// Optimiser, schedule and bookkeeping settings (`[train]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Number of optimiser steps.
    pub steps: usize,
    /// Sequences (examples) per step.
    pub batch_size: usize,
    /// Peak learning rate (after warm-up).
    pub lr: f64,
    /// Final learning rate of the cosine decay (default `lr / 10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
    /// Length in steps of the warm-up + cosine schedule (default `steps`): the rate reaches
    /// `min_lr` here and stays there. Keep it fixed to extend a run's `steps` on resume
    /// without changing the rates of the steps already planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_decay_steps: Option<usize>,
    /// Linear warm-up steps from 0 to `lr`.
    #[serde(default)]
    pub warmup_steps: usize,
    /// Decoupled weight decay, applied to matrices (rank >= 2) only.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// AdamW first-moment decay.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// AdamW second-moment decay.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// AdamW denominator epsilon.
    #[serde(default = "default_adam_eps")]
    pub adam_eps: f64,
    /// Global gradient-norm clip (0 disables clipping).
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    /// Evaluate on the fixed validation set every this many steps (and at the end).
    #[serde(default = "default_eval_interval")]
    pub eval_interval: usize,
    /// Number of fixed validation batches.
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
    /// Save `last/` every this many steps (and at the end).
    #[serde(default = "default_ckpt_interval")]
    pub ckpt_interval: usize,
    /// Log a line (when not on a terminal) every this many steps.
    #[serde(default = "default_log_interval")]
    pub log_interval: usize,
}

impl TrainConfig {
    /// The final learning rate of the cosine decay.
    pub fn min_lr(&self) -> f64 {
        self.min_lr.unwrap_or(self.lr * default_min_lr_ratio())
    }

    /// Steps over which the schedule decays to `min_lr` (`lr_decay_steps`, default `steps`).
    pub fn decay_steps(&self) -> usize {
        self.lr_decay_steps.unwrap_or(self.steps)
    }

    /// Rejects settings that make no sense, naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.lr_decay_steps == Some(0) {
            bail!("train.lr_decay_steps must be at least 1")
        }
        for (name, v) in [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("eval_interval", self.eval_interval),
            ("eval_batches", self.eval_batches),
            ("ckpt_interval", self.ckpt_interval),
            ("log_interval", self.log_interval),
        ] {
            if v == 0 {
                bail!("train.{name} must be at least 1")
            }
        }
        positive("train.lr", self.lr)?;
        let min_lr = self.min_lr();
        if !(min_lr.is_finite() && (0.0..=self.lr).contains(&min_lr)) {
            bail!("train.min_lr must be between 0 and train.lr ({}), got {min_lr}", self.lr)
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(b.is_finite() && (0.0..1.0).contains(&b)) {
                bail!("train.{name} must be in [0, 1), got {b}")
            }
        }
        positive("train.adam_eps", self.adam_eps)?;
        non_negative("train.weight_decay", self.weight_decay)?;
        non_negative("train.grad_clip", self.grad_clip)
    }
}

/// Errors unless `v` is finite and > 0.
pub fn positive(name: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{name} must be a finite number > 0, got {v}")
    }
    Ok(())
}

/// Errors unless `v` is finite and >= 0.
pub fn non_negative(name: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        bail!("{name} must be a finite number >= 0, got {v}")
    }
    Ok(())
}
