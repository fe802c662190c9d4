//! Fused self-attention over packed projections: `qkv` `(b, t, 3c)` (queries, keys and values
//! side by side along the channels, head `j` in channels `j d .. (j + 1) d` of each third) to `y`
//! `(b, t, c)` with the heads side by side — the layouts of the linear maps around attention, so
//! no head transposes, copies or concatenations enter the graph.
//!
//! Each `(batch, head)` unit gathers its rows into contiguous per-thread tiles and runs the
//! per-head kernels of [`super::tiles`]; `cosine` normalises the gathered rows itself
//! ([`crate::metric::unit`]).

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};

use super::rowmask::RowMask;
use super::rows::{MetricFn, ParamUse, head_param};
use super::tiles::{Attend, AttendBwd, Block};
use super::{SharedMut, cpu_f32, par_units, part, slice, to_vec, with_scratch};
use crate::metric::table::Input;
use crate::metric::unit::{unit_rows_bwd, unit_rows_in_place};

thread_local! {
    /// Per-thread gathered rows of one unit: q, k, v, (dy, dq, dk, dv), norms.
    static GATHER: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Causal (or other 0/`-inf` `(t, t)`-masked) self-attention `(b, t, c)` from packed `qkv`
/// `(b, t, 3c)` with `n_head` heads; `param` `(n_head,)` is the cosine temperature or the learned
/// `idw` power. `None` when the kernel does not apply (not CPU `f32`, or a mask with values
/// other than 0 and `-inf`).
pub fn self_attention(
    f: MetricFn,
    qkv: &Tensor,
    n_head: usize,
    param: Option<&Tensor>,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    if !cpu_f32(qkv) {
        return Ok(None);
    }
    let (_b, t, c3) = qkv.dims3()?;
    if n_head == 0 || c3 % (3 * n_head) != 0 {
        bail!("fused self-attention: {c3} packed channels do not split into q, k, v of {n_head} heads")
    }
    let Some(rows) = RowMask::new(mask, t, t)? else { return Ok(None) };
    let use_param = ParamUse::of(f.kind, param.is_some())?;
    let param = head_param(param, n_head, qkv.device())?;
    let op = Packed { inner: Attend { f, rows: Arc::new(rows), use_param, tq: t }, h: n_head };
    Ok(Some(qkv.contiguous()?.apply_op2(&param, op)?))
}

/// The forward op over `(qkv, param)`.
#[derive(Clone)]
struct Packed {
    inner: Attend,
    h: usize,
}

/// Shapes of one call: `(b, t, h, d)`.
type Dims = (usize, usize, usize, usize);

impl Packed {
    fn dims(&self, qkv: &Layout) -> Result<Dims> {
        let (b, t, c3) = qkv.shape().dims3()?;
        Ok((b, t, self.h, c3 / (3 * self.h)))
    }

    /// Whether the metric scores unit rows (`cosine`): the gathered q and k are normalised.
    fn unit_rows(&self) -> bool {
        match self.inner.f.kind.input() {
            Input::UnitDot => true,
            Input::Dot | Input::SqDist | Input::DistPow => false,
        }
    }
}

/// Copies rows `i` of channels `at .. at + d` (row stride `stride`) of `src` into `dst` `(t, d)`.
fn gather(src: &[f32], at: usize, stride: usize, d: usize, dst: &mut [f32]) {
    for (i, row) in dst.chunks_mut(d).enumerate() {
        row.copy_from_slice(&src[i * stride + at..i * stride + at + d]);
    }
}

/// Writes `src` `(t, d)` into rows of channels `at .. at + d` (row stride `stride`) of `dst`.
///
/// # Safety
/// `dst` points into a buffer holding `t` rows of `stride` elements, `at + d <= stride`, and no
/// other thread reads or writes those channels of those rows meanwhile.
unsafe fn scatter(src: &[f32], dst: *mut f32, at: usize, stride: usize, d: usize) {
    for (i, row) in src.chunks(d).enumerate() {
        // SAFETY: guaranteed by the caller.
        unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), dst.add(i * stride + at), d) };
    }
}

/// Runs `f` with `n` elements of this thread's gather buffer (every user overwrites what it reads).
fn with_gather<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_scratch(&GATHER, n, f)
}

/// Gathers unit `(bb, hd)`'s `q; k` into `qk` `(2t, d)` and `v` into `v` `(t, d)`, normalising
/// `q` and `k` for cosine; returns the inverse norms (cosine) or an empty vector.
fn gather_unit(
    op: &Packed,
    qkv: &[f32],
    (bb, hd): (usize, usize),
    (_, t, h, d): Dims,
    qk: &mut [f32],
    v: &mut [f32],
) -> Vec<f32> {
    let c = h * d;
    let src = &qkv[bb * t * 3 * c..(bb + 1) * t * 3 * c];
    let (q, k) = qk.split_at_mut(t * d);
    gather(src, hd * d, 3 * c, d, q);
    gather(src, c + hd * d, 3 * c, d, k);
    gather(src, 2 * c + hd * d, 3 * c, d, v);
    if op.unit_rows() { unit_rows_in_place(qk, d) } else { Vec::new() }
}

