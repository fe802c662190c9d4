//! The cross-entropy and accuracy of token-predicting tasks (text, recall).

use candle_core::{D, Tensor};

use crate::task::Batch;

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
