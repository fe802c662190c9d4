//! Low-impact augmentation of a trained `prototype` run (McCarter 2023, `idw` only): add (or
//! replace) one key/value pair so that a chosen point gets a chosen class, save the result as a
//! checkpoint, and report accuracy before and after on the run's own data.

use std::path::Path;

use anyhow::{Context, Result, bail};
use attnlab_model::{Checkpoint, ModelConfig, PrototypeNet};
use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::config::RunConfig;
use crate::outputs::{AUGMENT_FILE, Writer, check_output};
use crate::tasks::TaskConfig;
use crate::tasks::moons::Points;
use crate::tasks::prototype::PrototypeTask;

/// What one augmentation did.
#[derive(Debug, Clone, Serialize)]
pub struct AugmentReport {
    /// The point.
    pub point: Vec<f64>,
    /// The class asked for.
    pub class: usize,
    /// Class predicted at the point before and after.
    pub predicted_before: usize,
    /// Class predicted at the point after.
    pub predicted_after: usize,
    /// Size of the new value (`<= 0`: nothing to do, the checkpoint is unchanged).
    pub eta: f64,
    /// Prototype replaced, or `None` when a pair was added.
    pub replaced: Option<usize>,
    /// Prototypes after.
    pub n_protos: usize,
    /// Accuracy on the run's training set before and after.
    pub train_accuracy: [f64; 2],
    /// Accuracy on the run's validation set before and after.
    pub val_accuracy: [f64; 2],
    /// Training and validation points whose predicted class changed.
    pub changed_predictions: usize,
}

/// Augments the prototype network of `run` (a run or checkpoint directory) so that `point` is
/// classified as `class`, writes the new checkpoint to `out`, and reports the effect.
pub fn augment_run(
    run: &Path,
    point: &[f64],
    class: usize,
    replace: Option<usize>,
    out: &Path,
) -> Result<AugmentReport> {
    let device = Device::Cpu;
    check_output(out, &[run], Writer::Augment)?;
    let ckpt = Checkpoint::open(run, &device)?;
    let Some(net) = ckpt.model.as_prototype() else {
        bail!(
            "augmentation needs a prototype-network run, but {} holds a `{}` model",
            run.display(),
            ckpt.model.kind_name()
        )
    };
    let run_cfg = RunConfig::from_value(ckpt.run_config.clone())
        .with_context(|| format!("reading the run config of {}", ckpt.dir.display()))?;
    let TaskConfig::Prototype(task_cfg) = &run_cfg.task else {
        bail!("{} was not trained on the prototype task", run.display())
    };
    let task = PrototypeTask::new(task_cfg, run_cfg.seed, &device)?;
    let aug = net.augment(&ckpt.params, point, class, replace)?;
    let (train, val) = (task.train_points(), task.val_points());
    let before = [predict(net, &train.x)?, predict(net, &val.x)?].concat();
    let after = [predict(&aug.model, &train.x)?, predict(&aug.model, &val.x)?].concat();
    let mut config = ckpt.run_config.clone();
    config["model"] = serde_json::to_value(ModelConfig::Prototype(aug.config.clone()))?;
    let report = AugmentReport {
        point: point.to_vec(),
        class,
        predicted_before: predict(net, &[[point[0], point[1]]])?[0],
        predicted_after: predict(&aug.model, &[[point[0], point[1]]])?[0],
        eta: aug.eta,
        replaced: replace.filter(|_| aug.eta > 0.0),
        n_protos: aug.config.n_protos,
        train_accuracy: [PrototypeTask::accuracy(net, train)?, PrototypeTask::accuracy(&aug.model, train)?],
        val_accuracy: [PrototypeTask::accuracy(net, val)?, PrototypeTask::accuracy(&aug.model, val)?],
        changed_predictions: before.iter().zip(&after).filter(|(a, b)| a != b).count(),
    };
    let json = serde_json::to_vec_pretty(&report)?;
    Checkpoint::save(out, &config, &aug.params, &[(AUGMENT_FILE, &json)])
        .with_context(|| format!("saving the augmented checkpoint to {}", out.display()))?;
    Ok(report)
}

/// Predicted classes of 2-D points.
fn predict(net: &PrototypeNet, x: &[[f64; 2]]) -> Result<Vec<usize>> {
    let pts = Points { x: x.to_vec(), label: vec![0; x.len()] };
    let flat: Vec<f32> = pts.x.iter().flatten().map(|v| *v as f32).collect();
    let t = Tensor::from_vec(flat, (x.len(), 2), net.keys().device())?;
    Ok(net.forward(&t)?.argmax(1)?.to_vec1::<u32>()?.into_iter().map(|c| c as usize).collect())
}
