//! The additive mask as the flash kernels read it, computed on the device: each row's number of
//! leading visible keys (causal and context masks are prefixes), plus the full keep pattern for
//! other masks. The check of a `(tq, tk)` mask costs a few device reductions and one small copy
//! back, so the last mask's result is kept (every layer of a forward pass shares one mask).

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Tensor, TensorId};

/// Which keys each query row sees, on the device.
#[derive(Debug)]
pub(super) struct DeviceMask {
    /// `(tq,)` `u32`: row `i` sees keys `0..nkeys[i]`.
    pub(super) nkeys: Tensor,
    /// `(tq, tk)` `u8`, contiguous: and only where nonzero (`None` for prefix masks).
    pub(super) keep: Option<Tensor>,
}

/// The last mask seen and its device form.
static LAST: Mutex<Option<(TensorId, usize, usize, Arc<DeviceMask>)>> = Mutex::new(None);

/// The device form of an additive `(tq, tk)` mask of zeros and `-inf` (`None`: every key);
/// `Ok(None)` when the mask has another shape or other values (the composed path takes it).
pub(super) fn device_mask(
    mask: Option<&Tensor>,
    tq: usize,
    tk: usize,
    dev: &Device,
) -> Result<Option<Arc<DeviceMask>>> {
    let Some(mask) = mask else {
        let nkeys = Tensor::full(tk as u32, tq, dev)?;
        return Ok(Some(Arc::new(DeviceMask { nkeys, keep: None })));
    };
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((id, q, k, m)) = last.as_ref()
        && (*id, *q, *k) == (mask.id(), tq, tk)
    {
        return Ok(Some(m.clone()));
    }
    let Some(m) = read(mask, tq, tk, dev)? else { return Ok(None) };
    let m = Arc::new(m);
    *last = Some((mask.id(), tq, tk, m.clone()));
    Ok(Some(m))
}

/// Reads `mask` on the device (see [`device_mask`]).
fn read(mask: &Tensor, tq: usize, tk: usize, dev: &Device) -> Result<Option<DeviceMask>> {
    if mask.elem_count() != tq * tk || mask.rank() < 2 || mask.dims()[mask.rank() - 2..] != [tq, tk] {
        return Ok(None);
    }
    let m = mask.to_device(dev)?.to_dtype(DType::F32)?.reshape((tq, tk))?;
    let keep = m.eq(0.0)?; // (tq, tk) u8
    let blocked = m.eq(f64::NEG_INFINITY)?;
    let count = |t: &Tensor| t.to_dtype(DType::U32)?.sum_all();
    let nkeys = keep.to_dtype(DType::U32)?.sum(1)?; // (tq,)
    let cols = Tensor::arange(0u32, tk as u32, dev)?.unsqueeze(0)?; // (1, tk)
    let prefix = cols.broadcast_lt(&nkeys.unsqueeze(1)?)?; // (tq, tk) u8
    let off_prefix = count(&prefix.ne(&keep)?)?;
    let checks = Tensor::stack(&[(count(&keep)? + count(&blocked)?)?, off_prefix], 0)?.to_vec1::<u32>()?;
    if checks[0] as usize != tq * tk {
        return Ok(None); // values other than 0 and -inf
    }
    Ok(Some(if checks[1] == 0 {
        DeviceMask { nkeys, keep: None }
    } else {
        DeviceMask { nkeys: Tensor::full(tk as u32, tq, dev)?, keep: Some(keep.contiguous()?) }
    }))
}