impl CustomOp2 for Packed {
    fn name(&self) -> &'static str {
        "attnlab-self-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (qkv, param) = (slice(s1, l1)?, slice(s2, l2)?);
        let dims @ (b, t, h, d) = self.dims(l1)?;
        let c = h * d;
        let mut out = vec![0f32; b * t * c];
        let ptr = SharedMut(out.as_mut_ptr());
        let blocks: Vec<Block> = self.inner.blocks(t, t);
        par_units(b * h, b * h * t * t * 2 * d, |u| {
            let (bb, hd) = (u / h, u % h);
            with_gather(4 * t * d, |buf| {
                let (qk, rest) = buf.split_at_mut(2 * t * d);
                let (v, y) = rest.split_at_mut(t * d);
                gather_unit(self, qkv, (bb, hd), dims, qk, v);
                let p = self.inner.param(param, hd);
                self.inner.head(qk.split_at(t * d), v, y, &blocks, (t, t, d, d), p)?;
                // SAFETY: `out` holds `b * t` rows of `c`; unit (bb, hd) alone writes channels
                // `hd * d .. (hd + 1) * d` of batch element bb's rows.
                unsafe { scatter(y, ptr.get().add(bb * t * c), hd * d, c, d) };
                Ok(())
            })
        })?;
        Ok((CpuStorage::F32(out), Shape::from((b, t, c))))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        param: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, t, c3) = qkv.dims3()?;
        let op = PackedBwd { fwd: self.clone(), param: to_vec(param)? };
        let packed = qkv.apply_op2_no_bwd(&g.contiguous()?, &op)?;
        let n = b * t * c3;
        let g_qkv = packed.narrow(0, 0, n)?.reshape((b, t, c3))?;
        let g_param = match self.inner.use_param {
            ParamUse::None => None,
            ParamUse::Temperature | ParamUse::Power => {
                Some(packed.narrow(0, n, b * self.h)?.reshape((b, self.h))?.sum(0)?)
            }
        };
        Ok((Some(g_qkv), g_param))
    }
}

/// Backward over `(qkv, dY (b, t, c))`; output packed flat: `d qkv`, then per-`(b, h)` partial
/// gradients of the per-head parameter.
struct PackedBwd {
    fwd: Packed,
    param: Vec<f32>,
}

impl CustomOp2 for PackedBwd {
    fn name(&self) -> &'static str {
        "attnlab-self-attention-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (qkv, gy) = (slice(s1, l1)?, slice(s2, l2)?);
        let fwd = &self.fwd;
        let dims @ (b, t, h, d) = fwd.dims(l1)?;
        let c = h * d;
        let n = b * t * 3 * c;
        let total = n + b * h;
        let mut out = vec![0f32; total];
        let ptr = SharedMut(out.as_mut_ptr());
        let blocks = fwd.inner.blocks(t, t);
        let inner = AttendBwd { fwd: fwd.inner.clone(), param: self.param.clone() };
        par_units(b * h, b * h * t * t * 4 * d, |u| {
            let (bb, hd) = (u / h, u % h);
            with_gather(7 * t * d, |buf| {
                let (qk, rest) = buf.split_at_mut(2 * t * d);
                let (v, rest) = rest.split_at_mut(t * d);
                let (gy_u, rest) = rest.split_at_mut(t * d);
                let (g_qk, g_v) = rest.split_at_mut(2 * t * d);
                let inv = gather_unit(fwd, qkv, (bb, hd), dims, qk, v);
                gather(&gy[bb * t * c..(bb + 1) * t * c], hd * d, c, d, gy_u);
                g_qk.fill(0.0);
                g_v.fill(0.0);
                let p = fwd.inner.param(&self.param, hd);
                let gp =
                    inner.head(qk.split_at(t * d), v, gy_u, (g_qk, g_v), &blocks, (b, h, t, t, d, d), p)?;
                if fwd.unit_rows() {
                    unit_rows_bwd(qk, &inv, g_qk, d);
                }
                let (gq, gk) = g_qk.split_at(t * d);
                // SAFETY: `out` starts with `b * t` rows of `3 c`; unit (bb, hd) alone writes its
                // head's channels of each third in batch element bb's rows, and slot `n + u`.
                unsafe {
                    let dst = ptr.get().add(bb * t * 3 * c);
                    scatter(gq, dst, hd * d, 3 * c, d);
                    scatter(gk, dst, c + hd * d, 3 * c, d);
                    scatter(g_v, dst, 2 * c + hd * d, 3 * c, d);
                    part(ptr, total, n + u, 1)[0] = gp;
                }
                Ok(())
            })
        })?;
        Ok((CpuStorage::F32(out), Shape::from(total)))
    }
}
