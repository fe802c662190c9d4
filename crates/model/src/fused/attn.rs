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

use super::{Kernel, cpu_f32, enabled, fast_exp, lanes, par_rows, slice, to_vec};
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

impl ParamUse {
    /// What the per-head tensor means for `kind`, given whether the caller passed one.
    pub(super) fn of(kind: MetricKind, given: bool) -> Result<Self> {
        Ok(match (kind, given) {
            (MetricKind::Cosine, true) => ParamUse::Temperature,
            (MetricKind::Cosine, false) => bail!("fused cosine attention needs the temperature"),
            (MetricKind::Idw, true) => ParamUse::Power,
            (_, true) => bail!("metric `{kind}` takes no per-head parameter"),
            (_, false) => ParamUse::None,
        })
    }
}

/// The per-head parameter `(h,)` as the kernels take it (a one-element dummy when absent).
pub(super) fn head_param(param: Option<&Tensor>, h: usize, device: &candle_core::Device) -> Result<Tensor> {
    match param {
        Some(p) if p.elem_count() == h => p.contiguous(),
        Some(p) => bail!("fused attention: per-head parameter has shape {:?}, expected ({h},)", p.dims()),
        None => Tensor::zeros(1, DType::F32, device),
    }
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

/// Per-row constants of the kernel.
#[derive(Clone, Copy)]
pub(super) struct Row<'a> {
    pub(super) qn: f32,
    pub(super) kn: &'a [f32],
    /// `p / 2` for distance metrics, tau for cosine.
    pub(super) param: f32,
    /// Whether `p` is learned (the power's gradient is wanted).
    pub(super) learned: bool,
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
        Row { qn, kn, param, learned: self.use_param == ParamUse::Power }
    }

    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        l.shape().dims4()
    }
}

/// How `u = x^(p/2)` is computed; chosen once per row so that the inner loops stay free of
/// branches and calls the compiler would otherwise evaluate for every element.
trait PowFn: Copy {
    /// `x^(p/2)`.
    fn u(self, x: f32) -> f32;
    /// `du/dx` at `x` with `u = x^(p/2)`.
    fn dudx(self, x: f32, u: f32) -> f32;
}

