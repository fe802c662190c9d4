//! [`Num`]: the numbers the metric table's formulas run on, `f32` in the fused kernels (with
//! the kernels' vectorisable `exp`) and tensors in the composed path (differentiable by candle).

use candle_core::{Result, Tensor};

use crate::fused::fast_exp;

/// The numbers a score is computed on: `f32` in the kernels, tensors in the composed path.
pub trait Num: Sized {
    /// Constants (`f32` in the kernels, `f64` for tensors of any dtype).
    type C: Copy + std::ops::Neg<Output = Self::C>;
    /// A per-head parameter as this number type sees it (`f32`, or a `(1, h, 1, 1)` tensor).
    type Head;
    /// `c` as a constant.
    fn c(c: f32) -> Self::C;
    /// `self * c`.
    fn mul(self, c: Self::C) -> Self;
    /// `self + c`.
    fn add(self, c: Self::C) -> Self;
    /// `self + o` (broadcasting).
    fn add_n(self, o: Self) -> Self;
    /// `self - o` (broadcasting).
    fn sub_n(self, o: Self) -> Self;
    /// `max(0, self)` (gradient 1 at 0, as the kernels' `r >= 0`).
    fn max0(self) -> Self;
    /// `-self`.
    fn neg(self) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
    /// `ln(self)`.
    fn ln(self) -> Self;
    /// `1 / self`.
    fn recip(self) -> Self;
    /// `self * head` (per head).
    fn mul_head(self, head: &Self::Head) -> Self;
}

impl Num for f32 {
    type C = f32;
    type Head = f32;
    #[inline(always)]
    fn c(c: f32) -> f32 {
        c
    }
    #[inline(always)]
    fn mul(self, c: f32) -> f32 {
        self * c
    }
    #[inline(always)]
    fn add(self, c: f32) -> f32 {
        self + c
    }
    #[inline(always)]
    fn add_n(self, o: f32) -> f32 {
        self + o
    }
    #[inline(always)]
    fn sub_n(self, o: f32) -> f32 {
        self - o
    }
    #[inline(always)]
    fn max0(self) -> f32 {
        self.max(0.0)
    }
    #[inline(always)]
    fn neg(self) -> f32 {
        -self
    }
    #[inline(always)]
    fn exp(self) -> f32 {
        fast_exp(self)
    }
    #[inline(always)]
    fn ln(self) -> f32 {
        f32::ln(self)
    }
    #[inline(always)]
    fn recip(self) -> f32 {
        1.0 / self
    }
    #[inline(always)]
    fn mul_head(self, head: &f32) -> f32 {
        self * head
    }
}

/// Tensors `(b, h, tq, tk)`; an error anywhere stays the result.
impl Num for Result<Tensor> {
    type C = f64;
    type Head = Option<Tensor>;
    fn c(c: f32) -> f64 {
        c as f64
    }
    fn mul(self, c: f64) -> Self {
        self? * c
    }
    fn add(self, c: f64) -> Self {
        self? + c
    }
    fn add_n(self, o: Self) -> Self {
        self?.broadcast_add(&o?)
    }
    fn sub_n(self, o: Self) -> Self {
        self?.broadcast_sub(&o?)
    }
    fn max0(self) -> Self {
        self?.relu()
    }
    fn neg(self) -> Self {
        self?.neg()
    }
    fn exp(self) -> Self {
        self?.exp()
    }
    fn ln(self) -> Self {
        self?.log()
    }
    fn recip(self) -> Self {
        self?.recip()
    }
    fn mul_head(self, head: &Option<Tensor>) -> Self {
        match head {
            Some(h) => self?.broadcast_mul(h),
            None => candle_core::bail!("this metric needs its per-head parameter"),
        }
    }
}
