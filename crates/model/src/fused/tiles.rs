//! Fused attention `y = softmax(score(q, k) + mask) v`, one head at a time, never holding the
//! `(b, h, tq, tk)` scores or weights outside a per-thread tile: the graph keeps only q, k, v
//! and y, and the backward recomputes each head's weights (flash-attention's trade of a little
//! arithmetic for memory and memory traffic).
//!
//! Per head: `S = Q K^T`, `W = rows(S)` (the row kernels of [`super::rows`], including the
//! squared norms for distance metrics), `Y = W V`. Backward with `dY`: `dW = dY V^T`,
//! `G = dS/d(qk)` from [`super::rows::backward_row`], `dQ = G K`, `dK = G^T Q`, `dV = W^T dY`,
//! plus for distance metrics the norm terms `dQ_i -= (sum_j G_ij) q_i`,
//! `dK_j -= (sum_i G_ij) k_j` (since `d|q|^2/dq = 2q` and `d(d2)/d(qk) = -2`).

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::mm::{View, matmul};
use super::profile::{OpKind, Pass, Timer};
use super::rowmask::RowMask;
use super::rows::{Head, MetricFn, ParamUse, Row, backward_row, forward_row, head_param};
use super::{SharedMut, cpu_f32, lanes, par_units, part, slice, to_vec, with_scratch};
use crate::metric::table::{Metric, with_metric};

thread_local! {
    /// Per-thread tiles: `S`, `W`, `dW`, `G` of one head.
    static TILES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `n` elements of this thread's tiles (every user overwrites what it reads).
fn with_tiles<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_scratch(&TILES, n, f)
}

/// `softmax(score(q, k) + mask) v` `(b, h, tq, dv)` for `q` `(b, h, tq, d)`, `k` `(b, h, tk, d)`,
/// `v` `(b, h, tk, dv)`; `param` `(h,)` is the cosine temperature (q and k then already have unit
/// rows) or the learned `idw` power. `None` when the kernel does not apply (not CPU `f32`, or a
/// mask with values other than 0 and `-inf`).
pub fn attention(
    f: MetricFn,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    param: Option<&Tensor>,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    if !cpu_f32(q) || !cpu_f32(k) || !cpu_f32(v) {
        return Ok(None);
    }
    let (b, h, tq, d) = q.dims4()?;
    let (kb, kh, tk, kd) = k.dims4()?;
    let (vb, vh, vt, _dv) = v.dims4()?;
    if (kb, kh, kd) != (b, h, d) || (vb, vh, vt) != (b, h, tk) {
        bail!("fused attention: q {:?}, k {:?}, v {:?} do not fit together", q.dims(), k.dims(), v.dims())
    }
    let Some(rows) = RowMask::new(mask, tq, tk)? else { return Ok(None) };
    let use_param = ParamUse::of(f.kind, param.is_some())?;
    let param = head_param(param, h, q.device())?;
    let qk = Tensor::cat(&[q, k], 2)?; // (b, h, tq + tk, d)
    let op = Attend { f, rows: Arc::new(rows), use_param, tq };
    Ok(Some(qk.apply_op3(&v.contiguous()?, &param, op)?))
}

/// Forward op over `(qk = [q; k] (b, h, tq + tk, d), v (b, h, tk, dv), param)`.
#[derive(Clone)]
pub(super) struct Attend {
    pub(super) f: MetricFn,
    pub(super) rows: Arc<RowMask>,
    pub(super) use_param: ParamUse,
    pub(super) tq: usize,
}

/// Shapes of one call: `(b, h, tq, tk, d, dv)`.
type Dims = (usize, usize, usize, usize, usize, usize);

/// Query rows `i0..i1` and the keys `0..kn` that any of them sees (causal masks let early rows
/// skip later keys: about 40% of the products at T = 128).
pub(super) struct Block {
    i0: usize,
    i1: usize,
    kn: usize,
}

/// Rows per block: small enough to skip most masked keys, large enough for efficient products.
fn block_rows(tq: usize) -> usize {
    if tq <= 256 { 32 } else { 64 }
}

impl Attend {
    fn dims(&self, qk: &Layout, v: &Layout) -> Result<Dims> {
        let (b, h, t2, d) = qk.shape().dims4()?;
        let dv = v.shape().dims4()?.3;
        Ok((b, h, self.tq, t2 - self.tq, d, dv))
    }

    /// The constants of head `hd` (`p / 2` or tau, and the score scale).
    pub(super) fn param(&self, param: &[f32], hd: usize) -> Head {
        self.use_param.value(&self.f, param, hd)
    }

