//! AdamW's update of one variable ([`crate::optim::AdamW::step`]): on CPU `f32` data in one pass
//! ([`fused`]), elsewhere by composed candle ops ([`composed`]; about fifteen passes, each
//! allocating a tensor). Both do exactly the same floating-point operations in the same order,
//! so they give the same bits.
//!
//! candle's `t * s`, `t / s` and `t + s` for a scalar `s` are `affine(s, 0)`, `affine(1 / s, 0)`
//! and `affine(1, s)`, i.e. `x * mul + add` in `f32` with `mul` and `add` rounded to `f32`
//! (candle-core `tensor.rs`, `bin_trait!`; `cpu_backend` `Affine`): the kernel spells out every
//! `+ 0.0` and `* 1.0` of them.

use candle_core::{DType, Result, Storage, Tensor, Var};

/// Scalars of one AdamW update, as `f64` the way the composed ops receive them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Consts {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// `1 - beta1^t`.
    pub bc1: f64,
    /// `1 - beta2^t`.
    pub bc2: f64,
    /// Learning rate.
    pub lr: f64,
    /// Decay factor `1 - lr wd` of this variable, `None` when it is not decayed.
    pub decay: Option<f64>,
}

/// `f` of the contiguous `f32` data of a CPU tensor, or `None`.
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let (lo, hi) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(s) => s.as_slice::<f32>().ok().map(|x| f(&x[lo..hi])),
        _ => None,
    }
}

/// A copy of the contiguous `f32` data of a CPU tensor, or `None`.
fn data(t: &Tensor) -> Option<Vec<f32>> {
    with_data(t, <[f32]>::to_vec)
}

/// Whether the kernel applies: every tensor a CPU `f32` one of the variable's shape.
fn applies(var: &Var, ts: [&Tensor; 3]) -> bool {
    let p = var.as_tensor();
    p.device().is_cpu()
        && p.dtype() == DType::F32
        && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && t.dims() == p.dims())
}

/// One AdamW update of `var` with gradient `g` and moments `m`, `v` (same shape as `var`):
/// writes the new parameter into `var` and returns the new `(m, v)`.
pub(crate) fn apply(var: &Var, g: &Tensor, m: &Tensor, v: &Tensor, k: Consts) -> Result<(Tensor, Tensor)> {
    match fused(var, g, m, v, k)? {
        Some(mv) => Ok(mv),
        None => composed(var, g, m, v, k),
    }
}

/// [`apply`] by composed candle ops (any device and dtype).
pub(crate) fn composed(var: &Var, g: &Tensor, m: &Tensor, v: &Tensor, k: Consts) -> Result<(Tensor, Tensor)> {
    let m = ((m * k.beta1)? + (g * (1.0 - k.beta1))?)?;
    let v = ((v * k.beta2)? + (g.sqr()? * (1.0 - k.beta2))?)?;
    let denom = ((&v / k.bc2)?.sqrt()? + k.eps)?;
    let update = ((&m / k.bc1)? / denom)?;
    let p = var.as_tensor();
    let decayed = match k.decay {
        Some(d) => (p * d)?,
        None => p.clone(),
    };
    var.set(&(decayed - (update * k.lr)?)?)?;
    Ok((m, v))
}

