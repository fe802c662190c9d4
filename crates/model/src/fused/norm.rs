//! Fused layer norm and RMS norm over the last axis, `(.., c) -> (.., c)`, with weight `(c,)`:
//! layer norm `y = (x - mean) r w`, RMS norm `y = x r w`, `r = 1 / sqrt(var + eps)` (for RMS
//! norm `var = mean(x^2)`). Backward, with `xh = y / w` and `gw = g w`:
//! `g_x = r (gw - mean(gw) - xh mean(gw xh))` (RMS norm: no `mean(gw)` term),
//! `g_w = sum over rows of g xh`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, D, Layout, Result, Shape, Tensor};

use super::{Kernel, cpu_f32, enabled, par_rows, slice};

/// Number of row blocks whose partial weight gradients are summed (fixed: deterministic).
const W_BLOCKS: usize = 16;

/// Layer norm over the last axis, `(.., c)`, weight `(c,)`; fused on CPU `f32`, else composed.
pub fn layer_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    norm(x, weight, eps, false)
}

/// RMS norm over the last axis, `(.., c)`, weight `(c,)`; fused on CPU `f32`, else composed.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    norm(x, weight, eps, true)
}

fn norm(x: &Tensor, weight: &Tensor, eps: f64, rms: bool) -> Result<Tensor> {
    if enabled(Kernel::Norm) && cpu_f32(x) && cpu_f32(weight) {
        return x.contiguous()?.apply_op2(&weight.contiguous()?, Norm { eps: eps as f32, rms });
    }
    let centred = if rms { x.clone() } else { x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)? };
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(weight)
}

#[derive(Clone, Copy)]
struct Norm {
    eps: f32,
    rms: bool,
}

impl Norm {
    /// Mean (0 for RMS norm) and `1 / sqrt(var + eps)` of one row.
    fn stats(&self, x: &[f32]) -> (f32, f32) {
        let c = x.len() as f32;
        let mean = if self.rms { 0.0 } else { x.iter().sum::<f32>() / c };
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c;
        (mean, 1.0 / (var + self.eps).sqrt())
    }
}

impl CustomOp2 for Norm {
    fn name(&self) -> &'static str {
        "attnlab-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(s1, l1)?, slice(s2, l2)?);
        let c = w.len();
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, c, x.len(), |r, o| {
            let x = &x[r * c..(r + 1) * c];
            let (mean, rstd) = self.stats(x);
            for ((o, &v), &w) in o.iter_mut().zip(x).zip(w) {
                *o = (v - mean) * rstd * w;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let gx = x.apply_op3_no_bwd(w, &g, &NormGradX(*self))?;
        let gw = x.apply_op2_no_bwd(&g, &NormGradW(*self))?.sum(0)?;
        Ok((Some(gx), Some(gw)))
    }
}

/// `g_x` from `(x, w, g)`.
struct NormGradX(Norm);

impl CustomOp3 for NormGradX {
    fn name(&self) -> &'static str {
        "attnlab-norm-grad-x"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let c = w.len();
        let cf = c as f32;
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, c, x.len(), |r, o| {
            let (x, g) = (&x[r * c..(r + 1) * c], &g[r * c..(r + 1) * c]);
            let (mean, rstd) = self.0.stats(x);
            let (mut m_gw, mut m_gwx) = (0f32, 0f32);
            for j in 0..c {
                let gw = g[j] * w[j];
                m_gw += gw;
                m_gwx += gw * (x[j] - mean) * rstd;
            }
            let m_gw = if self.0.rms { 0.0 } else { m_gw / cf };
            let m_gwx = m_gwx / cf;
            for j in 0..c {
                let xh = (x[j] - mean) * rstd;
                o[j] = rstd * (g[j] * w[j] - m_gw - xh * m_gwx);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Partial `g_w` of [`W_BLOCKS`] row blocks, `(W_BLOCKS, c)`, from `(x, g)`.
struct NormGradW(Norm);

impl CustomOp2 for NormGradW {
    fn name(&self) -> &'static str {
        "attnlab-norm-grad-w"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1)?, slice(s2, l2)?);
        let c = *l1.dims().last().unwrap_or(&1);
        let n_rows = x.len() / c.max(1);
        let per_block = n_rows.div_ceil(W_BLOCKS);
        let mut out = vec![0f32; W_BLOCKS * c];
        par_rows(&mut out, c, x.len(), |blk, o| {
            for r in (blk * per_block)..((blk + 1) * per_block).min(n_rows) {
                let (x, g) = (&x[r * c..(r + 1) * c], &g[r * c..(r + 1) * c]);
                let (mean, rstd) = self.0.stats(x);
                for j in 0..c {
                    o[j] += g[j] * (x[j] - mean) * rstd;
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((W_BLOCKS, c))))
    }
}