    pub(super) fn blocks(&self, tq: usize, tk: usize) -> Vec<Block> {
        let r = block_rows(tq);
        (0..tq.div_ceil(r))
            .map(|bi| {
                let (i0, i1) = (bi * r, ((bi + 1) * r).min(tq));
                let kn = match &*self.rows {
                    RowMask::Prefix(p) => p[i0..i1].iter().copied().max().unwrap_or(0),
                    RowMask::Dense(_) => tk,
                };
                Block { i0, i1, kn }
            })
            .collect()
    }

    /// Squared norms `[|q_i|^2; |k_j|^2]` for distance metrics (zeros otherwise), `tq + tk`.
    fn norms(&self, q: &[f32], k: &[f32], d: usize) -> Vec<f32> {
        if self.f.kind.is_distance() {
            q.chunks(d).chain(k.chunks(d)).map(|x| lanes::dot(x, x)).collect()
        } else {
            vec![0.0; (q.len() + k.len()) / d.max(1)]
        }
    }

    /// One head: `y` `(tq, dv)` from contiguous `q` `(tq, d)`, `k` `(tk, d)`, `v` `(tk, dv)`.
    pub(super) fn head(
        &self,
        (q, k): (&[f32], &[f32]),
        v: &[f32],
        y: &mut [f32],
        blocks: &[Block],
        (tq, tk, d, dv): (usize, usize, usize, usize),
        p: Head,
    ) -> Result<()> {
        let norms = self.norms(q, k, d);
        let rmax = block_rows(tq).min(tq);
        with_tiles(2 * rmax * tk, |tiles| {
            let (s, w) = tiles.split_at_mut(rmax * tk);
            for blk in blocks {
                let (rb, kn) = (blk.i1 - blk.i0, blk.kn);
                let (s, w) = (&mut s[..rb * kn], &mut w[..rb * kn]);
                self.block_weights((q, k), &norms, blk, (tq, tk, d), p, s, w, None)?;
                let yb = &mut y[blk.i0 * dv..blk.i1 * dv];
                matmul(yb, View::rm(w, rb, kn), View::rm(&v[..kn * dv], kn, dv), false)?;
            }
            Ok(())
        })
    }

    /// Fills `s` (rows x kn) with `q k^T` of the block and `w` with its weights (and `scores`,
    /// when given, with the scores before the softmax).
    #[allow(clippy::too_many_arguments)]
    fn block_weights(
        &self,
        (q, k): (&[f32], &[f32]),
        norms: &[f32],
        blk: &Block,
        (tq, tk, d): (usize, usize, usize),
        p: Head,
        s: &mut [f32],
        w: &mut [f32],
        mut scores: Option<&mut [f32]>,
    ) -> Result<()> {
        let (rb, kn) = (blk.i1 - blk.i0, blk.kn);
        matmul(s, View::rm(&q[blk.i0 * d..blk.i1 * d], rb, d), View::rm(&k[..kn * d], kn, d).t(), false)?;
        for (li, i) in (blk.i0..blk.i1).enumerate() {
            let row = Row::new(norms[i], &norms[tq..], p, self.use_param);
            let (n, keep) = self.rows.row(i, tk);
            let span = li * kn..(li + 1) * kn;
            let sc = scores.as_deref_mut().map(|e| &mut e[span.clone()]);
            forward_row(&self.f, row, &s[span.clone()], n.min(kn), keep.map(|k| &k[..kn]), &mut w[span], sc);
        }
        Ok(())
    }
}

