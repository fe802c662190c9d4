//! Distances and their powers: `d2 = max(0, |q|^2 + |k|^2 - 2 q.k)` from one matrix product
//! and two norms (never a `(tq, tk, d)` tensor of differences), `x = d2 + delta` (delta keeps
//! gradients finite at q == k), and `u = x^(p/2) = |q - k|^p`.
//!
//! The formulas are generic over [`Num`]: the fused kernels run them on `f32`, the composed
//! path on tensors. The power has a scalar form ([`PowFn`], chosen once per row so the kernels'
//! inner loops stay branch-free) and a tensor form ([`Power`], which may be learned per head).

use candle_core::{D, Result, Tensor};

use super::num::Num;

/// `|q|^2 + |k|^2 - 2 q.k` from the squared norms and the dot product, before clamping at 0
/// (rounding can make it slightly negative; where it is, the clamped distance has no gradient).
#[inline(always)]
pub fn sq_dist_unclamped<N: Num>(qn: N, kn: N, qk: N) -> N {
    qn.add_n(kn).sub_n(qk.mul(N::c(2.0)))
}

/// Squared distances `max(0, |q|^2 + |k|^2 - 2 q.k)`: `(b, h, tq, d), (b, h, tk, d) -> (b, h, tq, tk)`.
pub fn sq_dists(q: &Tensor, k: &Tensor) -> Result<Tensor> {
    let qn = q.sqr()?.sum_keepdim(D::Minus1); // (b, h, tq, 1)
    let kn = k.sqr()?.sum_keepdim(D::Minus1)?.t(); // (b, h, 1, tk)
    let qk = q.matmul(&k.t()?); // (b, h, tq, tk)
    sq_dist_unclamped(qn, kn, qk).max0()
}

/// How `u = x^(p/2)` is computed in the kernels; chosen once per row so that the inner loops
/// stay free of branches and calls the compiler would otherwise evaluate for every element.
pub trait PowFn: Copy {
    /// `x^(p/2)`.
    fn u(self, x: f32) -> f32;
    /// `du/dx` at `x` with `u = x^(p/2)`.
    fn dudx(self, x: f32, u: f32) -> f32;
}

/// p = 2: `u = x`.
#[derive(Clone, Copy)]
pub struct P2;
impl PowFn for P2 {
    #[inline(always)]
    fn u(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn dudx(self, _x: f32, _u: f32) -> f32 {
        1.0
    }
}

/// p = 1: `u = sqrt(x)`.
#[derive(Clone, Copy)]
pub struct P1;
impl PowFn for P1 {
    #[inline(always)]
    fn u(self, x: f32) -> f32 {
        x.sqrt()
    }
    #[inline(always)]
    fn dudx(self, x: f32, u: f32) -> f32 {
        0.5 * u / x
    }
}

/// Any p: `u = x^(p/2)`, holding `p / 2`.
#[derive(Clone, Copy)]
pub struct PAny(pub f32);
impl PowFn for PAny {
    #[inline(always)]
    fn u(self, x: f32) -> f32 {
        x.powf(self.0)
    }
    #[inline(always)]
    fn dudx(self, x: f32, u: f32) -> f32 {
        self.0 * u / x
    }
}

/// Evaluates `$body` with `$pw` bound to the [`PowFn`] for `half_p` (= p / 2).
macro_rules! with_pow {
    ($half_p:expr, $pw:ident => $body:expr) => {
        match $half_p {
            h if h == 1.0 => {
                let $pw = $crate::metric::distance::P2;
                $body
            }
            h if h == 0.5 => {
                let $pw = $crate::metric::distance::P1;
                $body
            }
            h => {
                let $pw = $crate::metric::distance::PAny(h);
                $body
            }
        }
    };
}
pub(crate) use with_pow;

/// The power p of a layer: fixed from the config, or a learned `(h,)` variable.
#[derive(Debug, Clone)]
pub enum Power {
    /// One p for every head.
    Fixed(f64),
    /// p per head, `(h,)`.
    Learned(Tensor),
}

impl Power {
    /// `x^(p/2)` for `x` `(b, h, tq, tk)`.
    pub fn apply(&self, x: Tensor) -> Result<Tensor> {
        match self {
            Power::Fixed(p) if *p == 2.0 => Ok(x),
            Power::Fixed(p) if *p == 1.0 => x.sqrt(),
            Power::Fixed(p) => x.powf(p / 2.0),
            Power::Learned(p) => {
                let half_p = (p.to_dtype(x.dtype())?.reshape((1, x.dim(1)?, 1, 1))? * 0.5)?;
                x.log()?.broadcast_mul(&half_p)?.exp()
            }
        }
    }
}
