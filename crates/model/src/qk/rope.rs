//! Rotary position embeddings (Su et al. 2021, "RoFormer"), GPT-NeoX / Llama layout: the first
//! `rot` dimensions of a head, in pairs `(i, i + rot/2)`, turn by `m w_i` at position `m` with
//! `w_i = base^(-i / (rot/2))`; dimensions from `rot` on are left alone (partial RoPE).
//! Rotations keep norms, so `|R_m q - R_n k|` and `R_m q . R_n k` depend on content and
//! `m - n` only, for every metric.

use candle_core::{DType, Device, Result, Tensor};

/// RoPE over `rot` dimensions with base `base`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    /// Rotated dimensions per head (even).
    pub rot: usize,
    /// The base of the frequencies.
    pub base: f64,
}

impl Rope {
    /// `cos(m w_i)` and `sin(m w_i)` for positions `m` in `start .. start + t`, `(t, rot/2)`
    /// row-major (angles in `f64`, rounded once).
    pub fn tables(&self, start: usize, t: usize) -> (Vec<f64>, Vec<f64>) {
        let half = self.rot / 2;
        let w: Vec<f64> = (0..half).map(|i| self.base.powf(-(i as f64) / half as f64)).collect();
        let angles = (start..start + t).flat_map(|m| w.iter().map(move |w| m as f64 * w));
        angles.map(|a| (a.cos(), a.sin())).unzip()
    }

    /// The tables as tensors `(t, rot/2)` of `dtype`.
    fn table_tensors(&self, start: usize, t: usize, dtype: DType, dev: &Device) -> Result<(Tensor, Tensor)> {
        let (cos, sin) = self.tables(start, t);
        let shape = (t, self.rot / 2);
        let mk = |v: Vec<f64>| Tensor::from_vec(v, shape, dev)?.to_dtype(dtype);
        Ok((mk(cos)?, mk(sin)?))
    }

    /// Rotates `x` `(b, h, t, d)` at positions `start .. start + t`, composed from candle ops
    /// (differentiable; candle's fast rope ops have no backward).
    pub fn rotate(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let (_, _, t, d) = x.dims4()?;
        let half = self.rot / 2;
        let (cos, sin) = self.table_tensors(start, t, x.dtype(), x.device())?;
        let (x1, x2) = (x.narrow(3, 0, half)?, x.narrow(3, half, half)?);
        let y1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
        let y2 = (x1.broadcast_mul(&sin)? + x2.broadcast_mul(&cos)?)?;
        if self.rot == d {
            Tensor::cat(&[y1, y2], 3)
        } else {
            Tensor::cat(&[y1, y2, x.narrow(3, self.rot, d - self.rot)?], 3)
        }
    }

    /// The tables in `f32` for the fused kernel.
    pub fn kernel_tables(&self, start: usize, t: usize) -> crate::fused::RopeTables {
        let (cos, sin) = self.tables(start, t);
        let f = |v: Vec<f64>| std::sync::Arc::new(v.into_iter().map(|x| x as f32).collect::<Vec<f32>>());
        crate::fused::RopeTables { rot: self.rot, cos: f(cos), sin: f(sin) }
    }
}
