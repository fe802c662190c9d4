//! Fused qk-norm and RoPE, applied by the packed self-attention kernel ([`super::packed`]) to
//! each head's query and key rows as it gathers them, so the transform costs no pass over
//! memory of its own (instead of about twenty candle nodes on split heads).
//!
//! Per head row `x` (width d) at position `m`:
//! - qk-norm: `x^ = x r`, `r = (|x|^2 / n + eps)^(-1/2)` (`n = d`: RMS norm, `n = 1`: unit rows),
//!   times a per-dimension gain `g` (`rms_gain`);
//! - RoPE over the first `rot` dimensions in pairs `(i, i + rot/2)` (GPT-NeoX / Llama):
//!   `y_i = x_i cos(m w_i) - x_{i+rot/2} sin(m w_i)`, `y_{i+rot/2} = x_i sin(m w_i) + x_{i+rot/2} cos(m w_i)`.
//!
//! Backward: the inverse rotation `R^T`, then `dg += dx^ . x r`, then
//! `dx = r (dx^ - x^ (dx^ . x^) / n)` with `dx^ = g dy` (the tests compare it with candle's
//! gradient of the composed ops of [`crate::qk`]).

use std::sync::Arc;

use super::lanes;
use crate::metric::unit::UNIT_EPS;

/// The qk-norm of [`QkFn`]: `x / sqrt(|x|^2 / n + eps)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormFn {
    /// `d` for the RMS norm, 1 for unit rows.
    pub n: f32,
    /// eps under the square root.
    pub eps: f32,
}

/// RoPE tables for positions `start .. start + t`: `cos` and `sin` `(t, rot / 2)` row-major.
#[derive(Debug, Clone)]
pub struct RopeTables {
    /// Rotated dimensions per head (even, at most d).
    pub rot: usize,
    /// `cos(m w_i)`, `(t, rot / 2)`.
    pub cos: Arc<Vec<f32>>,
    /// `sin(m w_i)`, `(t, rot / 2)`.
    pub sin: Arc<Vec<f32>>,
}

/// What the op does to each head row of q and k.
#[derive(Debug, Clone)]
pub struct QkFn {
    /// qk-norm, if any.
    pub norm: Option<NormFn>,
    /// RoPE, if any.
    pub rope: Option<RopeTables>,
}

impl QkFn {
    /// Transforms one head row `x` `(d,)` at position `m` in place, given its inverse norm `inv`
    /// ([`QkFn::inv_norm`]): qk-norm (times `gain` `(d,)`, if any), then RoPE.
    #[inline(always)]
    pub(super) fn forward_row(&self, x: &mut [f32], m: usize, gain: Option<&[f32]>, inv: f32) {
        if self.norm.is_some() {
            match gain {
                Some(g) => x.iter_mut().zip(g).for_each(|(v, &w)| *v *= inv * w),
                None => x.iter_mut().for_each(|v| *v *= inv),
            }
        }
        self.rotate(x, m, 1.0);
    }

    /// The inverse norm `r` of row `x` that [`QkFn::forward_row`] scales by (1 without
    /// qk-norm), and which its backward takes.
    #[inline(always)]
    fn inv_norm(&self, x: &[f32]) -> f32 {
        self.norm.map_or(1.0, |nf| inv_norm(nf, x))
    }

    /// Backward of [`QkFn::forward_row`]: turns `gx` (the gradient of the transformed row) into
    /// the gradient of the raw row `x` in place, given its inverse norm `inv`, and adds
    /// the row's gain gradient to `gg` `(d,)`.
    #[inline(always)]
    pub(super) fn backward_row(
        &self,
        gx: &mut [f32],
        x: &[f32],
        inv: f32,
        m: usize,
        gain: Option<(&[f32], &mut [f32])>,
    ) {
        self.rotate(gx, m, -1.0); // gx = R^T dy = d(normalised row)
        let Some(nf) = self.norm else { return };
        if let Some((w, gg)) = gain {
            for (((g, acc), &xv), &wv) in gx.iter_mut().zip(gg.iter_mut()).zip(x).zip(w) {
                *acc += *g * xv * inv;
                *g *= wv;
            }
        }
        norm_bwd_row(gx, x, inv, nf.n);
    }

    /// Whether the transform does nothing.
    pub(super) fn is_identity(&self) -> bool {
        self.norm.is_none() && self.rope.is_none()
    }

