//! Fused linear map `y = x w^T (+ b)` as one graph node.
//!
//! candle's `Linear` is five nodes (reshape, transpose, matmul, reshape, broadcast add), and
//! candle's backward materialises every node's gradient as `zeros + grad`; one node with its own
//! backward (`dx = dy w`, `dw = dy^T x`, `db = sum_rows dy`) skips four of those full-size
//! buffers per layer and adds the bias in the same pass as the product.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, D, Layout, Result, Shape, Tensor, bail};

use super::mm::{View, matmul_par};
use super::{Kernel, cpu_f32, enabled, slice};

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

/// The forward op over `(x, w)` or `(x, w, b)`.
#[derive(Clone, Copy)]
struct LinearOp;

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
        let mut y = match b {
            Some(b) => b.iter().copied().cycle().take(m * n).collect(),
            None => vec![0f32; m * n],
        };
        matmul_par(&mut y, View::rm(x_data, m, k), View::rm(w_data, n, k).t(), b.is_some())?;
        let mut dims = x.1.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }
}

/// `dx = dy w` (shaped like `x`) and `dw = dy^T x`, from `dy` `(.., n)`; also `dy` as `(m, n)`.
/// Inputs are detached first: gradients that tracked `x` or `w` would keep the whole backward
/// computation alive until the gradients are dropped.
fn grads(x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let (x, w) = (x.detach(), w.detach());
    let (n, k) = w.dims2()?;
    let m = x.elem_count() / k.max(1);
    let dy = dy.contiguous()?.reshape((m, n))?;
    let dx = dy.matmul(&w)?.reshape(x.shape())?;
    let dw = dy.t()?.matmul(&x.reshape((m, k))?)?;
    Ok((dx, dw, dy))
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
        self.run((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = grads(x, w, dy)?;
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
        let (dx, dw, dy) = grads(x, w, dy)?;
        Ok((Some(dx), Some(dw), Some(dy.sum(D::Minus2)?)))
    }
}
