//! Per-run analyses that need the checkpoint: learned parameters and attention geometry.
//! Each model kind plugs its own analysis in here (GPT now; set regressors and prototype
//! networks add theirs).

use anyhow::{Result, anyhow};
use attnlab_model::{Checkpoint, Model};
use candle_core::{Device, Tensor};
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
    let Some(ckpt) = run.checkpoint_dir() else { return Err(anyhow!("no checkpoint in last/ or best/")) };
    let n_head = run.config.pointer("/model/n_head").and_then(Value::as_u64).unwrap_or(1) as usize;
    let heads = head_params(&ckpt, n_head)?;
    Ok((!heads.is_empty()).then_some(heads))
}

/// Attention geometry of the run's checkpoint on validation inputs; `None` for model kinds
/// without a geometry analysis.
pub fn analyse_geometry(run: &Run) -> Result<Option<GeometryReport>> {
    let Some(dir) = run.checkpoint_dir() else { return Err(anyhow!("no checkpoint in last/ or best/")) };
    let device = Device::Cpu;
    let ckpt = Checkpoint::load(&dir, &device).map_err(|e| anyhow!("loading {}: {e}", dir.display()))?;
    #[allow(unreachable_patterns)] // other model kinds arrive with their branches
    match &ckpt.model {
        Model::Gpt(gpt) => {
            let (tokens, inputs) = gpt_inputs(run, gpt.config().vocab_size, gpt.config().block_size, &device)?;
            Ok(Some(GeometryReport { inputs, heads: gpt_geometry(gpt, &tokens)? }))
        }
        _ => Ok(None),
    }
}

/// Token ids `(b, t)` for a GPT run's geometry, and their description.
fn gpt_inputs(_run: &Run, vocab: usize, block: usize, device: &Device) -> Result<(Tensor, String)> {
    let t = block.min(GEOMETRY_LEN);
    let tokens = fixed_tokens(GEOMETRY_SEQS, t, vocab, device)?;
    Ok((tokens, format!("{GEOMETRY_SEQS} fixed pseudo-random token sequences of length {t}")))
}