    /// Rotates `x` (one head row) at table row `m` by `+angle` (`sign = 1`) or `-angle` (-1).
    #[inline(always)]
    fn rotate(&self, x: &mut [f32], m: usize, sign: f32) {
        let Some(r) = &self.rope else { return };
        let half = r.rot / 2;
        let (cos, sin) = (&r.cos[m * half..(m + 1) * half], &r.sin[m * half..(m + 1) * half]);
        let (x1, x2) = x[..r.rot].split_at_mut(half);
        for (((a, b), &c), &s) in x1.iter_mut().zip(x2.iter_mut()).zip(cos).zip(sin) {
            let (xa, xb, s) = (*a, *b, sign * s);
            *a = xa * c - xb * s;
            *b = xa * s + xb * c;
        }
    }
}

/// [`QkFn::forward_row`] on every row of `qk` `(2t, d)` (queries then keys): row `r` at position
/// `r % t` with part `r / t` of `gain` `(2d)`; the rows' inverse norms go to `invs` `(2t)` (the
/// backward takes them); compiled per CPU.
#[multiversion::multiversion(targets = "simd")]
pub(super) fn forward_rows(
    f: &QkFn,
    qk: &mut [f32],
    gain: Option<&[f32]>,
    invs: &mut [f32],
    t: usize,
    d: usize,
) {
    // Every row's norm first: independent square roots and divisions overlap, where one row's
    // chain of them followed by its scaling would wait on each in turn.
    for (inv, x) in invs.iter_mut().zip(qk.chunks(d)) {
        *inv = f.inv_norm(x);
    }
    for (r, (x, &inv)) in qk.chunks_mut(d).zip(invs.iter()).enumerate() {
        let p = r / t;
        f.forward_row(x, r % t, gain.map(|g| &g[p * d..(p + 1) * d]), inv);
    }
}

/// [`QkFn::backward_row`] on every row of `g_qk` `(2t, d)` with the raw rows `raw` and their
/// inverse norms `invs` `(2t)` from [`forward_rows`], adding the gain gradients to `gg` `(2d)`
/// where there is a `gain` `(2d)`; compiled per CPU.
#[multiversion::multiversion(targets = "simd")]
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_rows(
    f: &QkFn,
    g_qk: &mut [f32],
    raw: &[f32],
    invs: &[f32],
    gain: Option<&[f32]>,
    gg: &mut [f32],
    t: usize,
    d: usize,
) {
    for (r, (gx, x)) in g_qk.chunks_mut(d).zip(raw.chunks(d)).enumerate() {
        let p = r / t;
        let gain = gain.map(|w| (&w[p * d..(p + 1) * d], &mut gg[p * d..(p + 1) * d]));
        f.backward_row(gx, x, invs[r], r % t, gain);
    }
}

/// `1 / sqrt(|x|^2 / n + eps)`.
#[inline(always)]
fn inv_norm(nf: NormFn, x: &[f32]) -> f32 {
    1.0 / (lanes::dot(x, x) / nf.n + nf.eps).sqrt()
}

/// The norm's backward on one row, in place: `g <- r (g - x^ (g . x^) / n)` with `x^ = x r`,
/// given the raw row `x` and its inverse norm `r`.
#[inline(always)]
fn norm_bwd_row(g: &mut [f32], x: &[f32], inv: f32, n: f32) {
    let dot = lanes::dot(g, x) * inv / n;
    g.iter_mut().zip(x).for_each(|(gv, &xv)| *gv = inv * (*gv - xv * inv * dot));
}

/// `cosine`'s unit rows ([`crate::metric::unit`]) in place on `x` `(n, d)`: the norm of
/// [`QkFn`] with `n = 1` and eps [`UNIT_EPS`]; returns each row's `1 / sqrt(|x|^2 + eps)`;
/// compiled per CPU.
#[multiversion::multiversion(targets = "simd")]
pub(super) fn unit_rows(x: &mut [f32], d: usize) -> Vec<f32> {
    let nf = NormFn { n: 1.0, eps: UNIT_EPS };
    x.chunks_mut(d)
        .map(|row| {
            let inv = inv_norm(nf, row);
            row.iter_mut().for_each(|v| *v *= inv);
            inv
        })
        .collect()
}

/// Backward of [`unit_rows`] in place on `g` `(n, d)`: `g <- (g - u (u . g)) r` per row, given
/// the unit rows `u` and the inverse norms `r` it returned; compiled per CPU.
#[multiversion::multiversion(targets = "simd")]
pub(super) fn unit_rows_bwd(u: &[f32], inv: &[f32], g: &mut [f32], d: usize) {
    for ((gr, ur), &r) in g.chunks_mut(d).zip(u.chunks(d)).zip(inv) {
        let dot = lanes::dot(gr, ur);
        gr.iter_mut().zip(ur).for_each(|(gv, &uv)| *gv = (*gv - uv * dot) * r);
    }
}
