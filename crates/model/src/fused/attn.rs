//! Fused attention weights: metric transform of `q.k` + mask + softmax in one pass, with a
//! one-pass backward.
//!
//! Inputs: `qk = q k^T` `(b, h, tq, tk)`; for distance metrics the squared norms
//! `norms = [|q_i|^2 ; |k_j|^2]` `(b, h, tq + tk)`; for `cosine` the per-head temperature and for
//! `idw` with learned power the per-head power, `(h,)`. From them, per row:
//! `d2 = max(0, |q|^2 + |k|^2 - 2 q.k)`, `x = d2 + delta`, `u = x^(p/2)`, the score of
//! [`crate::metric`], and `w = softmax(score + mask)`. `idw` skips the log and exp:
//! `w = (eps + u)^-1 / sum(eps + u)^-1`.
//!
//! Backward: `gs = w (g - sum(w g))`, `g_qk = ds/dqk gs`, and for distance metrics
//! `g_norms` are the row and column sums of `-g_qk / 2`.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};

use super::{Kernel, cpu_f32, enabled, par_rows, slice, to_vec};
use crate::metric::MetricKind;

/// The score function the kernel applies (fixed parameters of a [`crate::MetricLayer`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricFn {
    /// Which metric.
    pub kind: MetricKind,
    /// Scale of `dot`, `neg_sq_euclid`, `neg_euclid`.
    pub scale: f32,
    /// eps of `idw`, `inv_dist`.
    pub eps: f32,
    /// delta added to the squared distance.
    pub delta: f32,
    /// Fixed power p (ignored when a learned per-head power is passed).
    pub power: f32,
}

/// Which per-head tensor the kernel receives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ParamUse {
    None,
    /// `cosine` temperature tau: score `tau * qk` (qk of unit rows).
    Temperature,
    /// Learned power p of `idw`.
    Power,
}

/// Which keys each query row may see: a prefix `0..n_i` of the keys (causal and context masks
/// both are), or an arbitrary pattern.
#[derive(Debug)]
pub(super) enum RowMask {
    Prefix(Vec<usize>),
    Dense(Vec<bool>),
}

impl RowMask {
    /// From an additive `(tq, tk)` mask of zeros and `-inf`; `None` if it holds other values.
    pub(super) fn new(mask: Option<&Tensor>, tq: usize, tk: usize) -> Result<Option<Self>> {
        let Some(mask) = mask else { return Ok(Some(RowMask::Prefix(vec![tk; tq]))) };
        if mask.elem_count() != tq * tk || mask.dims().len() < 2 || mask.dims()[mask.rank() - 2..] != [tq, tk]
        {
            return Ok(None);
        }
        let m = to_vec(&mask.to_dtype(DType::F32)?)?;
        if m.iter().any(|&v| v != 0.0 && v != f32::NEG_INFINITY) {
            return Ok(None);
        }
        let keep: Vec<bool> = m.iter().map(|&v| v == 0.0).collect();
        let mut prefix = Vec::with_capacity(tq);
        for row in keep.chunks(tk) {
            let n = row.iter().take_while(|&&k| k).count();
            if row[n..].iter().any(|&k| k) {
                return Ok(Some(RowMask::Dense(keep)));
            }
            prefix.push(n);
        }
        Ok(Some(RowMask::Prefix(prefix)))
    }

    /// Number of leading keys to compute for row `i` and the dense pattern of the row, if any.
    pub(super) fn row(&self, i: usize, tk: usize) -> (usize, Option<&[bool]>) {
        match self {
            RowMask::Prefix(p) => (p[i], None),
            RowMask::Dense(k) => (tk, Some(&k[i * tk..(i + 1) * tk])),
        }
    }
}

