//! Fused linear map `y = x w^T (+ b)` as one graph node.
//!
//! candle's `Linear` is five nodes (reshape, transpose, matmul, reshape, broadcast add), and
//! candle's backward materialises every node's gradient as `zeros + grad`; one node with its own
//! backward (`dx = dy w`, `dw = dy^T x`, `db = sum_rows dy`) skips four of those full-size
//! buffers per layer and adds the bias in the same pass as the product.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::mm::{View, matmul};
use super::profile::{OpKind, Pass, Timer};
use super::{Kernel, SharedMut, cpu_f32, enabled, par_units, part, slice};

/// `x w^T + b` `(.., n)` for `x` `(.., k)`, `w` `(n, k)` and `b` `(n,)`; `None` when the kernel
/// does not apply (switched off, or not CPU `f32`).
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Option<Tensor>> {
    if !enabled(Kernel::Linear) || !cpu_f32(x) || !cpu_f32(w) || !b.is_none_or(cpu_f32) {
        return Ok(None);
    }
    let (n, k) = w.dims2()?;
    if x.dims().last() != Some(&k) || b.is_some_and(|b| b.dims() != [n]) {
        bail!(
            "linear: input {:?}, weight {:?} and bias {:?} do not fit together",
            x.dims(),
            w.dims(),
            b.map(|b| b.dims().to_vec())
        )
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    Ok(Some(match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, LinearOp)?,
        None => x.apply_op2(&w, LinearOp)?,
    }))
}

/// The gradients of [`linear`] for an output gradient `dy` `(.., n)`: `(dx, dw, db)` with
/// `dx = dy w` (shape of `x`), `dw = dy^T x` `(n, k)` and `db = sum_rows dy` `(n,)`, by the fused
/// backward kernel; `None` when the kernel does not apply. Public for benchmarks of the products.
pub fn linear_backward(x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    if !enabled(Kernel::Linear) || !cpu_f32(x) || !cpu_f32(w) || !cpu_f32(dy) {
        return Ok(None);
    }
    let (n, k) = w.dims2()?;
    let m = x.elem_count() / k.max(1);
    if x.dims().last() != Some(&k) || dy.elem_count() != m * n {
        bail!(
            "linear backward: input {:?}, weight {:?} and gradient {:?} do not fit",
            x.dims(),
            w.dims(),
            dy.dims()
        )
    }
    LinearOp.grads(&x.contiguous()?, &w.contiguous()?, dy).map(Some)
}

/// The forward op over `(x, w)` or `(x, w, b)`.
#[derive(Clone, Copy)]
struct LinearOp;

/// Fewest rows in one unit of [`par_row_ranges`].
const UNIT_ROWS_MIN: usize = 16;
/// Most units [`par_row_ranges`] splits `n` rows into (work for up to 16 threads).
const UNITS_MAX: usize = 16;

/// Calls `f(rows)` for contiguous row ranges covering `0..n`, spread over candle's CPU worker
/// pool (the pool the element-wise kernels use, so a step never hands work between two sets of
/// threads); on the calling thread when `work` is small.
///
/// The ranges depend on `n` only, never on the thread count: `gemm` (0.19) blocks the inner
/// dimension by the product's shape (one `k` block of at most 512 when both `m, n <= 64`, else a
/// cache-sized split such as 2 x 500 for k = 1000, in `gemm-common`'s `gemm_basic_generic`) and
/// picks other micro-kernels for small products, so ranges of `n / threads` rows made the
/// rounding, hence trained weights, depend on the thread count (issue 14).
fn par_row_ranges(n: usize, work: usize, f: impl Fn(Range<usize>) -> Result<()> + Sync) -> Result<()> {
    let per = n.div_ceil(UNITS_MAX).max(UNIT_ROWS_MIN);
    par_units(n.div_ceil(per), work, |u| f(u * per..((u + 1) * per).min(n)))
}

