//! Attention on CUDA devices (feature `cuda`): flash-style kernels for every metric and mask,
//! forward and backward, compiled at run time by NVRTC from `flash.cu` with the metric's row of
//! [`crate::metric::table`] (its [`crate::metric::table::CudaRow`] expressions) as macros.
//!
//! Per head and query block: keys in shared-memory tiles, an online softmax (running maximum and
//! sum; `idw` sums its closed-form weights `(eps + u)^-1` directly, `rbf` needs no maximum), so no
//! `(tq, tk)` tensor is ever stored; the forward saves `lse_i` (the log of row i's normaliser) and
//! the backward recomputes each weight from it, tile by tile: one kernel per query block for `dq`
//! (and the head parameter's gradient), one per key block for `dk`, `dv`. fp32 throughout.
//!
//! [`attention`] is what [`crate::route`] calls for CUDA `f32` tensors; without the `cuda`
//! feature it declines every call (and the route never picks it). [`memory`] reads the device's
//! peak memory for `attnlab bench`.

#[cfg(feature = "cuda")]
mod mask;
pub mod memory;
#[cfg(feature = "cuda")]
mod op;
#[cfg(feature = "cuda")]
mod source;

use candle_core::{DType, Result, Tensor};

use crate::fused::MetricFn;

/// Whether `t` can go through the CUDA kernels: an `f32` tensor on a CUDA device, in a build
/// with the `cuda` feature.
pub fn cuda_f32(t: &Tensor) -> bool {
    cfg!(feature = "cuda") && t.device().is_cuda() && t.dtype() == DType::F32
}

/// `softmax(score(q, k) + mask) v` `(b, h, tq, dv)` on a CUDA device for `q` `(b, h, tq, d)`,
/// `k` `(b, h, tk, d)`, `v` `(b, h, tk, dv)` (`d`, `dv` at most 128); `param` `(h,)` is the cosine
/// temperature (q and k then already have unit rows), the learned `idw` power or the learned
/// score scale, as for [`crate::fused::attention`]. `None` where the kernels do not apply (not
/// CUDA `f32`, wider heads, a mask with values other than 0 and `-inf`, or no `cuda` feature).
pub fn attention(
    f: MetricFn,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    param: Option<&Tensor>,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    if !cuda_f32(q) || !cuda_f32(k) || !cuda_f32(v) {
        return Ok(None);
    }
    #[cfg(feature = "cuda")]
    {
        flash(f, q, k, v, param, mask)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (f, param, mask);
        Ok(None)
    }
}

#[cfg(feature = "cuda")]
fn flash(
    f: MetricFn,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    param: Option<&Tensor>,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    use crate::fused::rows::{ParamUse, head_param};
    let (b, h, tq, d) = q.dims4()?;
    let (kb, kh, tk, kd) = k.dims4()?;
    let (vb, vh, vt, dv) = v.dims4()?;
    if (kb, kh, kd) != (b, h, d) || (vb, vh, vt) != (b, h, tk) {
        candle_core::bail!(
            "flash attention: q {:?}, k {:?}, v {:?} do not fit together",
            q.dims(),
            k.dims(),
            v.dims()
        )
    }
    if d > source::MAX_HEAD_DIM || dv > source::MAX_HEAD_DIM || tk == 0 {
        return Ok(None);
    }
    let Some(mask) = mask::device_mask(mask, tq, tk, q.device())? else { return Ok(None) };
    let use_param = ParamUse::of(f.kind, param.is_some())?;
    let param = head_param(param, h, q.device())?;
    let qk = Tensor::cat(&[q, k], 2)?; // (b, h, tq + tk, d)
    let op = op::FlashFwd { f, mask, use_param, tq };
    let out = qk.apply_op3(&v.contiguous()?, &param, op)?; // [y | lse]
    Ok(Some(out.narrow(0, 0, b * h * tq * dv)?.reshape((b, h, tq, dv))?))
}
