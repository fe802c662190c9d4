//! Peak device memory, from the CUDA driver's default memory pool (candle allocates through it
//! with `cuMemAllocAsync`): its high-water mark of memory in use, resettable. `None` on other
//! devices and in builds without the `cuda` feature.

use candle_core::{Device, Result};

/// Resets the peak of `device` to the memory in use now (no-op off CUDA).
pub fn reset_peak(device: &Device) -> Result<()> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(dev) = device {
        let zero = 0u64;
        pool_attribute(dev, Some(zero))?;
    }
    let _ = device;
    Ok(())
}

/// Peak memory in use on `device` since the last [`reset_peak`] (or the start), MiB.
pub fn peak_mib(device: &Device) -> Result<Option<f64>> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(dev) = device {
        device.synchronize()?;
        return Ok(Some(pool_attribute(dev, None)? as f64 / (1024.0 * 1024.0)));
    }
    let _ = device;
    Ok(None)
}

/// Reads (`set` = `None`) or writes the default pool's `CU_MEMPOOL_ATTR_USED_MEM_HIGH`.
#[cfg(feature = "cuda")]
fn pool_attribute(dev: &candle_core::CudaDevice, set: Option<u64>) -> Result<u64> {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let ctx = dev.cuda_stream().context().clone();
    ctx.bind_to_thread().map_err(candle_core::Error::wrap)?;
    let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
    let mut value = set.unwrap_or(0);
    // SAFETY: the context is bound to this thread; `pool` is written by the driver before use,
    // and the attribute's value is a u64 read or written through `value`.
    let r = unsafe {
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        let r = sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device());
        if r != sys::CUresult::CUDA_SUCCESS {
            r
        } else if set.is_some() {
            sys::cuMemPoolSetAttribute(pool, attr, (&mut value as *mut u64).cast())
        } else {
            sys::cuMemPoolGetAttribute(pool, attr, (&mut value as *mut u64).cast())
        }
    };
    if r != sys::CUresult::CUDA_SUCCESS {
        candle_core::bail!("reading the CUDA memory pool's peak: {r:?}")
    }
    Ok(value)
}