/// Attention weights `softmax(score(qk, norms, param) + mask)` `(b, h, tq, tk)` through the fused
/// kernel; `None` when the kernel does not apply (switched off, not CPU `f32`, or a mask with
/// values other than 0 and `-inf`) and the caller must use the composed path.
///
/// `norms` `(b, h, tq + tk)` is required by distance metrics; `param` `(h,)` is the `cosine`
/// temperature or the learned `idw` power.
pub fn attention_weights(
    f: MetricFn,
    qk: &Tensor,
    norms: Option<&Tensor>,
    param: Option<&Tensor>,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    if !enabled(Kernel::Attn) || !cpu_f32(qk) {
        return Ok(None);
    }
    let (b, h, tq, tk) = qk.dims4()?;
    let Some(rows) = RowMask::new(mask, tq, tk)? else { return Ok(None) };
    let use_param = match (f.kind, param) {
        (MetricKind::Cosine, Some(_)) => ParamUse::Temperature,
        (MetricKind::Cosine, None) => bail!("fused cosine attention needs the temperature"),
        (MetricKind::Idw, Some(_)) => ParamUse::Power,
        (_, Some(_)) => bail!("metric `{}` takes no per-head parameter", f.kind),
        (_, None) => ParamUse::None,
    };
    if f.kind.is_distance() && norms.map(|n| n.dims().to_vec()) != Some(vec![b, h, tq + tk]) {
        bail!("fused distance attention needs norms of shape ({b}, {h}, {})", tq + tk)
    }
    let dummy = || Tensor::zeros(1, DType::F32, qk.device());
    let norms = match norms {
        Some(n) if f.kind.is_distance() => n.contiguous()?,
        _ => dummy()?,
    };
    let param = match param {
        Some(p) => p.contiguous()?,
        None => dummy()?,
    };
    let op = Fwd { f, rows: Arc::new(rows), use_param };
    Ok(Some(qk.contiguous()?.apply_op3(&norms, &param, op)?))
}

/// Per-row constants of the kernel.
#[derive(Clone, Copy)]
pub(super) struct Row<'a> {
    pub(super) qn: f32,
    pub(super) kn: &'a [f32],
    /// `p / 2` for distance metrics, tau for cosine.
    pub(super) param: f32,
}

struct Fwd {
    f: MetricFn,
    rows: Arc<RowMask>,
    use_param: ParamUse,
}

impl Fwd {
    /// Row constants for row `r` of `(b h tq)` rows.
    fn row<'a>(&self, r: usize, dims: (usize, usize, usize), norms: &'a [f32], param: &[f32]) -> Row<'a> {
        let (h, tq, tk) = dims;
        let bh = r / tq;
        let (qn, kn) = if self.f.kind.is_distance() {
            let base = bh * (tq + tk);
            (norms[base + r % tq], &norms[base + tq..base + tq + tk])
        } else {
            (0.0, &norms[..0])
        };
        let param = match self.use_param {
            ParamUse::None => self.f.power * 0.5,
            ParamUse::Temperature => param[bh % h],
            ParamUse::Power => param[bh % h] * 0.5,
        };
        Row { qn, kn, param }
    }

    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        l.shape().dims4()
    }
}

/// `x = max(r, 0) + delta` and `u = x^(p/2)` with `half_p = p / 2`.
#[inline(always)]
fn dist_pow(r: f32, delta: f32, half_p: f32) -> (f32, f32) {
    let x = r.max(0.0) + delta;
    let u = if half_p == 1.0 {
        x
    } else if half_p == 0.5 {
        x.sqrt()
    } else {
        x.powf(half_p)
    };
    (x, u)
}

/// Writes softmax weights of row `qk[..n]` into `out` (zeros beyond `n` and where `keep` is false).
pub(super) fn forward_row(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    n: usize,
    keep: Option<&[bool]>,
    out: &mut [f32],
) {
    let (s, o) = (f.scale, &mut out[..n]);
    let r = |j: usize| row.qn + row.kn[j] - 2.0 * qk[j];
    let hp = row.param;
    let direct = f.kind == MetricKind::Idw;
    match f.kind {
        MetricKind::Dot => o.iter_mut().zip(qk).for_each(|(o, &v)| *o = s * v),
        MetricKind::Cosine => o.iter_mut().zip(qk).for_each(|(o, &v)| *o = hp * v),
        MetricKind::NegSqEuclid => (0..n).for_each(|j| o[j] = -s * r(j).max(0.0)),
        MetricKind::NegEuclid => (0..n).for_each(|j| o[j] = -s * dist_pow(r(j), f.delta, hp).1),
        MetricKind::Idw => (0..n).for_each(|j| o[j] = 1.0 / (f.eps + dist_pow(r(j), f.delta, hp).1)),
        MetricKind::InvDist => (0..n).for_each(|j| o[j] = 1.0 / (f.eps + dist_pow(r(j), f.delta, hp).1)),
        MetricKind::Rbf => (0..n).for_each(|j| o[j] = (-0.5 * dist_pow(r(j), f.delta, hp).1).exp()),
    }
    if let Some(keep) = keep {
        let blocked = if direct { 0.0 } else { f32::NEG_INFINITY };
        o.iter_mut().zip(keep).filter(|(_, k)| !**k).for_each(|(o, _)| *o = blocked);
    }
    if !direct {
        let m = o.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if m == f32::NEG_INFINITY {
            o.fill(0.0);
        } else {
            o.iter_mut().for_each(|v| *v = (*v - m).exp());
        }
    }
    let z: f32 = o.iter().sum();
    let inv = if z > 0.0 { 1.0 / z } else { 0.0 };
    o.iter_mut().for_each(|v| *v *= inv);
    out[n..].fill(0.0);
}

