//! Fused layer norm and RMS norm over the last axis, `(.., c) -> (.., c)`, with weight `(c,)`:
//! layer norm `y = (x - mean) r w`, RMS norm `y = x r w`, `r = 1 / sqrt(var + eps)` (for RMS
//! norm `var = mean(x^2)`). Backward, with `xh = y / w` and `gw = g w`:
//! `g_x = r (gw - mean(gw) - xh mean(gw xh))` (RMS norm: no `mean(gw)` term),
//! `g_w = sum over rows of g xh`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, D, Layout, Result, Shape, Tensor};

use super::profile::{OpKind, Pass, Timer};
use super::{Kernel, cpu_f32, enabled, lanes, par_rows, slice};

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

/// Mean (0 for RMS norm) and `1 / sqrt(var + eps)` of one row.
#[inline(always)]
fn stats(n: Norm, x: &[f32]) -> (f32, f32) {
    let c = x.len() as f32;
    let mean = if n.rms { 0.0 } else { lanes::sum(x) / c };
    let var = lanes::sum_sq_dev(x, mean) / c;
    (mean, 1.0 / (var + n.eps).sqrt())
}

/// `o = (x - mean) r w` for one row.
#[multiversion::multiversion(targets = "simd")]
fn forward_row(n: Norm, x: &[f32], w: &[f32], o: &mut [f32]) {
    let (mean, rstd) = stats(n, x);
    for ((o, &v), &w) in o.iter_mut().zip(x).zip(w) {
        *o = (v - mean) * rstd * w;
    }
}

/// `o = r (g w - mean(g w) - x^ mean(g w x^))` for one row (no `mean(g w)` term for RMS norm).
#[multiversion::multiversion(targets = "simd")]
fn grad_x_row(n: Norm, x: &[f32], w: &[f32], g: &[f32], o: &mut [f32]) {
    let c = x.len();
    let cf = c as f32;
    let (mean, rstd) = stats(n, x);
    let (x, w, g, o) = (&x[..c], &w[..c], &g[..c], &mut o[..c]);
    let m_gw = if n.rms { 0.0 } else { lanes::dot(g, w) / cf };
    let m_gwx = lanes::sum_by([g, w, x], |[g, w, x]| g * w * (x - mean)) * rstd / cf;
    for j in 0..c {
        let xh = (x[j] - mean) * rstd;
        o[j] = rstd * (g[j] * w[j] - m_gw - xh * m_gwx);
    }
}

/// `o += g x^` for one row.
#[multiversion::multiversion(targets = "simd")]
fn grad_w_row(n: Norm, x: &[f32], g: &[f32], o: &mut [f32]) {
    let (mean, rstd) = stats(n, x);
    for ((o, &g), &x) in o.iter_mut().zip(g).zip(x) {
        *o += g * (x - mean) * rstd;
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
        let _timer = Timer::start(OpKind::Elementwise, Pass::Forward);
        let (x, w) = (slice(s1, l1)?, slice(s2, l2)?);
        let c = w.len();
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, c, x.len(), |r, o| forward_row(*self, &x[r * c..(r + 1) * c], w, o));
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
        let _timer = Timer::start(OpKind::Elementwise, Pass::Backward);
        let (x, w, g) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let c = w.len();
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, c, x.len(), |r, o| {
            grad_x_row(self.0, &x[r * c..(r + 1) * c], w, &g[r * c..(r + 1) * c], o)
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
        let _timer = Timer::start(OpKind::Elementwise, Pass::Backward);
        let (x, g) = (slice(s1, l1)?, slice(s2, l2)?);
        let c = *l1.dims().last().unwrap_or(&1);
        let n_rows = x.len() / c.max(1);
        let per_block = n_rows.div_ceil(W_BLOCKS);
        let mut out = vec![0f32; W_BLOCKS * c];
        par_rows(&mut out, c, x.len(), |blk, o| {
            for r in (blk * per_block)..((blk + 1) * per_block).min(n_rows) {
                grad_w_row(self.0, &x[r * c..(r + 1) * c], &g[r * c..(r + 1) * c], o);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((W_BLOCKS, c))))
    }
}
