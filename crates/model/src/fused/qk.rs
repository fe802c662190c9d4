//! Fused qk-norm and RoPE on packed projections: `qkv` `(b, t, 3c)` (queries, keys and values
//! side by side, head `j` in channels `j d .. (j + 1) d` of each third) to the same layout with
//! every head's query and key rows normalised and rotated; values pass through. One pass over
//! the rows forward and one backward, instead of about twenty candle nodes on split heads.
//!
//! Per head row `x` (width d) at position `m`:
//! - qk-norm: `x^ = x r`, `r = (|x|^2 / n + eps)^(-1/2)` (`n = d`: RMS norm, `n = 1`: unit rows),
//!   times a per-dimension gain `g` (`rms_gain`);
//! - RoPE over the first `rot` dimensions in pairs `(i, i + rot/2)` (GPT-NeoX / Llama):
//!   `y_i = x_i cos(m w_i) - x_{i+rot/2} sin(m w_i)`, `y_{i+rot/2} = x_i sin(m w_i) + x_{i+rot/2} cos(m w_i)`.
//!
//! Backward: the inverse rotation `R^T`, then `dg += dx^ . x r`, then
//! `dx = r (dx^ - x^ (dx^ . x^) / n)` with `dx^ = g dy` (the tests compare it with candle's
//! gradient of the composed ops of [`crate::qk`]).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};

use super::profile::{OpKind, Pass, Timer};
use super::{cpu_f32, lanes, par_rows, slice, to_vec};

/// The qk-norm of [`QkFn`]: `x / sqrt(|x|^2 / n + eps)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormFn {
    /// `d` for the RMS norm, 1 for unit rows.
    pub n: f32,
    /// eps under the square root.
    pub eps: f32,
}

/// RoPE tables for positions `start .. start + t`: `cos` and `sin` `(t, rot / 2)` row-major.
#[derive(Debug, Clone)]
pub struct RopeTables {
    /// Rotated dimensions per head (even, at most d).
    pub rot: usize,
    /// `cos(m w_i)`, `(t, rot / 2)`.
    pub cos: Arc<Vec<f32>>,
    /// `sin(m w_i)`, `(t, rot / 2)`.
    pub sin: Arc<Vec<f32>>,
}

/// What the op does to each head row of q and k.
#[derive(Debug, Clone)]
pub struct QkFn {
    /// qk-norm, if any.
    pub norm: Option<NormFn>,
    /// RoPE, if any.
    pub rope: Option<RopeTables>,
}

/// qk-norm and RoPE applied to the q and k thirds of packed `qkv` `(b, t, 3c)` with `n_head`
/// heads; `gain` `(2, d)` (query gain, key gain) multiplies the normalised rows. `None` when the
/// kernel does not apply (not CPU `f32`).
pub fn qk_transform(f: &QkFn, qkv: &Tensor, n_head: usize, gain: Option<&Tensor>) -> Result<Option<Tensor>> {
    if !cpu_f32(qkv) || gain.is_some_and(|g| !cpu_f32(g)) {
        return Ok(None);
    }
    let (_b, t, c3) = qkv.dims3()?;
    if n_head == 0 || c3 % (3 * n_head) != 0 {
        bail!("fused qk transform: {c3} packed channels do not split into q, k, v of {n_head} heads")
    }
    let d = c3 / (3 * n_head);
    if let Some(r) = &f.rope
        && (r.rot > d || !r.rot.is_multiple_of(2) || r.cos.len() < t * r.rot / 2)
    {
        bail!("fused qk transform: RoPE of {} dimensions over {t} positions does not fit heads of {d}", r.rot)
    }
    let gain_t = match gain {
        Some(g) if g.elem_count() == 2 * d => g.flatten_all()?.contiguous()?,
        Some(g) => bail!("fused qk transform: gain has shape {:?}, expected (2, {d})", g.dims()),
        None => Tensor::zeros(1, DType::F32, qkv.device())?,
    };
    let op = QkOp { f: f.clone(), h: n_head, gain: gain.is_some() };
    let y = qkv.contiguous()?.apply_op2(&gain_t, op)?;
    Ok(Some(y))
}

#[derive(Clone)]
struct QkOp {
    f: QkFn,
    h: usize,
    gain: bool,
}

