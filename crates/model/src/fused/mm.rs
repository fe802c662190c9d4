//! Bounds-checked single-threaded matrix products on slices through the `gemm` crate (the
//! kernels candle's CPU matmul uses), for the per-head tiles of fused attention and the row
//! blocks of [`super::linear`].

use candle_core::{Result, bail};

/// A matrix view: `data[i * rs + j * cs]` is element `(i, j)` of a `rows x cols` matrix.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl<'a> View<'a> {
    /// Row-major `rows x cols`.
    pub(super) fn rm(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose (no copy).
    pub(super) fn t(self) -> Self {
        Self { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a b`, or `dst += a b` with `accumulate` (`dst` row-major `a.rows x b.cols`, row
/// stride `b.cols`), on the calling thread.
pub(super) fn matmul(dst: &mut [f32], a: View, b: View, accumulate: bool) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || dst.len() < m * n || !a.fits() || !b.fits() {
        bail!("fused attention: matrix product shapes do not fit ({m}x{k} by {}x{n})", b.rows)
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return Ok(());
    }
    // SAFETY: the checks above keep every index `gemm` reads (`i * rs + j * cs` within the views'
    // shapes) inside the slices, and `dst` holds `m * n` initialised elements at row stride `n`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}
