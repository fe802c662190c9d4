//! Fused self-attention over packed projections: `qkv` `(b, t, 3c)` (queries, keys and values
//! side by side along the channels, head `j` in channels `j d .. (j + 1) d` of each third) to `y`
//! `(b, t, c)` with the heads side by side — the layouts of the linear maps around attention, so
//! no head transposes, copies or concatenations enter the graph.
//!
//! Each `(batch, head)` unit gathers its rows into contiguous per-thread tiles and runs the
//! per-head kernels of [`super::tiles`]; `cosine` normalises the gathered rows itself
//! ([`super::qk::unit_rows`]).

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};

use super::profile::{OpKind, Pass, Timer};
use super::qk::{QkFn, backward_rows, forward_rows, unit_rows, unit_rows_bwd};
use super::rowmask::RowMask;
use super::rows::{MetricFn, ParamUse, head_param};
use super::tiles::{Attend, AttendBwd, Block};
use super::{SharedMut, cpu_f32, par_units, part, slice, to_vec, with_scratch};
use crate::metric::table::Input;

thread_local! {
    /// Per-thread gathered rows of one unit: q, k, v, (dy, dq, dk, dv), norms.
    static GATHER: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// qk-norm and RoPE for [`self_attention`] to apply to the gathered query and key rows: the
/// transform and its gain `(2, d)` (query gain, key gain), if any.
#[derive(Clone, Copy)]
pub struct PackedQk<'a> {
    /// The transform.
    pub f: &'a QkFn,
    /// The gain `(2, d)` (`rms_gain`), if any.
    pub gain: Option<&'a Tensor>,
}

/// Causal (or other 0/`-inf` `(t, t)`-masked) self-attention `(b, t, c)` from packed `qkv`
/// `(b, t, 3c)` with `n_head` heads; `param` `(n_head,)` is the cosine temperature or the learned
/// `idw` power; `qk` transforms every head's query and key rows (positions from 0) before the
/// scores. `None` when the kernel does not apply (not CPU `f32`, or a mask with values other
/// than 0 and `-inf`).
pub fn self_attention(
    f: MetricFn,
    qkv: &Tensor,
    n_head: usize,
    param: Option<&Tensor>,
    mask: Option<&Tensor>,
    qk: Option<PackedQk>,
) -> Result<Option<Tensor>> {
    let gain = qk.and_then(|q| q.gain);
    if !cpu_f32(qkv) || gain.is_some_and(|g| !cpu_f32(g)) {
        return Ok(None);
    }
    let (_b, t, c3) = qkv.dims3()?;
    if n_head == 0 || c3 % (3 * n_head) != 0 {
        bail!("fused self-attention: {c3} packed channels do not split into q, k, v of {n_head} heads")
    }
    let d = c3 / (3 * n_head);
    let qk_fn = qk.map(|q| q.f.clone()).filter(|q| !q.is_identity() || gain.is_some());
    if let Some(r) = qk_fn.as_ref().and_then(|q| q.rope.as_ref())
        && (r.rot > d || !r.rot.is_multiple_of(2) || r.cos.len() < t * r.rot / 2)
    {
        bail!(
            "fused self-attention: RoPE of {} dimensions over {t} positions does not fit heads of {d}",
            r.rot
        )
    }
    let gain_t = match gain {
        Some(g) if g.elem_count() == 2 * d => g.flatten_all()?.contiguous()?,
        Some(g) => bail!("fused self-attention: qk gain has shape {:?}, expected (2, {d})", g.dims()),
        None => Tensor::zeros(1, DType::F32, qkv.device())?,
    };
    let Some(rows) = RowMask::new(mask, t, t)? else { return Ok(None) };
    let use_param = ParamUse::of(f.kind, param.is_some())?;
    let param = head_param(param, n_head, qkv.device())?;
    let op = Packed {
        inner: Attend { f, rows: Arc::new(rows), use_param, tq: t },
        h: n_head,
        qk: qk_fn,
        gain: gain.is_some(),
    };
    Ok(Some(qkv.contiguous()?.apply_op3(&param, &gain_t, op)?))
}