impl CustomOp3 for Attend {
    fn name(&self) -> &'static str {
        "attnlab-attention"
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
        let _timer = Timer::start(OpKind::Attention, Pass::Forward);
        let (qk, v, param) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (b, h, tq, tk, d, dv) = self.dims(l1, l2)?;
        let total = b * h * tq * dv;
        let mut out = vec![0f32; total];
        let ptr = SharedMut(out.as_mut_ptr());
        let blocks = self.blocks(tq, tk);
        par_units(b * h, b * h * tq * tk * (d + dv), |bh| {
            let qk = &qk[bh * (tq + tk) * d..(bh + 1) * (tq + tk) * d];
            let v = &v[bh * tk * dv..(bh + 1) * tk * dv];
            // SAFETY: unit `bh` alone writes rows `bh * tq .. (bh + 1) * tq` of `out`.
            let y = unsafe { part(ptr, total, bh * tq * dv, tq * dv) };
            self.head(qk.split_at(tq * d), v, y, &blocks, (tq, tk, d, dv), self.param(param, bh % h))
        })?;
        Ok((CpuStorage::F32(out), Shape::from((b, h, tq, dv))))
    }

    fn bwd(
        &self,
        qk: &Tensor,
        v: &Tensor,
        param: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, h, t2, d) = qk.dims4()?;
        let (tk, dv) = (t2 - self.tq, v.dim(3)?);
        let op = AttendBwd { fwd: self.clone(), param: to_vec(param)? };
        let packed = qk.apply_op3_no_bwd(v, &g.contiguous()?, &op)?;
        let (n_qk, n_v) = (b * h * t2 * d, b * h * tk * dv);
        let g_qk = packed.narrow(0, 0, n_qk)?.reshape((b, h, t2, d))?;
        let g_v = packed.narrow(0, n_qk, n_v)?.reshape((b, h, tk, dv))?;
        let g_param = match self.use_param {
            ParamUse::None => None,
            ParamUse::Temperature | ParamUse::Power | ParamUse::Scale => {
                Some(packed.narrow(0, n_qk + n_v, b * h)?.reshape((b, h))?.sum(0)?)
            }
        };
        Ok((Some(g_qk), Some(g_v), g_param))
    }
}

/// Backward over `(qk, v, dY)`; output packed flat: `d[q; k]`, then `dV`, then per-`(b, h)`
/// partial gradients of the per-head parameter.
pub(super) struct AttendBwd {
    pub(super) fwd: Attend,
    pub(super) param: Vec<f32>,
}

impl CustomOp3 for AttendBwd {
    fn name(&self) -> &'static str {
        "attnlab-attention-bwd"
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
        let _timer = Timer::start(OpKind::Attention, Pass::Backward);
        let (qk, v, gy) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let fwd = &self.fwd;
        let dims @ (b, h, tq, tk, d, dv) = fwd.dims(l1, l2)?;
        let (n_qk, n_v) = (b * h * (tq + tk) * d, b * h * tk * dv);
        let total = n_qk + n_v + b * h;
        let mut out = vec![0f32; total];
        let ptr = SharedMut(out.as_mut_ptr());
        let blocks = fwd.blocks(tq, tk);
        par_units(b * h, b * h * tq * tk * (2 * d + 2 * dv), |bh| {
            let qk_u = &qk[bh * (tq + tk) * d..(bh + 1) * (tq + tk) * d];
            let v = &v[bh * tk * dv..(bh + 1) * tk * dv];
            let gy = &gy[bh * tq * dv..(bh + 1) * tq * dv];
            // SAFETY: unit `bh` alone writes its own block of `d[q; k]`, of `dV` and its own
            // parameter slot; the three regions are disjoint by construction.
            let (g_qk, g_v, g_p) = unsafe {
                (
                    part(ptr, total, bh * (tq + tk) * d, (tq + tk) * d),
                    part(ptr, total, n_qk + bh * tk * dv, tk * dv),
                    part(ptr, total, n_qk + n_v + bh, 1),
                )
            };
            let p = fwd.param(&self.param, bh % h);
            g_p[0] = self.head(qk_u.split_at(tq * d), v, gy, (g_qk, g_v), &blocks, dims, p)?;
            Ok(())
        })?;
        Ok((CpuStorage::F32(out), Shape::from(total)))
    }
}

