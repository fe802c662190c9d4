//! The flash kernels as candle custom ops: [`FlashFwd`] over `([q; k], v, param)` writes
//! `[y | lse]` flat (so the backward finds the per-row log-normaliser in the op's result), and
//! its backward runs [`FlashBwd`], whose output is flat `[d[q; k] | dv | gp | D]`.

use std::sync::Arc;

use candle_core::cuda_backend::WrapErr;
use candle_core::cuda_backend::cudarc::driver::{CudaView, LaunchArgs, LaunchConfig, PushKernelArg};
use candle_core::{
    CpuStorage, CudaDevice, CudaStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Storage, StorageRef,
    Tensor, bail,
};

use super::mask::DeviceMask;
use super::source::{self, BQ};
use crate::fused::MetricFn;
use crate::fused::rows::ParamUse;

/// Forward op; see the module doc.
#[derive(Clone)]
pub(super) struct FlashFwd {
    pub(super) f: MetricFn,
    pub(super) mask: Arc<DeviceMask>,
    pub(super) use_param: ParamUse,
    pub(super) tq: usize,
}

/// `(b, h, tq, tk, d, dv)` of one call.
type Dims = (usize, usize, usize, usize, usize, usize);

/// The kernels' scalar arguments after the buffers: `h, tq, tk, param_use` and the metric's
/// fixed `scale, eps, delta, power`.
struct Scalars {
    ints: [i32; 4],
    floats: [f32; 4],
}

impl FlashFwd {
    fn dims(&self, qk: &Layout, v: &Layout) -> Result<Dims> {
        let (b, h, t2, d) = qk.shape().dims4()?;
        let (vb, vh, tk, dv) = v.shape().dims4()?;
        if (vb, vh, tk) != (b, h, t2 - self.tq) || !qk.is_contiguous() || !v.is_contiguous() {
            bail!("flash attention: [q; k] {:?} and v {:?} do not fit together", qk.dims(), v.dims())
        }
        Ok((b, h, self.tq, tk, d, dv))
    }

    fn scalars(&self, (_, h, tq, tk, _, _): Dims) -> Scalars {
        let use_param = match self.use_param {
            ParamUse::None => 0,
            ParamUse::Temperature => 1,
            ParamUse::Power => 2,
            ParamUse::Scale => 3,
        };
        let f = &self.f;
        Scalars {
            ints: [h as i32, tq as i32, tk as i32, use_param],
            floats: [f.scale, f.eps, f.delta, f.power],
        }
    }

    /// The compiled kernels of this op's metric and widths: module name and PTX.
    fn module(&self, dev: &CudaDevice, (_, _, _, _, d, dv): Dims) -> Result<(String, Arc<String>)> {
        source::module(dev, self.f.kind, d, dv)
    }
}

/// The `f32` device data of a contiguous CUDA storage from its layout's offset.
fn view<'a>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, f32>> {
    if !l.is_contiguous() {
        bail!("flash attention needs contiguous tensors")
    }
    Ok(s.as_cuda_slice::<f32>()?.slice(l.start_offset()..))
}

/// The CUDA storage behind a tensor's storage guard.
fn cuda(s: &Storage) -> Result<&CudaStorage> {
    match s {
        Storage::Cuda(c) => Ok(c),
        Storage::Cpu(_) | Storage::Metal(_) => bail!("flash attention: tensor is not on a CUDA device"),
    }
}

/// The keep pattern's device data, if the mask has one.
fn keep_view<'a>(guard: &'a Option<(StorageRef<'_>, &Layout)>) -> Result<Option<CudaView<'a, u8>>> {
    match guard {
        Some((s, l)) => Ok(Some(cuda(s)?.as_cuda_slice::<u8>()?.slice(l.start_offset()..))),
        None => Ok(None),
    }
}

/// Pushes the keep pattern, or a null pointer when the mask is a prefix mask.
fn push_keep<'a>(args: &mut LaunchArgs<'a>, keep: &'a Option<CudaView<'_, u8>>, null: &'a u64) {
    match keep {
        Some(k) => args.arg(k),
        None => args.arg(null),
    };
}