/// `ds/du` and `du/dx` of a distance metric at `u = x^(p/2)`.
#[inline(always)]
fn dist_derivs(f: &MetricFn, x: f32, u: f32, half_p: f32) -> (f32, f32) {
    let dsdu = match f.kind {
        MetricKind::NegEuclid => -f.scale,
        MetricKind::Idw => -1.0 / (f.eps + u),
        MetricKind::InvDist => -1.0 / ((f.eps + u) * (f.eps + u)),
        _ => -0.5 * (-0.5 * u).exp(), // rbf
    };
    let dudx = if half_p == 1.0 { 1.0 } else { half_p * u / x };
    (dsdu, dudx)
}

/// Writes `g_qk` of one row into `out` and returns this row's gradient of the per-head parameter.
pub(super) fn backward_row(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    w: &[f32],
    g: &[f32],
    n: usize,
    out: &mut [f32],
) -> f32 {
    let wg: f32 = w[..n].iter().zip(&g[..n]).map(|(w, g)| w * g).sum();
    let hp = row.param;
    let mut gp = 0.0;
    for j in 0..n {
        let gs = w[j] * (g[j] - wg);
        out[j] = match f.kind {
            MetricKind::Dot => f.scale * gs,
            MetricKind::Cosine => {
                gp += gs * qk[j];
                hp * gs
            }
            _ if gs == 0.0 => 0.0,
            MetricKind::NegSqEuclid => {
                let r = row.qn + row.kn[j] - 2.0 * qk[j];
                if r >= 0.0 { 2.0 * f.scale * gs } else { 0.0 }
            }
            _ => {
                let r = row.qn + row.kn[j] - 2.0 * qk[j];
                let (x, u) = dist_pow(r, f.delta, hp);
                let (dsdu, dudx) = dist_derivs(f, x, u, hp);
                gp += gs * dsdu * u * 0.5 * x.ln();
                if r >= 0.0 { -2.0 * gs * dsdu * dudx } else { 0.0 }
            }
        };
    }
    out[n..].fill(0.0);
    gp
}

impl CustomOp3 for Fwd {
    fn name(&self) -> &'static str {
        "attnlab-metric-softmax"
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
        let (qk, norms, param) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (_b, h, tq, tk) = self.dims(l1)?;
        let mut out = vec![0f32; qk.len()];
        par_rows(&mut out, tk, qk.len(), |r, o| {
            let row = self.row(r, (h, tq, tk), norms, param);
            let (n, keep) = self.rows.row(r % tq, tk);
            forward_row(&self.f, row, &qk[r * tk..(r + 1) * tk], n, keep, o);
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        qk: &Tensor,
        norms: &Tensor,
        param: &Tensor,
        w: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let fwd = Fwd { f: self.f, rows: self.rows.clone(), use_param: self.use_param };
        let grads = Bwd { fwd, norms: to_vec(norms)?, param: to_vec(param)? };
        let g_qk = qk.apply_op3_no_bwd(w, &g.contiguous()?, &grads.clone_for(Out::Qk))?;
        let g_norms = if self.f.kind.is_distance() { Some(g_qk.apply_op1_no_bwd(&NormGrads)?) } else { None };
        let g_param = if self.use_param == ParamUse::None {
            None
        } else {
            let (b, h, _, _) = qk.dims4()?;
            let partial = qk.apply_op3_no_bwd(w, &g.contiguous()?, &grads.clone_for(Out::Param))?;
            Some(partial.reshape((b, h))?.sum(0)?)
        };
        Ok((Some(g_qk), g_norms, g_param))
    }
}

/// What a backward kernel call produces.
#[derive(Clone, Copy, PartialEq)]
enum Out {
    /// `g_qk` `(b, h, tq, tk)`.
    Qk,
    /// Per `(b, h)` partial sums of the per-head parameter's gradient, `(b * h,)`.
    Param,
}

/// Backward kernel over `(qk, w, g)`; holds the small tensors as vectors.
struct Bwd {
    fwd: Fwd,
    norms: Vec<f32>,
    param: Vec<f32>,
}

/// A [`Bwd`] with its output chosen.
struct BwdOut<'a> {
    bwd: &'a Bwd,
    out: Out,
}