impl AttendBwd {
    /// Gradients of one head into `g_qk = d[q; k]` and `g_v` (zero on entry); returns the head's
    /// gradient of the per-head parameter.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn head(
        &self,
        (q, k): (&[f32], &[f32]),
        v: &[f32],
        gy: &[f32],
        (g_qk, g_v): (&mut [f32], &mut [f32]),
        blocks: &[Block],
        (_, _, tq, tk, d, dv): Dims,
        p: Head,
    ) -> Result<f32> {
        let fwd = &self.fwd;
        let norms = fwd.norms(q, k, d);
        let (gq, gk) = g_qk.split_at_mut(tq * d);
        let mut col = vec![0f32; tk];
        let rmax = block_rows(tq).min(tq);
        // Metrics whose scores cost more to recompute than to keep (rbf) keep them.
        let keep_scores = with_metric!(fwd.f.kind, M => M::KEEP_SCORES);
        with_tiles(5 * rmax * tk, |tiles| {
            let (s, rest) = tiles.split_at_mut(rmax * tk);
            let (w, rest) = rest.split_at_mut(rmax * tk);
            let (dw, rest) = rest.split_at_mut(rmax * tk);
            let (gs, e) = rest.split_at_mut(rmax * tk);
            let mut gp = 0f32;
            for blk in blocks {
                let (i0, i1, kn) = (blk.i0, blk.i1, blk.kn);
                let rb = i1 - i0;
                let (s, w, dw, gs, e) = (
                    &mut s[..rb * kn],
                    &mut w[..rb * kn],
                    &mut dw[..rb * kn],
                    &mut gs[..rb * kn],
                    &mut e[..rb * kn],
                );
                let e_opt = if keep_scores { Some(&mut *e) } else { None };
                fwd.block_weights((q, k), &norms, blk, (tq, tk, d), p, s, w, e_opt)?;
                let (gy_b, v_b, k_b, q_b) =
                    (&gy[i0 * dv..i1 * dv], &v[..kn * dv], &k[..kn * d], &q[i0 * d..i1 * d]);
                matmul(dw, View::rm(gy_b, rb, dv), View::rm(v_b, kn, dv).t(), false)?;
                let kept = keep_scores.then_some(&*e);
                self.block_grads(blk, (&norms, tq, tk), p, (s, w, dw), gs, kept, &mut gp);
                matmul(&mut g_v[..kn * dv], View::rm(w, rb, kn).t(), View::rm(gy_b, rb, dv), true)?;
                matmul(&mut gq[i0 * d..i1 * d], View::rm(gs, rb, kn), View::rm(k_b, kn, d), false)?;
                matmul(&mut gk[..kn * d], View::rm(gs, rb, kn).t(), View::rm(q_b, rb, d), true)?;
                if fwd.f.kind.is_distance() {
                    row_norm_terms(gs, q_b, &mut gq[i0 * d..i1 * d], &mut col[..kn], (rb, kn, d));
                }
            }
            if fwd.f.kind.is_distance() {
                col_norm_terms(&col, k, gk, d);
            }
            Ok(gp)
        })
    }

    /// `G = dS/d(qk)` of one block's rows (into `gs`) from its `S`, `W`, `dW` and, for metrics
    /// that keep them, its scores; adds the rows' gradients of the per-head parameter to `gp`
    /// (row by row, in order).
    #[allow(clippy::too_many_arguments)]
    fn block_grads(
        &self,
        blk: &Block,
        (norms, tq, tk): (&[f32], usize, usize),
        p: Head,
        (s, w, dw): (&[f32], &[f32], &[f32]),
        gs: &mut [f32],
        kept: Option<&[f32]>,
        gp: &mut f32,
    ) {
        let fwd = &self.fwd;
        let kn = blk.kn;
        for (li, i) in (blk.i0..blk.i1).enumerate() {
            let row = Row::new(norms[i], &norms[tq..], p, fwd.use_param);
            let n = fwd.rows.row(i, tk).0.min(kn);
            let span = li * kn..(li + 1) * kn;
            let e = kept.map(|e| &e[span.clone()]);
            *gp += backward_row(
                &fwd.f,
                row,
                &s[span.clone()],
                &w[span.clone()],
                &dw[span.clone()],
                n,
                &mut gs[span],
                e,
            );
        }
    }
}

/// Squared-norm terms of the keys once all blocks are done: `gk_j -= col_j k_j`; compiled per CPU.
#[multiversion::multiversion(targets = "simd")]
fn col_norm_terms(col: &[f32], k: &[f32], gk: &mut [f32], d: usize) {
    for ((&c, gk), k) in col.iter().zip(gk.chunks_mut(d)).zip(k.chunks(d)) {
        gk.iter_mut().zip(k).for_each(|(o, &x)| *o -= c * x);
    }
}

/// Squared-norm terms of one block: `gq_i -= (sum_j G_ij) q_i`; adds column sums of `G` to `col`
/// (applied to the keys once all blocks are done); compiled per CPU.
#[multiversion::multiversion(targets = "simd")]
fn row_norm_terms(
    gs: &[f32],
    q: &[f32],
    gq: &mut [f32],
    col: &mut [f32],
    (rb, kn, d): (usize, usize, usize),
) {
    for ((row, gq), q) in gs.chunks(kn).take(rb).zip(gq.chunks_mut(d)).zip(q.chunks(d)) {
        col.iter_mut().zip(row).for_each(|(c, &g)| *c += g);
        let acc = lanes::sum(row);
        gq.iter_mut().zip(q).for_each(|(o, &x)| *o -= acc * x);
    }
}