/// p = 2: `u = x`.
#[derive(Clone, Copy)]
struct P2;
impl PowFn for P2 {
    #[inline(always)]
    fn u(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn dudx(self, _x: f32, _u: f32) -> f32 {
        1.0
    }
}

/// p = 1: `u = sqrt(x)`.
#[derive(Clone, Copy)]
struct P1;
impl PowFn for P1 {
    #[inline(always)]
    fn u(self, x: f32) -> f32 {
        x.sqrt()
    }
    #[inline(always)]
    fn dudx(self, x: f32, u: f32) -> f32 {
        0.5 * u / x
    }
}

/// Any p: `u = x^(p/2)`, holding `p / 2`.
#[derive(Clone, Copy)]
struct PAny(f32);
impl PowFn for PAny {
    #[inline(always)]
    fn u(self, x: f32) -> f32 {
        x.powf(self.0)
    }
    #[inline(always)]
    fn dudx(self, x: f32, u: f32) -> f32 {
        self.0 * u / x
    }
}

/// Calls `$body` with `$pw` bound to the [`PowFn`] for `half_p`.
macro_rules! with_pow {
    ($half_p:expr, $pw:ident => $body:expr) => {
        match $half_p {
            h if h == 1.0 => {
                let $pw = P2;
                $body
            }
            h if h == 0.5 => {
                let $pw = P1;
                $body
            }
            h => {
                let $pw = PAny(h);
                $body
            }
        }
    };
}

/// Writes softmax weights of row `qk[..n]` into `out` (zeros beyond `n` and where `keep` is false);
/// with `scores`, also the row's scores before masking (`rbf`'s backward reuses them).
#[multiversion::multiversion(targets = "simd")]
pub(super) fn forward_row(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    n: usize,
    keep: Option<&[bool]>,
    out: &mut [f32],
    scores: Option<&mut [f32]>,
) {
    let o = &mut out[..n];
    let direct = f.kind == MetricKind::Idw;
    match f.kind {
        MetricKind::Dot => o.iter_mut().zip(qk).for_each(|(o, &v)| *o = f.scale * v),
        MetricKind::Cosine => o.iter_mut().zip(qk).for_each(|(o, &v)| *o = row.param * v),
        MetricKind::NegSqEuclid => {
            for ((o, &v), &kn) in o.iter_mut().zip(qk).zip(row.kn) {
                *o = -f.scale * (row.qn + kn - 2.0 * v).max(0.0);
            }
        }
        _ => with_pow!(row.param, pw => dist_scores(f, row, qk, o, pw)),
    }
    if let Some(sc) = scores {
        sc[..n].copy_from_slice(o);
    }
    if let Some(keep) = keep {
        let blocked = if direct { 0.0 } else { f32::NEG_INFINITY };
        o.iter_mut().zip(keep).filter(|(_, k)| !**k).for_each(|(o, _)| *o = blocked);
    }
    let z = if direct {
        lanes::sum(o)
    } else if f.kind == MetricKind::Rbf {
        // Scores lie in [0, 1] (or are masked to -inf): exp cannot overflow, no max needed.
        lanes::map_sum(o, fast_exp)
    } else {
        let m = lanes::max(o);
        if m == f32::NEG_INFINITY {
            o.fill(0.0);
            0.0
        } else {
            lanes::map_sum(o, |v| fast_exp(v - m))
        }
    };
    let inv = if z > 0.0 { 1.0 / z } else { 0.0 };
    o.iter_mut().for_each(|v| *v *= inv);
    out[n..].fill(0.0);
}

/// Scores of `neg_euclid`, `inv_dist`, `rbf`, or the unnormalised weights `1 / (eps + u)` of
/// `idw`, for one row.
#[inline(always)]
fn dist_scores<P: PowFn>(f: &MetricFn, row: Row, qk: &[f32], o: &mut [f32], pw: P) {
    let us = o.iter_mut().zip(qk).zip(row.kn);
    let u = |v: f32, kn: f32| pw.u((row.qn + kn - 2.0 * v).max(0.0) + f.delta);
    match f.kind {
        MetricKind::NegEuclid => us.for_each(|((o, &v), &kn)| *o = -f.scale * u(v, kn)),
        MetricKind::Rbf => us.for_each(|((o, &v), &kn)| *o = fast_exp(-0.5 * u(v, kn))),
        _ => us.for_each(|((o, &v), &kn)| *o = 1.0 / (f.eps + u(v, kn))), // idw, inv_dist
    }
}

/// Writes `g_qk` of one row into `out` and returns this row's gradient of the per-head parameter.
/// `scores` (from [`forward_row`]) spares `rbf` recomputing `exp(-u / 2)`.
#[multiversion::multiversion(targets = "simd")]
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_row(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    w: &[f32],
    g: &[f32],
    n: usize,
    out: &mut [f32],
    scores: Option<&[f32]>,
) -> f32 {
    let (qk, w, g) = (&qk[..n], &w[..n], &g[..n]);
    let wg = lanes::dot(w, g);
    let sg = SoftmaxGrad { w, g, wg };
    let o = &mut out[..n];
    let mut gp = 0.0;
    match f.kind {
        MetricKind::Dot => (0..n).for_each(|j| o[j] = f.scale * sg.at(j)),
        MetricKind::Cosine => {
            gp = lanes::fold_sum(n, |j| sg.at(j) * qk[j]);
            (0..n).for_each(|j| o[j] = row.param * sg.at(j));
        }
        MetricKind::NegSqEuclid => {
            let kn = &row.kn[..n];
            for j in 0..n {
                let r = row.qn + kn[j] - 2.0 * qk[j];
                o[j] = if r >= 0.0 { 2.0 * f.scale * sg.at(j) } else { 0.0 };
            }
        }
        MetricKind::NegEuclid => {
            with_pow!(row.param, pw => gp = dist_grads(f, row, qk, sg, o, pw, |_, _| -f.scale))
        }
        MetricKind::Idw => {
            with_pow!(row.param, pw => gp = dist_grads(f, row, qk, sg, o, pw, |_, u| -1.0 / (f.eps + u)))
        }
        MetricKind::InvDist => {
            with_pow!(row.param, pw => gp = dist_grads(f, row, qk, sg, o, pw, |_, u| -1.0 / ((f.eps + u) * (f.eps + u))))
        }
        MetricKind::Rbf => match scores {
            Some(e) => {
                let e = &e[..n];
                with_pow!(row.param, pw => gp = dist_grads(f, row, qk, sg, o, pw, |j, _| -0.5 * e[j]))
            }
            None => {
                with_pow!(row.param, pw => gp = dist_grads(f, row, qk, sg, o, pw, |_, u| -0.5 * fast_exp(-0.5 * u)))
            }
        },
    }
    out[n..].fill(0.0);
    gp
}

/// The softmax backward of one row: `ds_j = w_j (g_j - sum_i w_i g_i)`.
#[derive(Clone, Copy)]
struct SoftmaxGrad<'a> {
    w: &'a [f32],
    g: &'a [f32],
    wg: f32,
}

impl SoftmaxGrad<'_> {
    #[inline(always)]
    fn at(self, j: usize) -> f32 {
        self.w[j] * (self.g[j] - self.wg)
    }
}

/// `g_qk = -2 ds ds/du du/dx` (zero where the squared distance was clamped) for one row of a
/// distance metric with `ds/du` given (as a function of the key index and `u`); returns the row's gradient of the learned power
/// (`sum ds ds/du u ln(x) / 2`) when the row has one, else 0. All slices hold the row's `n` keys.
#[inline(always)]
fn dist_grads<P: PowFn>(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    sg: SoftmaxGrad,
    o: &mut [f32],
    pw: P,
    dsdu: impl Fn(usize, f32) -> f32,
) -> f32 {
    let n = o.len();
    let (qk, kn, w, g) = (&qk[..n], &row.kn[..n], &sg.w[..n], &sg.g[..n]);
    let sg = SoftmaxGrad { w, g, wg: sg.wg };
    let x_at = |j: usize| {
        let r = row.qn + kn[j] - 2.0 * qk[j];
        (r, r.max(0.0) + f.delta)
    };
    for (j, o) in o.iter_mut().enumerate() {
        let (r, x) = x_at(j);
        let u = pw.u(x);
        let d = sg.at(j) * dsdu(j, u);
        *o = if r >= 0.0 { -2.0 * d * pw.dudx(x, u) } else { 0.0 };
    }
    if !row.learned {
        return 0.0;
    }
    (0..n)
        .map(|j| {
            let x = x_at(j).1;
            let u = pw.u(x);
            sg.at(j) * dsdu(j, u) * u * 0.5 * x.ln()
        })
        .sum()
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
