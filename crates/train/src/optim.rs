//! AdamW with state that can be saved (candle's keeps its moments private), global-norm
//! gradient clipping, and the warm-up + cosine learning-rate schedule.
//!
//! AdamW (Loshchilov & Hutter 2019), for a parameter `p` with gradient `g` at step `t` (1-based):
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `p = p - lr wd p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`,
//! where the decoupled decay `wd` applies to matrices (rank >= 2) only.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::path::Path;

use anyhow::{Context, Result, bail};
use attnlab_model::ParamStore;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::adamw_update;
use crate::config::TrainConfig;

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay (matrices only).
    pub weight_decay: f64,
}

impl AdamWParams {
    /// The optimiser settings of a `[train]` section.
    pub fn from_config(cfg: &TrainConfig) -> Self {
        Self { beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.adam_eps, weight_decay: cfg.weight_decay }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// AdamW over the variables of a [`ParamStore`], in name order.
pub struct AdamW {
    params: AdamWParams,
    slots: Vec<Slot>,
    /// Number of updates done so far.
    t: usize,
}

impl AdamW {
    /// Fresh (zero) moments for every variable of `store`.
    pub fn new(store: &ParamStore, params: AdamWParams) -> Result<Self> {
        let slots = store
            .vars()
            .into_iter()
            .map(|(name, var)| {
                let m = var.zeros_like()?;
                let v = var.zeros_like()?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { params, slots, t: 0 })
    }

    /// Number of updates done so far.
    pub fn steps_done(&self) -> usize {
        self.t
    }

    /// Applies one update with learning rate `lr`. A variable without a gradient is left as is.
    /// CPU `f32` variables take one fused pass, others composed tensor ops, with the same bits
    /// ([`crate::adamw_update`]).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let AdamWParams { beta1, beta2, eps, weight_decay } = self.params;
        self.t += 1;
        let bc1 = 1.0 - beta1.powi(self.t as i32);
        let bc2 = 1.0 - beta2.powi(self.t as i32);
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else { continue };
            let decay = (slot.var.rank() >= 2 && weight_decay > 0.0).then_some(1.0 - lr * weight_decay);
            let k = adamw_update::Consts { beta1, beta2, eps, bc1, bc2, lr, decay };
            (slot.m, slot.v) = adamw_update::apply(&slot.var, g, &slot.m, &slot.v, k)?;
        }
        Ok(())
    }

    /// Writes the moments as `m.<var>` / `v.<var>` and the step count as `t` to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        attnlab_model::files::write_file(path, &self.to_bytes()?)?;
        Ok(())
    }

    /// The state [`AdamW::save`] writes, as safetensors bytes (`m.<var>`, `v.<var>`, `t`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for s in &self.slots {
            tensors.insert(format!("m.{}", s.name), s.m.clone());
            tensors.insert(format!("v.{}", s.name), s.v.clone());
        }
        let device = self.slots.first().map(|s| s.m.device().clone()).unwrap_or(candle_core::Device::Cpu);
        tensors.insert("t".to_string(), Tensor::new(&[self.t as u32], &device)?);
        Ok(attnlab_model::files::safetensors_bytes(&tensors)?)
    }

    /// Restores the state written by [`AdamW::save`]; every variable must have its moments.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let device = self.slots.first().map(|s| s.m.device().clone()).unwrap_or(candle_core::Device::Cpu);
        let bytes = std::fs::read(path).with_context(|| format!("{} could not be read", path.display()))?;
        let mut tensors = candle_core::safetensors::load_buffer(&bytes, &device)
            .with_context(|| format!("{} is truncated or corrupt", path.display()))?;
        for s in &mut self.slots {
            for (key, dst) in [(format!("m.{}", s.name), &mut s.m), (format!("v.{}", s.name), &mut s.v)] {
                let t =
                    tensors.remove(&key).with_context(|| format!("{}: no tensor `{key}`", path.display()))?;
                if t.dims() != s.var.dims() {
                    bail!(
                        "{}: `{key}` has shape {:?}, the model gives {:?}",
                        path.display(),
                        t.dims(),
                        s.var.dims()
                    )
                }
                *dst = t;
            }
        }
        let t = tensors.remove("t").with_context(|| format!("{}: no tensor `t`", path.display()))?;
        self.t = t.to_vec1::<u32>()?.first().copied().unwrap_or(0) as usize;
        Ok(())
    }
}

/// Global L2 norm of every gradient, `sqrt(sum_i |g_i|^2)`, summed in the store's name order.
pub fn grad_norm(store: &ParamStore, grads: &GradStore) -> Result<f64> {
    let mut total = 0.0f64;
    for (_, var) in store.vars() {
        if let Some(g) = grads.get(var.as_tensor()) {
            total += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
    }
    Ok(total.sqrt())
}

/// Scales every gradient by `max_norm / norm` when `norm > max_norm > 0`.
pub fn clip_grads(store: &ParamStore, grads: &mut GradStore, norm: f64, max_norm: f64) -> Result<()> {
    if max_norm <= 0.0 || norm <= max_norm {
        return Ok(());
    }
    let scale = max_norm / (norm + 1e-6);
    for (_, var) in store.vars() {
        if let Some(g) = grads.get(var.as_tensor()) {
            let scaled = (g * scale)?;
            grads.insert(var.as_tensor(), scaled);
        }
    }
    Ok(())
}

/// Learning rate at `step` (0-based), nanoGPT's `get_lr`: linear warm-up
/// `lr (step + 1) / (warmup + 1)` for `step < warmup`, then cosine decay from `lr` to `min_lr`
/// over the remaining steps of the schedule (`min_lr` from `train.lr_decay_steps`, default
/// `train.steps`, on).
pub fn lr_at(step: usize, cfg: &TrainConfig) -> f64 {
    let (lr, min_lr, warmup, total) = (cfg.lr, cfg.min_lr(), cfg.warmup_steps, cfg.decay_steps());
    if step < warmup {
        return lr * (step + 1) as f64 / (warmup + 1) as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    min_lr + 0.5 * (1.0 + (PI * progress).cos()) * (lr - min_lr)
}
