//! Fused cross-entropy: mean over rows of `logsumexp(z_r) - z_r[t_r]` for logits `(n, v)` and
//! targets `(n,)`; backward `g (softmax(z_r) - onehot(t_r)) / n` in one pass.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};

use super::profile::{OpKind, Pass, Timer};
use super::{Kernel, cpu_f32, enabled, fast_exp, lanes, par_rows, slice};

/// Mean cross-entropy of logits `(n, v)` against integer targets `(n,)` (a scalar);
/// fused on CPU `f32`, else `candle_nn::loss::cross_entropy`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, _v) = logits.dims2()?;
    if targets.dims() != [n] {
        bail!("cross_entropy: targets must have shape ({n},), got {:?}", targets.dims())
    }
    if !(enabled(Kernel::Ce) && cpu_f32(logits)) {
        return candle_nn::loss::cross_entropy(logits, targets);
    }
    let targets = targets.to_dtype(DType::U32)?.contiguous()?;
    logits.contiguous()?.apply_op2(&targets, CrossEntropy)
}

/// The `u32` targets of a CPU storage.
fn targets<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [u32]> {
    let Some((lo, hi)) = l.contiguous_offsets() else { bail!("cross_entropy needs contiguous targets") };
    Ok(&s.as_slice::<u32>()?[lo..hi])
}

/// `logsumexp` of one row.
#[inline(always)]
fn logsumexp(z: &[f32]) -> f32 {
    let m = lanes::max(z);
    m + lanes::sum_by([z], |[v]| fast_exp(v - m)).ln()
}

/// [`logsumexp`] of one row, vectorised for the CPU.
#[multiversion::multiversion(targets = "simd")]
fn row_logsumexp(z: &[f32]) -> f32 {
    logsumexp(z)
}

/// `o = scale softmax(z)` for one row.
#[multiversion::multiversion(targets = "simd")]
fn softmax_row(z: &[f32], scale: f32, o: &mut [f32]) {
    let lse = logsumexp(z);
    for (o, &x) in o.iter_mut().zip(z) {
        *o = fast_exp(x - lse) * scale;
    }
}

struct CrossEntropy;

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "attnlab-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = Timer::start(OpKind::Elementwise, Pass::Forward);
        let (z, t) = (slice(s1, l1)?, targets(s2, l2)?);
        let (n, v) = l1.shape().dims2()?;
        if let Some(bad) = t.iter().find(|&&t| t as usize >= v) {
            bail!("cross_entropy: target {bad} is out of range for {v} classes")
        }
        let mut per_row = vec![0f32; n];
        par_rows(&mut per_row, 1, z.len(), |r, o| {
            let row = &z[r * v..(r + 1) * v];
            o[0] = row_logsumexp(row) - row[t[r] as usize];
        });
        let mean = per_row.iter().map(|&x| x as f64).sum::<f64>() / n.max(1) as f64;
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        z: &Tensor,
        t: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = z.dim(0)?.max(1);
        let scale = g.to_dtype(DType::F32)?.to_scalar::<f32>()? / n as f32;
        Ok((Some(z.apply_op2_no_bwd(t, &CrossEntropyBwd { scale })?), None))
    }
}

/// `scale (softmax(z) - onehot(t))` from `(z, t)`.
struct CrossEntropyBwd {
    scale: f32,
}

impl CustomOp2 for CrossEntropyBwd {
    fn name(&self) -> &'static str {
        "attnlab-cross-entropy-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = Timer::start(OpKind::Elementwise, Pass::Backward);
        let (z, t) = (slice(s1, l1)?, targets(s2, l2)?);
        let (_n, v) = l1.shape().dims2()?;
        let mut out = vec![0f32; z.len()];
        par_rows(&mut out, v, z.len(), |r, o| {
            softmax_row(&z[r * v..(r + 1) * v], self.scale, o);
            o[t[r] as usize] -= self.scale;
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}
