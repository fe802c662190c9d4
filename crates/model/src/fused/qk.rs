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
    /// Transforms one head row `x` `(d,)` at position `m` in place: qk-norm (times `gain`
    /// `(d,)`, if any), then RoPE.
    pub(super) fn forward_row(&self, x: &mut [f32], m: usize, gain: Option<&[f32]>) {
        if let Some(nf) = self.norm {
            let inv = inv_norm(nf, x);
            match gain {
                Some(g) => x.iter_mut().zip(g).for_each(|(v, &w)| *v *= inv * w),
                None => x.iter_mut().for_each(|v| *v *= inv),
            }
        }
        self.rotate(x, m, 1.0);
    }

    /// Backward of [`QkFn::forward_row`]: turns `gx` (the gradient of the transformed row) into
    /// the gradient of the raw row `x` in place, and adds the row's gain gradient to `gg` `(d,)`.
    pub(super) fn backward_row(
        &self,
        gx: &mut [f32],
        x: &[f32],
        m: usize,
        gain: Option<(&[f32], &mut [f32])>,
    ) {
        self.rotate(gx, m, -1.0); // gx = R^T dy = d(normalised row)
        let Some(nf) = self.norm else { return };
        let inv = inv_norm(nf, x);
        if let Some((w, gg)) = gain {
            for i in 0..gx.len() {
                gg[i] += gx[i] * x[i] * inv;
                gx[i] *= w[i];
            }
        }
        // gx = r (gx^ - x^ (gx^ . x^) / n) with x^ = x r.
        let dot = lanes::dot(gx, x) * inv / nf.n;
        gx.iter_mut().zip(x).for_each(|(gv, &xv)| *gv = inv * (*gv - xv * inv * dot));
    }

    /// Whether the transform does nothing.
    pub(super) fn is_identity(&self) -> bool {
        self.norm.is_none() && self.rope.is_none()
    }

    /// Rotates `x` (one head row) at table row `m` by `+angle` (`sign = 1`) or `-angle` (-1).
    fn rotate(&self, x: &mut [f32], m: usize, sign: f32) {
        let Some(r) = &self.rope else { return };
        let half = r.rot / 2;
        let (cos, sin) = (&r.cos[m * half..(m + 1) * half], &r.sin[m * half..(m + 1) * half]);
        let (x1, x2) = x[..r.rot].split_at_mut(half);
        for i in 0..half {
            let (a, b, c, s) = (x1[i], x2[i], cos[i], sign * sin[i]);
            x1[i] = a * c - b * s;
            x2[i] = a * s + b * c;
        }
    }
}

/// `1 / sqrt(|x|^2 / n + eps)`.
fn inv_norm(nf: NormFn, x: &[f32]) -> f32 {
    1.0 / (lanes::dot(x, x) / nf.n + nf.eps).sqrt()
}
