//! Minimal AdamW with global-norm clipping over name-sorted variables, for `attnlab bench` until
//! the trainer's optimizer is on main. Same work per step as the trainer: clip, moments, update.

use anyhow::Result;
use candle_core::{Tensor, Var, backprop::GradStore};

/// AdamW state: `(name, variable, m, v)` in name order.
pub struct AdamW {
    params: Vec<(String, Var, Tensor, Tensor)>,
    step: i32,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    clip: f64,
}

impl AdamW {
    /// lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on matrices, clipping at 1.0 (torch_gpt.py).
    pub fn new(vars: Vec<(String, Var)>) -> Result<Self> {
        let params = vars
            .into_iter()
            .map(|(n, v)| {
                let z = v.as_tensor().zeros_like()?;
                Ok((n, v, z.clone(), z))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { params, step: 0, lr: 1e-3, betas: (0.9, 0.99), eps: 1e-8, weight_decay: 0.1, clip: 1.0 })
    }

    /// Clips the gradients to global norm `clip` and takes one AdamW step; returns the norm.
    pub fn step(&mut self, grads: &GradStore) -> Result<f64> {
        let mut sq = 0f64;
        for (name, var, _, _) in &self.params {
            let g = grads.get(var.as_tensor()).ok_or_else(|| anyhow::anyhow!("`{name}` got no gradient"))?;
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        let norm = sq.sqrt();
        let scale = (self.clip / (norm + 1e-6)).min(1.0);
        self.step += 1;
        let (b1, b2) = self.betas;
        let c1 = 1.0 - b1.powi(self.step);
        let c2 = 1.0 - b2.powi(self.step);
        for (name, var, m, v) in &mut self.params {
            let g = grads.get(var.as_tensor()).ok_or_else(|| anyhow::anyhow!("`{name}` got no gradient"))?;
            let g = (g * scale)?;
            *m = ((&*m * b1)? + (&g * (1.0 - b1))?)?;
            *v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + self.eps)?)?;
            let decay = if var.rank() >= 2 { 1.0 - self.lr * self.weight_decay } else { 1.0 };
            var.set(&((var.as_tensor() * decay)? - (update * self.lr)?)?)?;
        }
        Ok(norm)
    }
}