impl LinearOp {
    fn run(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (x_data, w_data) = (slice(x.0, x.1)?, slice(w.0, w.1)?);
        let (n, k) = w.1.shape().dims2()?;
        let m = x_data.len() / k.max(1);
        let mut y = vec![0f32; m * n];
        let ptr = SharedMut(y.as_mut_ptr());
        par_row_ranges(m, m * n * k, |rows| {
            // SAFETY: the row ranges are disjoint and inside `y` (`m` rows of `n`).
            let dst = unsafe { part(ptr, m * n, rows.start * n, rows.len() * n) };
            if let Some(b) = b {
                dst.chunks_mut(n).for_each(|row| row.copy_from_slice(b));
            }
            let xs = View::rm(&x_data[rows.start * k..rows.end * k], rows.len(), k);
            matmul(dst, xs, View::rm(w_data, n, k).t(), b.is_some())
        })?;
        let mut dims = x.1.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    /// `[dx; dw; db]` packed flat, from `dy` `(.., n)`.
    fn grads(&self, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (n, k) = w.dims2()?;
        let m = x.elem_count() / k.max(1);
        let packed = x.apply_op3_no_bwd(w, &dy.contiguous()?, &LinearBwd)?;
        let dx = packed.narrow(0, 0, m * k)?.reshape(x.shape())?;
        let dw = packed.narrow(0, m * k, n * k)?.reshape((n, k))?;
        let db = packed.narrow(0, m * k + n * k, n)?;
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "attnlab-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _timer = Timer::start(OpKind::MatMul, Pass::Forward);
        self.run((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.grads(x, w, dy)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "attnlab-linear-bias"
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
        let _timer = Timer::start(OpKind::MatMul, Pass::Forward);
        self.run((s1, l1), (s2, l2), Some(slice(s3, l3)?))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.grads(x, w, dy)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Backward over `(x (m, k), w (n, k), dy (m, n))`: `dx = dy w`, `dw = dy^T x`,
/// `db = sum_rows dy`, packed flat as `[dx; dw; db]`.
struct LinearBwd;

impl CustomOp3 for LinearBwd {
    fn name(&self) -> &'static str {
        "attnlab-linear-bwd"
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
        let _timer = Timer::start(OpKind::MatMul, Pass::Backward);
        let (x, w, dy) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (n, k) = l2.shape().dims2()?;
        let m = x.len() / k.max(1);
        if dy.len() != m * n {
            bail!("linear backward: gradient of {} elements for a ({m}, {n}) output", dy.len())
        }
        let total = m * k + n * k + n;
        let mut out = vec![0f32; total];
        let ptr = SharedMut(out.as_mut_ptr());
        par_row_ranges(m, m * n * k, |rows| {
            // SAFETY: disjoint row ranges of the `dx` block (`m` rows of `k`) at the start of `out`.
            let dst = unsafe { part(ptr, total, rows.start * k, rows.len() * k) };
            matmul(dst, View::rm(&dy[rows.start * n..rows.end * n], rows.len(), n), View::rm(w, n, k), false)
        })?;
        par_row_ranges(n, m * n * k, |rows| {
            // SAFETY: disjoint row ranges of the `dw` block (`n` rows of `k`) and of `db`.
            let (dst, db) = unsafe {
                (
                    part(ptr, total, m * k + rows.start * k, rows.len() * k),
                    part(ptr, total, m * k + n * k + rows.start, rows.len()),
                )
            };
            // Columns `rows` of dy, transposed: (rows.len(), m) with row stride 1, column stride n.
            let dy_t = View { data: &dy[rows.start..], rows: rows.len(), cols: m, rs: 1, cs: n };
            matmul(dst, dy_t, View::rm(x, m, k), false)?;
            for r in 0..m {
                db.iter_mut().zip(&dy[r * n + rows.start..r * n + rows.end]).for_each(|(o, &g)| *o += g);
            }
            Ok(())
        })?;
        Ok((CpuStorage::F32(out), Shape::from(total)))
    }
}
