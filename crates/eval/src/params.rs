//! Learned parameters per layer and head: norms and leading singular values of the attention
//! projections, and the learned metric parameters (cosine temperature, IDW power).
//!
//! Weights are read straight from `model.safetensors` by name, `blocks.{i}.attn.{q,k,v,o}_proj.weight`
//! with shape `(out, in)`, so any model built from the shared attention blocks is covered.
//! Head `h` of width `d = c / n_head` owns rows `h d .. (h+1) d` of `W_q`, `W_k`, `W_v` and columns
//! `h d .. (h+1) d` of `W_o`. Its score bilinear form is `q.k = x^T (W_q^h)^T W_k^h x'`, the
//! `(c, c)` matrix called `W_q W_k^T` in the row-vector convention `q = x W_q`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::linalg::{frobenius, matmul, singular_values, transpose};

/// How many leading singular values the report keeps.
pub const TOP_SV: usize = 3;

/// Norm and leading singular values of one matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatStats {
    /// Frobenius norm.
    pub fro: f64,
    /// Largest singular values, largest first (at most [`TOP_SV`]).
    pub sv: Vec<f64>,
}

impl MatStats {
    /// Statistics of the row-major `m x n` matrix `a`.
    pub fn of(a: &[f64], m: usize, n: usize) -> Self {
        let mut sv = singular_values(a, m, n);
        sv.truncate(TOP_SV);
        Self { fro: frobenius(a), sv }
    }
}

/// One head's parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadParams {
    /// Block index.
    pub layer: usize,
    /// Head index.
    pub head: usize,
    /// `W_q` rows of the head, `(d, c)`.
    pub q: MatStats,
    /// `W_k` rows of the head, `(d, c)`.
    pub k: MatStats,
    /// `W_v` rows of the head, `(d, c)`.
    pub v: MatStats,
    /// `W_o` columns of the head, `(c, d)`.
    pub o: MatStats,
    /// The bilinear form `(W_q^h)^T W_k^h`, `(c, c)`.
    pub qk: MatStats,
    /// Learned cosine temperature of the head, if the metric has one.
    pub temperature: Option<f64>,
    /// Learned IDW power of the head, if learned.
    pub power: Option<f64>,
}

/// Opens the checkpoint `ckpt_dir` ([`attnlab_model::Checkpoint::open`]) and computes
/// [`HeadParams`] for every layer and head.
pub fn head_params(ckpt_dir: &Path, n_head: usize) -> Result<Vec<HeadParams>> {
    let ckpt = attnlab_model::Checkpoint::open(ckpt_dir, &Device::Cpu)?;
    let path = ckpt.dir.join(attnlab_model::checkpoint::MODEL_FILE);
    head_params_of(&ckpt.params.tensors(), n_head).with_context(|| format!("analysing {}", path.display()))
}

/// [`head_params`] on tensors already in memory.
pub fn head_params_of(tensors: &HashMap<String, Tensor>, n_head: usize) -> Result<Vec<HeadParams>> {
    if n_head == 0 {
        bail!("n_head must be at least 1")
    }
    let mut out = Vec::new();
    for layer in 0.. {
        let name = |w: &str| format!("blocks.{layer}.attn.{w}_proj.weight");
        let Some(wq) = tensors.get(&name("q")) else { break };
        let get = |w: &str| -> Result<Matrix> {
            let t = tensors.get(&name(w)).with_context(|| format!("tensor `{}` is missing", name(w)))?;
            Matrix::of(t).with_context(|| name(w))
        };
        // A checkpoint with `qk_tied` has no `k_proj`: its keys use the query map.
        let k_name = if tensors.contains_key(&name("k")) { "k" } else { "q" };
        let (q, k, v, o) = (Matrix::of(wq)?, get(k_name)?, get("v")?, get("o")?);
        let c = q.cols;
        if q.rows % n_head != 0 || q.rows != k.rows || q.rows != v.rows || o.cols != q.rows || k.cols != c {
            bail!(
                "layer {layer}: projections W_q {}x{c}, W_k {}x{}, W_v {}x{}, W_o {}x{} do not split into {n_head} heads",
                q.rows,
                k.rows,
                k.cols,
                v.rows,
                v.cols,
                o.rows,
                o.cols
            )
        }
        let d = q.rows / n_head;
        let per_head = |suffix: &str| -> Result<Option<Vec<f64>>> {
            let key = format!("blocks.{layer}.attn.metric.{suffix}");
            tensors
                .get(&key)
                .map(|t| Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?))
                .transpose()
        };
        let (temps, powers) = (per_head("temperature")?, per_head("power")?);
        for h in 0..n_head {
            let (qh, kh) = (q.rows_of(h * d, d), k.rows_of(h * d, d));
            let form = matmul(&transpose(&qh, d, c), &kh, c, d, k.cols);
            out.push(HeadParams {
                layer,
                head: h,
                q: MatStats::of(&qh, d, c),
                k: MatStats::of(&kh, d, k.cols),
                v: MatStats::of(&v.rows_of(h * d, d), d, v.cols),
                o: MatStats::of(&o.cols_of(h * d, d), o.rows, d),
                qk: MatStats::of(&form, c, k.cols),
                temperature: temps.as_ref().and_then(|t| t.get(h).copied()),
                power: powers.as_ref().and_then(|p| p.get(h).copied()),
            });
        }
    }
    Ok(out)
}

/// A row-major `f64` copy of a 2-D tensor.
struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    fn of(t: &Tensor) -> Result<Self> {
        let (rows, cols) = t.dims2()?;
        let data = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        Ok(Self { rows, cols, data })
    }

    /// Rows `start .. start + n`, `(n, cols)`.
    fn rows_of(&self, start: usize, n: usize) -> Vec<f64> {
        self.data[start * self.cols..(start + n) * self.cols].to_vec()
    }

    /// Columns `start .. start + n`, `(rows, n)`.
    fn cols_of(&self, start: usize, n: usize) -> Vec<f64> {
        (0..self.rows)
            .flat_map(|i| self.data[i * self.cols + start..i * self.cols + start + n].to_vec())
            .collect()
    }
}