/// One AdamW update of `var` with gradient `g` and moments `m`, `v` in a single pass; returns the
/// new `(m, v)` and writes the new parameter into `var`. `None` (nothing changed) when the kernel
/// does not apply (not CPU `f32`, or shapes that differ).
pub(crate) fn fused(
    var: &Var,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    k: Consts,
) -> Result<Option<(Tensor, Tensor)>> {
    if !applies(var, [g, m, v]) {
        return Ok(None);
    }
    let (Some(mut p), Some(mut mv), Some(mut vv)) = (data(var.as_tensor()), data(m), data(v)) else {
        return Ok(None);
    };
    let f = |x: f64| x as f32;
    let (b1, nb1, b2, nb2) = (f(k.beta1), f(1.0 - k.beta1), f(k.beta2), f(1.0 - k.beta2));
    let (inv_bc1, inv_bc2, eps, lr) = (f(1.0 / k.bc1), f(1.0 / k.bc2), f(k.eps), f(k.lr));
    let decay = k.decay.map(f);
    let done = with_data(g, |g| {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(&mut mv).zip(&mut vv) {
            *m = (*m * b1 + 0.0) + (g * nb1 + 0.0);
            *v = (*v * b2 + 0.0) + ((g * g) * nb2 + 0.0);
            let denom = (*v * inv_bc2 + 0.0).sqrt() * 1.0 + eps;
            let update = (*m * inv_bc1 + 0.0) / denom;
            let decayed = match decay {
                Some(d) => *p * d + 0.0,
                None => *p,
            };
            *p = decayed - (update * lr + 0.0);
        }
    });
    if done.is_none() {
        return Ok(None);
    }
    let shape = var.as_tensor().shape().clone();
    let dev = var.device().clone();
    var.set(&Tensor::from_vec(p, shape.clone(), &dev)?)?;
    Ok(Some((Tensor::from_vec(mv, shape.clone(), &dev)?, Tensor::from_vec(vv, shape, &dev)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn tensor(n: usize, seed: u32, scale: f32) -> Result<Tensor> {
        let xs: Vec<f32> = (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .map(|x| x * scale)
            .collect();
        Tensor::from_vec(xs, (n / 4, 4), &Device::Cpu)
    }

    fn bits(t: &Tensor) -> Result<Vec<u32>> {
        Ok(t.flatten_all()?.to_vec1::<f32>()?.into_iter().map(f32::to_bits).collect())
    }

    /// Several steps (with and without decay, tiny and zero moments) give the same bits fused
    /// and composed.
    #[test]
    fn fused_update_has_the_bits_of_the_composed_ops() -> Result<()> {
        let p0 = tensor(64, 1, 0.5)?;
        let (fv, cv) = (Var::from_tensor(&p0)?, Var::from_tensor(&p0)?);
        let zeros = p0.zeros_like()?;
        let (mut fm, mut fvv, mut cm, mut cvv) = (zeros.clone(), zeros.clone(), zeros.clone(), zeros);
        for t in 1..=5 {
            let g = tensor(64, 7 * t, if t == 3 { 1e-20 } else { 0.3 })?;
            let (bc1, bc2) = (1.0 - 0.9f64.powi(t as i32), 1.0 - 0.99f64.powi(t as i32));
            let decay = (t % 2 == 1).then_some(1.0 - 1e-3 * 0.1);
            let k = Consts { beta1: 0.9, beta2: 0.99, eps: 1e-8, bc1, bc2, lr: 1e-3, decay };
            (fm, fvv) = fused(&fv, &g, &fm, &fvv, k)?.expect("CPU f32 takes the fused kernel");
            (cm, cvv) = composed(&cv, &g, &cm, &cvv, k)?;
            assert_eq!(bits(&fm)?, bits(&cm)?, "m at step {t}");
            assert_eq!(bits(&fvv)?, bits(&cvv)?, "v at step {t}");
            assert_eq!(bits(fv.as_tensor())?, bits(cv.as_tensor())?, "p at step {t}");
        }
        assert_ne!(bits(fv.as_tensor())?, bits(&p0)?, "the parameter moved");
        Ok(())
    }

    #[test]
    fn fused_declines_other_dtypes() -> Result<()> {
        let p = Var::from_tensor(&tensor(8, 1, 1.0)?.to_dtype(DType::F64)?)?;
        let z = p.zeros_like()?;
        let k = Consts { beta1: 0.9, beta2: 0.99, eps: 1e-8, bc1: 0.1, bc2: 0.01, lr: 1e-3, decay: None };
        assert!(fused(&p, &z, &z, &z, k)?.is_none());
        Ok(())
    }
}