impl Bwd {
    fn clone_for(&self, out: Out) -> BwdOut<'_> {
        BwdOut { bwd: self, out }
    }
}

impl CustomOp3 for BwdOut<'_> {
    fn name(&self) -> &'static str {
        "attnlab-metric-softmax-bwd"
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
        let (qk, w, g) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let fwd = &self.bwd.fwd;
        let (b, h, tq, tk) = fwd.dims(l1)?;
        let dims = (h, tq, tk);
        let row_args = |r: usize| {
            let row = fwd.row(r, dims, &self.bwd.norms, &self.bwd.param);
            let (n, _) = fwd.rows.row(r % tq, tk);
            let span = r * tk..(r + 1) * tk;
            (row, n, span)
        };
        match self.out {
            Out::Qk => {
                let mut out = vec![0f32; qk.len()];
                par_rows(&mut out, tk, qk.len(), |r, o| {
                    let (row, n, span) = row_args(r);
                    backward_row(&fwd.f, row, &qk[span.clone()], &w[span.clone()], &g[span], n, o);
                });
                Ok((CpuStorage::F32(out), l1.shape().clone()))
            }
            Out::Param => {
                let mut out = vec![0f32; b * h];
                par_rows(&mut out, 1, qk.len(), |bh, o| {
                    let mut scratch = vec![0f32; tk];
                    o[0] = (bh * tq..(bh + 1) * tq)
                        .map(|r| {
                            let (row, n, span) = row_args(r);
                            backward_row(
                                &fwd.f,
                                row,
                                &qk[span.clone()],
                                &w[span.clone()],
                                &g[span],
                                n,
                                &mut scratch,
                            )
                        })
                        .sum();
                });
                Ok((CpuStorage::F32(out), Shape::from(b * h)))
            }
        }
    }
}

/// Gradients of the squared norms from `g_qk` `(b, h, tq, tk)` in one pass: with
/// `d2 = |q|^2 + |k|^2 - 2 q.k`, `g_d2 = -g_qk / 2`, so `g_|q_i|^2 = sum_j g_d2` (row sums) and
/// `g_|k_j|^2 = sum_i g_d2` (column sums); output `(b, h, tq + tk)`.
struct NormGrads;

impl CustomOp1 for NormGrads {
    fn name(&self) -> &'static str {
        "attnlab-metric-norm-grads"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = slice(s, l)?;
        let (b, h, tq, tk) = l.shape().dims4()?;
        let mut out = vec![0f32; b * h * (tq + tk)];
        par_rows(&mut out, tq + tk, g.len(), |bh, o| {
            let (rows, cols) = o.split_at_mut(tq);
            for (i, row_sum) in rows.iter_mut().enumerate() {
                let row = &g[(bh * tq + i) * tk..(bh * tq + i + 1) * tk];
                let mut acc = 0f32;
                for (c, &v) in cols.iter_mut().zip(row) {
                    *c += v;
                    acc += v;
                }
                *row_sum = -0.5 * acc;
            }
            cols.iter_mut().for_each(|c| *c *= -0.5);
        });
        Ok((CpuStorage::F32(out), Shape::from((b, h, tq + tk))))
    }
}