impl QkOp {
    /// `(b, t, c, d)` of a packed layout.
    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (b, t, c3) = l.shape().dims3()?;
        Ok((b, t, c3 / 3, c3 / (3 * self.h)))
    }

    /// The gain of part `p` (0: q, 1: k), if any.
    fn gain<'a>(&self, gain: &'a [f32], p: usize, d: usize) -> Option<&'a [f32]> {
        self.gain.then(|| &gain[p * d..(p + 1) * d])
    }

    /// Rotates `x` (one head row) at table row `m` by `+angle` (`sign = 1`) or `-angle` (-1).
    fn rotate(&self, x: &mut [f32], m: usize, sign: f32) {
        let Some(r) = &self.f.rope else { return };
        let half = r.rot / 2;
        let (cos, sin) = (&r.cos[m * half..(m + 1) * half], &r.sin[m * half..(m + 1) * half]);
        let (x1, x2) = x[..r.rot].split_at_mut(half);
        for i in 0..half {
            let (a, b, c, s) = (x1[i], x2[i], cos[i], sign * sin[i]);
            x1[i] = a * c - b * s;
            x2[i] = a * s + b * c;
        }
    }
}

/// `1 / sqrt(|x|^2 / n + eps)`.
fn inv_norm(nf: NormFn, x: &[f32]) -> f32 {
    1.0 / (lanes::dot(x, x) / nf.n + nf.eps).sqrt()
}

impl CustomOp2 for QkOp {
    fn name(&self) -> &'static str {
        "attnlab-qk-transform"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = Timer::start(OpKind::Elementwise, Pass::Forward);
        let (qkv, gain) = (slice(s1, l1)?, slice(s2, l2)?);
        let (b, t, c, d) = self.dims(l1)?;
        let mut out = qkv.to_vec();
        par_rows(&mut out, 3 * c, b * t * 2 * c * 4, |r, row| {
            for p in 0..2 {
                let g = self.gain(gain, p, d);
                for x in row[p * c..(p + 1) * c].chunks_mut(d) {
                    if let Some(nf) = self.f.norm {
                        let inv = inv_norm(nf, x);
                        match g {
                            Some(g) => x.iter_mut().zip(g).for_each(|(v, &w)| *v *= inv * w),
                            None => x.iter_mut().for_each(|v| *v *= inv),
                        }
                    }
                    self.rotate(x, r % t, 1.0);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, t, 3 * c))))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        gain: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, t, c3) = qkv.dims3()?;
        let d = c3 / (3 * self.h);
        let op = QkBwd { fwd: self.clone(), gain: to_vec(gain)? };
        let packed = qkv.apply_op2_no_bwd(&g.contiguous()?, &op)?; // (b t, 3c + 2d)
        let g_qkv = packed.narrow(1, 0, c3)?.reshape((b, t, c3))?;
        let g_gain = if self.gain { Some(packed.narrow(1, c3, 2 * d)?.sum(0)?) } else { None };
        Ok((Some(g_qkv), g_gain))
    }
}

/// Backward over `(qkv, dY)`: rows of `d qkv` `(3c)` followed by the row's partial gain
/// gradient `(2d)`.
struct QkBwd {
    fwd: QkOp,
    gain: Vec<f32>,
}

impl CustomOp2 for QkBwd {
    fn name(&self) -> &'static str {
        "attnlab-qk-transform-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = Timer::start(OpKind::Elementwise, Pass::Backward);
        let (qkv, gy) = (slice(s1, l1)?, slice(s2, l2)?);
        let fwd = &self.fwd;
        let (b, t, c, d) = fwd.dims(l1)?;
        let width = 3 * c + 2 * d;
        let mut out = vec![0f32; b * t * width];
        par_rows(&mut out, width, b * t * 2 * c * 8, |r, row| {
            let (gx_row, gg) = row.split_at_mut(3 * c);
            let (x_row, gy_row) = (&qkv[r * 3 * c..(r + 1) * 3 * c], &gy[r * 3 * c..(r + 1) * 3 * c]);
            gx_row.copy_from_slice(gy_row);
            for p in 0..2 {
                let gain = fwd.gain(&self.gain, p, d);
                let parts = gx_row[p * c..(p + 1) * c].chunks_mut(d).zip(x_row[p * c..(p + 1) * c].chunks(d));
                for (gx, x) in parts {
                    fwd.rotate(gx, r % t, -1.0); // gx = R^T dy = d(normalised row)
                    let Some(nf) = fwd.f.norm else { continue };
                    let inv = inv_norm(nf, x);
                    if let Some(w) = gain {
                        let gg = &mut gg[p * d..(p + 1) * d];
                        for i in 0..d {
                            gg[i] += gx[i] * x[i] * inv;
                            gx[i] *= w[i];
                        }
                    }
                    // gx = r (gx^ - x^ (gx^ . x^) / n) with x^ = x r.
                    let dot = lanes::dot(gx, x) * inv / nf.n;
                    gx.iter_mut().zip(x).for_each(|(gv, &xv)| *gv = inv * (*gv - xv * inv * dot));
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b * t, width))))
    }
}