impl Scalars {
    /// Pushes the scalar arguments in the kernels' order.
    fn push<'a>(&'a self, args: &mut LaunchArgs<'a>) {
        for x in &self.ints {
            args.arg(x);
        }
        for x in &self.floats {
            args.arg(x);
        }
    }
}

/// `n` blocks of `per` over `len` items.
fn blocks(len: usize, per: usize) -> u32 {
    len.div_ceil(per) as u32
}

impl CustomOp3 for FlashFwd {
    fn name(&self) -> &'static str {
        "attnlab-flash-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        bail!("the flash attention op runs on CUDA devices only (the CPU has its own kernels)")
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dims @ (b, h, tq, _, _, dv) = self.dims(l1, l2)?;
        let dev = s1.device.clone();
        let (module, ptx) = self.module(&dev, dims)?;
        let func = dev.get_or_load_custom_func("flash_fwd", &module, &ptx)?;
        let (qk, v, param) = (view(s1, l1)?, view(s2, l2)?, view(s3, l3)?);
        let (nk_s, nk_l) = self.mask.nkeys.storage_and_layout();
        let nkeys = cuda(&nk_s)?.as_cuda_slice::<u32>()?.slice(nk_l.start_offset()..);
        let keep_guard = self.mask.keep.as_ref().map(|k| k.storage_and_layout());
        let keep = keep_view(&keep_guard)?;
        let n_y = b * h * tq * dv;
        let mut out = dev.alloc_zeros::<f32>(n_y + b * h * tq)?;
        let (mut y, mut lse) = out.split_at_mut(n_y);
        let sc = self.scalars(dims);
        let null = 0u64;
        let mut args = func.builder();
        args.arg(&qk).arg(&v).arg(&param).arg(&nkeys);
        push_keep(&mut args, &keep, &null);
        args.arg(&mut y).arg(&mut lse);
        sc.push(&mut args);
        let cfg = LaunchConfig {
            grid_dim: (blocks(tq, BQ), (b * h) as u32, 1),
            block_dim: (BQ as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match `flash_fwd`'s signature in flash.cu, and every buffer
        // holds the elements the kernel reads or writes for these dims.
        unsafe { args.launch(cfg) }.w()?;
        drop(args);
        Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from(n_y + b * h * tq)))
    }

    fn bwd(
        &self,
        qk: &Tensor,
        v: &Tensor,
        param: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, h, t2, d) = qk.dims4()?;
        let (tk, dv) = (t2 - self.tq, v.dim(3)?);
        let op = FlashBwd {
            fwd: self.clone(),
            qk: qk.clone(),
            v: v.clone(),
            param: param.clone(),
            res: res.clone(),
        };
        let packed = g.contiguous()?.apply_op1_no_bwd(&op)?;
        let (n_qk, n_v, nqt) = (b * h * t2 * d, b * h * tk * dv, self.tq.div_ceil(BQ));
        let g_qk = packed.narrow(0, 0, n_qk)?.reshape((b, h, t2, d))?;
        let g_v = packed.narrow(0, n_qk, n_v)?.reshape((b, h, tk, dv))?;
        let g_param = match self.use_param {
            ParamUse::None => None,
            ParamUse::Temperature | ParamUse::Power | ParamUse::Scale => {
                Some(packed.narrow(0, n_qk + n_v, b * h * nqt)?.reshape((b, h, nqt))?.sum(2)?.sum(0)?)
            }
        };
        Ok((Some(g_qk), Some(g_v), g_param))
    }
}

/// Backward op over `dy` (the gradient of the forward's flat `[y | lse]`); holds the forward's
/// inputs and result.
struct FlashBwd {
    fwd: FlashFwd,
    qk: Tensor,
    v: Tensor,
    param: Tensor,
    res: Tensor,
}