/// The forward op over `(qkv, param, gain)`.
#[derive(Clone)]
struct Packed {
    inner: Attend,
    h: usize,
    /// qk-norm and RoPE on the gathered rows, if any.
    qk: Option<QkFn>,
    /// Whether `gain` `(2 d)` is a real qk gain (else a placeholder).
    gain: bool,
}

/// Shapes of one call: `(b, t, h, d)`.
type Dims = (usize, usize, usize, usize);

impl Packed {
    fn dims(&self, qkv: &Layout) -> Result<Dims> {
        let (b, t, c3) = qkv.shape().dims3()?;
        Ok((b, t, self.h, c3 / (3 * self.h)))
    }

    /// Applies the qk transform to the gathered `q; k` `(2t, d)`, row `i` of each at position `i`,
    /// keeping the rows' inverse norms in `invs` `(2t)`.
    fn transform(&self, qk: &mut [f32], gain: &[f32], invs: &mut [f32], t: usize, d: usize) {
        let Some(f) = &self.qk else { return };
        forward_rows(f, qk, self.gain.then_some(gain), invs, t, d);
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

/// Gathers unit `(bb, hd)`'s raw `q; k` into `qk` `(2t, d)` and `v` into `v` `(t, d)`.
fn gather_raw(qkv: &[f32], (bb, hd): (usize, usize), (_, t, h, d): Dims, qk: &mut [f32], v: &mut [f32]) {
    let c = h * d;
    let src = &qkv[bb * t * 3 * c..(bb + 1) * t * 3 * c];
    let (q, k) = qk.split_at_mut(t * d);
    gather(src, hd * d, 3 * c, d, q);
    gather(src, c + hd * d, 3 * c, d, k);
    gather(src, 2 * c + hd * d, 3 * c, d, v);
}

/// The scored rows from raw `q; k` `(2t, d)`, in place: the qk transform (its inverse norms to
/// `qk_invs` `(2t)`, empty without one), then unit rows for cosine; returns the unit rows' inverse norms
/// (cosine) or an empty vector.
fn score_rows(
    op: &Packed,
    qk: &mut [f32],
    gain: &[f32],
    qk_invs: &mut [f32],
    t: usize,
    d: usize,
) -> Vec<f32> {
    op.transform(qk, gain, qk_invs, t, d);
    if op.unit_rows() { unit_rows(qk, d) } else { Vec::new() }
}

impl CustomOp3 for Packed {
    fn name(&self) -> &'static str {
        "attnlab-self-attention"
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
        let (qkv, param, gain) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let dims @ (b, t, h, d) = self.dims(l1)?;
        let c = h * d;
        let mut out = vec![0f32; b * t * c];
        let ptr = SharedMut(out.as_mut_ptr());
        let blocks: Vec<Block> = self.inner.blocks(t, t);
        let n_inv = if self.qk.is_some() { 2 * t } else { 0 };
        par_units(b * h, b * h * t * t * 2 * d, |u| {
            let (bb, hd) = (u / h, u % h);
            with_gather(4 * t * d + n_inv, |buf| {
                let (qk, rest) = buf.split_at_mut(2 * t * d);
                let (v, rest) = rest.split_at_mut(t * d);
                let (y, qk_invs) = rest.split_at_mut(t * d);
                gather_raw(qkv, (bb, hd), dims, qk, v);
                score_rows(self, qk, gain, qk_invs, t, d);
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
        gain: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, c3) = qkv.dims3()?;
        let (bh, d) = (b * self.h, c3 / (3 * self.h));
        let op = PackedBwd { fwd: self.clone(), param: to_vec(param)?, gain: to_vec(gain)? };
        let packed = qkv.apply_op2_no_bwd(&g.contiguous()?, &op)?;
        let n = b * t * c3;
        let g_qkv = packed.narrow(0, 0, n)?.reshape((b, t, c3))?;
        let g_param = match self.inner.use_param {
            ParamUse::None => None,
            ParamUse::Temperature | ParamUse::Power | ParamUse::Scale => {
                Some(packed.narrow(0, n, bh)?.reshape((b, self.h))?.sum(0)?)
            }
        };
        let g_gain = if self.gain {
            Some(packed.narrow(0, n + bh, bh * 2 * d)?.reshape((bh, 2 * d))?.sum(0)?.reshape(gain.shape())?)
        } else {
            None
        };
        Ok((Some(g_qkv), g_param, g_gain))
    }
}

/// Backward over `(qkv, dY (b, t, c))`; output packed flat: `d qkv`, then per-`(b, h)` partial
/// gradients of the per-head parameter, then (with a qk gain) per-`(b, h)` partial gradients of
/// the gain `(2 d)`.
struct PackedBwd {
    fwd: Packed,
    param: Vec<f32>,
    gain: Vec<f32>,
}

impl PackedBwd {
    /// Turns the gradients of the scored rows `g_qk` `(2t, d)` into those of the raw rows `raw`
    /// (inverse norms `invs` `(2t)`), adding the unit's gain gradient to `gg` `(2d)`.
    fn raw_grads(&self, g_qk: &mut [f32], raw: &[f32], invs: &[f32], gg: &mut [f32], t: usize, d: usize) {
        let fwd = &self.fwd;
        let Some(f) = &fwd.qk else { return };
        backward_rows(f, g_qk, raw, invs, fwd.gain.then_some(&self.gain[..]), gg, t, d);
    }
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
        let _timer = Timer::start(OpKind::Attention, Pass::Backward);
        let (qkv, gy) = (slice(s1, l1)?, slice(s2, l2)?);
        let fwd = &self.fwd;
        let dims @ (b, t, h, d) = fwd.dims(l1)?;
        let c = h * d;
        let n = b * t * 3 * c;
        let n_gain = if fwd.gain { b * h * 2 * d } else { 0 };
        let total = n + b * h + n_gain;
        let mut out = vec![0f32; total];
        let ptr = SharedMut(out.as_mut_ptr());
        let blocks = fwd.inner.blocks(t, t);
        let inner = AttendBwd { fwd: fwd.inner.clone(), param: self.param.clone() };
        // With a qk transform: the raw q; k rows and their inverse norms.
        let (n_raw, n_inv) = if fwd.qk.is_some() { (2 * t * d, 2 * t) } else { (0, 0) };
        par_units(b * h, b * h * t * t * 4 * d, |u| {
            let (bb, hd) = (u / h, u % h);
            with_gather(7 * t * d + n_raw + n_inv, |buf| {
                let (qk, rest) = buf.split_at_mut(2 * t * d);
                let (v, rest) = rest.split_at_mut(t * d);
                let (gy_u, rest) = rest.split_at_mut(t * d);
                let (g_qk, rest) = rest.split_at_mut(2 * t * d);
                let (g_v, rest) = rest.split_at_mut(t * d);
                let (raw, qk_invs) = rest.split_at_mut(n_raw);
                gather_raw(qkv, (bb, hd), dims, qk, v);
                raw.copy_from_slice(&qk[..n_raw]);
                let inv = score_rows(fwd, qk, &self.gain, qk_invs, t, d);
                gather(&gy[bb * t * c..(bb + 1) * t * c], hd * d, c, d, gy_u);
                g_qk.fill(0.0);
                g_v.fill(0.0);
                let p = fwd.inner.param(&self.param, hd);
                let gp =
                    inner.head(qk.split_at(t * d), v, gy_u, (g_qk, g_v), &blocks, (b, h, t, t, d, d), p)?;
                if fwd.unit_rows() {
                    unit_rows_bwd(qk, &inv, g_qk, d);
                }
                // SAFETY: unit `u` alone writes its gain slot `n + b h + u 2d .. + 2d`.
                let gg = unsafe {
                    if fwd.gain { part(ptr, total, n + b * h + u * 2 * d, 2 * d) } else { &mut [][..] }
                };
                self.raw_grads(g_qk, raw, qk_invs, gg, t, d);
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
