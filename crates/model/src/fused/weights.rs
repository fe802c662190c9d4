//! Fused attention weights: metric transform of `q.k` + mask + softmax in one pass, with a
//! one-pass backward.
//!
//! Inputs: `qk = q k^T` `(b, h, tq, tk)`; for distance metrics the squared norms
//! `norms = [|q_i|^2 ; |k_j|^2]` `(b, h, tq + tk)`; for `cosine` the per-head temperature and for
//! `idw` with learned power the per-head power, `(h,)`. From them, per row:
//! `d2 = max(0, |q|^2 + |k|^2 - 2 q.k)`, `x = d2 + delta`, `u = x^(p/2)`, the score of
//! [`crate::metric`], and `w = softmax(score + mask)` (the row kernels of [`super::rows`]).
//!
//! Backward: `gs = w (g - sum(w g))`, `g_qk = ds/dqk gs`, and for distance metrics
//! `g_norms` are the row and column sums of `-g_qk / 2`.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};

use super::rowmask::RowMask;
use super::rows::{MetricFn, ParamUse, Row, backward_row, forward_row};
use super::{cpu_f32, par_rows, slice, to_vec};

/// Attention weights `softmax(score(qk, norms, param) + mask)` `(b, h, tq, tk)` through the fused
/// kernel; `None` when the kernel does not apply (not CPU `f32`, or a mask with values other
/// than 0 and `-inf`) and the caller must use the composed path.
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
    if !cpu_f32(qk) {
        return Ok(None);
    }
    let (b, h, tq, tk) = qk.dims4()?;
    let Some(rows) = RowMask::new(mask, tq, tk)? else { return Ok(None) };
    let use_param = ParamUse::of(f.kind, param.is_some())?;
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
        let param = self.use_param.value(&self.f, param, bh % h);
        Row { qn, kn, param, learned: self.use_param == ParamUse::Power }
    }

    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        l.shape().dims4()
    }
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
            forward_row(&self.f, row, &qk[r * tk..(r + 1) * tk], n, keep, o, None);
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
                    backward_row(&fwd.f, row, &qk[span.clone()], &w[span.clone()], &g[span], n, o, None);
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
                                None,
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
