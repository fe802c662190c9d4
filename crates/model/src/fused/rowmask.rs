//! [`RowMask`]: which keys each query row may see, read once from an additive mask of zeros and
//! `-inf`, so the kernels skip masked keys instead of adding `-inf` to them.

use candle_core::{DType, Result, Tensor};

use super::to_vec;

/// Which keys each query row may see: a prefix `0..n_i` of the keys (causal and context masks
/// both are), or an arbitrary pattern.
#[derive(Debug)]
pub(super) enum RowMask {
    Prefix(Vec<usize>),
    Dense(Vec<bool>),
}

impl RowMask {
    /// From an additive `(tq, tk)` mask of zeros and `-inf`; `None` if it holds other values.
    pub(super) fn new(mask: Option<&Tensor>, tq: usize, tk: usize) -> Result<Option<Self>> {
        let Some(mask) = mask else { return Ok(Some(RowMask::Prefix(vec![tk; tq]))) };
        if mask.elem_count() != tq * tk || mask.dims().len() < 2 || mask.dims()[mask.rank() - 2..] != [tq, tk]
        {
            return Ok(None);
        }
        let m = to_vec(&mask.to_dtype(DType::F32)?)?;
        if m.iter().any(|&v| v != 0.0 && v != f32::NEG_INFINITY) {
            return Ok(None);
        }
        let keep: Vec<bool> = m.iter().map(|&v| v == 0.0).collect();
        let mut prefix = Vec::with_capacity(tq);
        for row in keep.chunks(tk) {
            let n = row.iter().take_while(|&&k| k).count();
            if row[n..].iter().any(|&k| k) {
                return Ok(Some(RowMask::Dense(keep)));
            }
            prefix.push(n);
        }
        Ok(Some(RowMask::Prefix(prefix)))
    }

    /// Number of leading keys to compute for row `i` and the dense pattern of the row, if any.
    pub(super) fn row(&self, i: usize, tk: usize) -> (usize, Option<&[bool]>) {
        match self {
            RowMask::Prefix(p) => (p[i], None),
            RowMask::Dense(k) => (tk, Some(&k[i * tk..(i + 1) * tk])),
        }
    }
}