impl CustomOp1 for FlashBwd {
    fn name(&self) -> &'static str {
        "attnlab-flash-attention-bwd"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        bail!("the flash attention backward runs on CUDA devices only")
    }

    fn cuda_fwd(&self, s_g: &CudaStorage, l_g: &Layout) -> Result<(CudaStorage, Shape)> {
        let (qk_s, qk_l) = self.qk.storage_and_layout();
        let (v_s, v_l) = self.v.storage_and_layout();
        let (p_s, p_l) = self.param.storage_and_layout();
        let (r_s, r_l) = self.res.storage_and_layout();
        let (nk_s, nk_l) = self.fwd.mask.nkeys.storage_and_layout();
        let keep_guard = self.fwd.mask.keep.as_ref().map(|k| k.storage_and_layout());
        let dims @ (b, h, tq, tk, d, dv) = self.fwd.dims(qk_l, v_l)?;
        let dev = s_g.device.clone();
        let (qk, v, param) = (view(cuda(&qk_s)?, qk_l)?, view(cuda(&v_s)?, v_l)?, view(cuda(&p_s)?, p_l)?);
        let (res, g) = (view(cuda(&r_s)?, r_l)?, view(s_g, l_g)?);
        let n_y = b * h * tq * dv;
        let (y, lse, dy) = (res.slice(..n_y), res.slice(n_y..), g.slice(..n_y));
        let nkeys = cuda(&nk_s)?.as_cuda_slice::<u32>()?.slice(nk_l.start_offset()..);
        let keep = keep_view(&keep_guard)?;
        let (bk, _) = source::tiles(d, dv);
        let nqt = tq.div_ceil(BQ);
        let (n_qk, n_v, n_gp) = (b * h * (tq + tk) * d, b * h * tk * dv, b * h * nqt);
        let total = n_qk + n_v + n_gp + b * h * tq;
        let mut out = dev.alloc_zeros::<f32>(total)?;
        let sc = self.fwd.scalars(dims);
        let null = 0u64;
        let (module, ptx) = self.fwd.module(&dev, dims)?;
        let f_dq = dev.get_or_load_custom_func("flash_bwd_dq", &module, &ptx)?;
        let f_dkv = dev.get_or_load_custom_func("flash_bwd_dkv", &module, &ptx)?;
        let (mut g_qk, mut rest) = out.split_at_mut(n_qk);
        let (mut g_v, mut rest) = rest.split_at_mut(n_v);
        let (mut gp, mut dsum) = rest.split_at_mut(n_gp);
        let mut args = f_dq.builder();
        args.arg(&qk).arg(&v).arg(&param).arg(&nkeys);
        push_keep(&mut args, &keep, &null);
        args.arg(&y).arg(&lse).arg(&dy).arg(&mut g_qk).arg(&mut dsum).arg(&mut gp);
        sc.push(&mut args);
        let cfg = LaunchConfig {
            grid_dim: (nqt as u32, (b * h) as u32, 1),
            block_dim: (BQ as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match `flash_bwd_dq` in flash.cu; the buffers are sized for these
        // dims (gp holds `nqt` partial sums per head).
        unsafe { args.launch(cfg) }.w()?;
        drop(args);
        let mut args = f_dkv.builder();
        args.arg(&qk).arg(&v).arg(&param).arg(&nkeys);
        push_keep(&mut args, &keep, &null);
        args.arg(&lse).arg(&mut dsum).arg(&dy).arg(&mut g_qk).arg(&mut g_v);
        sc.push(&mut args);
        let cfg = LaunchConfig {
            grid_dim: (blocks(tk, bk), (b * h) as u32, 1),
            block_dim: (bk as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: as above for `flash_bwd_dkv`, launched with one thread per key of a tile (`BK`
        // threads), after `flash_bwd_dq` wrote `dsum` on the same stream.
        unsafe { args.launch(cfg) }.w()?;
        drop(args);
        Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from(total)))
    }
}
