//! Per-run analyses that need the checkpoint: learned parameters and attention geometry.
//! Each model kind plugs its own analysis in here (GPT now; set regressors and prototype
//! networks add theirs).

use anyhow::{Context, Result};
use attnlab_model::Checkpoint;
use attnlab_train::{RunConfig, TaskEnv};
use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use serde_json::Value;

use crate::geometry::{HeadGeometry, fixed_tokens, gpt_geometry};
use crate::params::{HeadParams, head_params};
use crate::run::Run;

/// Validation sequences used for geometry: how many, and at most how long.
pub const GEOMETRY_SEQS: usize = 8;
/// Longest geometry sequence (capped by the model's block size).
pub const GEOMETRY_LEN: usize = 64;

/// A run's attention geometry and where its inputs came from.
#[derive(Debug, Clone, Serialize)]
pub struct GeometryReport {
    /// Description of the inputs (e.g. `8 fixed pseudo-random token sequences of 64`).
    pub inputs: String,
    /// Per layer and head.
    pub heads: Vec<HeadGeometry>,
}

/// Learned-parameter statistics of the run's checkpoint; `None` when it has no attention blocks.
pub fn analyse_params(run: &Run) -> Result<Option<Vec<HeadParams>>> {
    let ckpt = run.checkpoint_dir().context("no checkpoint in last/ or best/")?;
    let n_head = run.config.pointer("/model/n_head").and_then(Value::as_u64).unwrap_or(1) as usize;
    let heads = head_params(&ckpt, n_head)?;
    Ok((!heads.is_empty()).then_some(heads))
}

/// Attention geometry of the run's checkpoint on validation inputs; `None` for model kinds
/// without a geometry analysis (set regressors would need a probed forward pass in the model
/// crate; prototype networks are described by their key-to-data distances and pictures).
pub fn analyse_geometry(run: &Run) -> Result<Option<GeometryReport>> {
    let dir = run.checkpoint_dir().context("no checkpoint in last/ or best/")?;
    let device = Device::Cpu;
    let ckpt = Checkpoint::open(&dir, &device)?;
    let Some(gpt) = ckpt.model.as_gpt() else { return Ok(None) };
    let (tokens, inputs) = gpt_inputs(run, gpt.config().vocab_size, gpt.config().block_size, &device)?;
    Ok(Some(GeometryReport { inputs, heads: gpt_geometry(gpt, &tokens)? }))
}

/// Token ids `(b, t)` for a GPT run's geometry, and their description: the first
/// [`GEOMETRY_SEQS`] sequences of the task's validation set, rebuilt from the run's config; when
/// that fails (corpus moved, config of another version), fixed pseudo-random token ids.
fn gpt_inputs(run: &Run, vocab: usize, block: usize, device: &Device) -> Result<(Tensor, String)> {
    match validation_tokens(run, device) {
        Ok(Some(found)) => return Ok(found),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(run = %run.name, "validation inputs unavailable ({e:#}); using fixed token ids")
        }
    }
    let t = block.min(GEOMETRY_LEN);
    let tokens = fixed_tokens(GEOMETRY_SEQS, t, vocab, device)?;
    Ok((tokens, format!("{GEOMETRY_SEQS} fixed pseudo-random token sequences of length {t}")))
}

/// The first validation sequences of the run's task, if its first input is a `(b, t)` tensor of
/// token ids.
fn validation_tokens(run: &Run, device: &Device) -> Result<Option<(Tensor, String)>> {
    let cfg = RunConfig::from_value(run.config.clone())?;
    let (_, task) = cfg.build_task(&TaskEnv::on(device))?;
    let mut rows = Vec::new();
    let mut n = 0;
    for batch in task.val_batches() {
        let Some(x) = batch.inputs.first() else { continue };
        if x.rank() != 2 || !matches!(x.dtype(), DType::U32 | DType::I64 | DType::U8) {
            return Ok(None);
        }
        let take = (GEOMETRY_SEQS - n).min(x.dim(0)?);
        rows.push(x.narrow(0, 0, take)?.to_dtype(DType::U32)?);
        n += take;
        if n >= GEOMETRY_SEQS {
            break;
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let tokens = Tensor::cat(&rows, 0)?;
    let (b, t) = tokens.dims2()?;
    Ok(Some((
        tokens,
        format!("the first {b} validation sequences of the `{}` task (length {t})", cfg.task.name()),
    )))
}
