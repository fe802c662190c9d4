//! The metric table: what each metric computes, written once.
//!
//! Each metric is a zero-sized type whose [`Metric`] impl is its row of the table:
//! what the score is a function of ([`Input`]), the score itself ([`Metric::score`], generic
//! over [`Num`] so the same formula runs on `f32` in the fused kernels and on tensors in the
//! composed path), its derivative ([`Metric::dscore`], for the kernels' backward), how the
//! weights are normalised ([`Normalise`]) and its per-head parameter ([`HeadParam`]).
//! [`with_metric!`] is the one dispatch from a [`MetricKind`] to its row; kernels dispatch once
//! at entry and run loops monomorphised for the metric.
//!
//! With `d2 = max(0, |q|^2 + |k|^2 - 2 q.k)`, `x = d2 + delta`, `u = x^(p/2)`:
//!
//! | metric | input z | score s(z) | ds/dz | weights |
//! |---|---|---|---|---|
//! | `dot` | `q.k` | `scale_h z` | `scale_h` | softmax |
//! | `cosine` | `q^.k^` (unit rows) | `tau_h z` | `tau_h` | softmax |
//! | `neg_sq_euclid` | `d2` | `-scale_h z` | `-scale_h` | softmax |
//! | `neg_euclid` | `u` | `-scale_h z` | `-scale_h` | softmax |
//! | `idw` | `u` | `-ln(eps + z)` | `-1 / (eps + z)` | `(eps + z)^-1` normalised |
//! | `inv_dist` | `u` | `1 / (eps + z)` | `-1 / (eps + z)^2` | softmax |
//! | `rbf` | `u` | `exp(-z / 2)` | `-s / 2` | softmax (s <= 1: no max) |
//!
//! `scale_h` is the fixed `attn_scale` (`1/sqrt(d)` by default) or, with `learn_scale`, a learned
//! per-head scale ([`HeadParam::Scale`]); the score is linear in it.

use super::MetricKind;
pub use super::cuda_row::CudaRow;
use super::num::Num;

/// What a metric's score is a function of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `z = q.k`.
    Dot,
    /// `z = q^.k^` of rows scaled to unit norm.
    UnitDot,
    /// `z = d2`, the clamped squared distance (no delta, no power).
    SqDist,
    /// `z = u = (d2 + delta)^(p/2)`.
    DistPow,
}

impl Input {
    /// Whether `z` depends on the squared norms of q and k (a distance).
    pub fn is_distance(self) -> bool {
        match self {
            Input::Dot | Input::UnitDot => false,
            Input::SqDist | Input::DistPow => true,
        }
    }
}

/// How a row of scores becomes weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalise {
    /// `softmax(s)`, subtracting the row maximum first.
    Softmax,
    /// `softmax(s)` without the maximum: scores are at most 1, so `exp` cannot overflow.
    SoftmaxBounded,
    /// `softmax(s)` computed as `e_j / sum e` from the closed form `e = exp(s)` ([`Metric::weight`]).
    Direct,
}

/// The per-head parameter a metric takes, `(h,)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadParam {
    /// None.
    None,
    /// The temperature tau (fixed or learned).
    Temperature,
    /// The power p, when learned (`learn_power`); otherwise the fixed config power.
    Power,
    /// The score scale, when learned (`learn_scale`); otherwise the fixed [`Consts::scale`].
    /// The score is linear in it: `s(z; scale) = scale * s(z; 1)`.
    Scale,
}

/// The fixed constants of a metric layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Consts<C> {
    /// Scale of `dot`, `neg_sq_euclid`, `neg_euclid` (`1/sqrt(d)` by default; per head when
    /// learned).
    pub scale: C,
    /// eps of `idw`, `inv_dist`.
    pub eps: C,
}

/// One row of the metric table.
pub trait Metric {
    /// The metric this row describes.
    const KIND: MetricKind;
    /// What the score is a function of.
    const INPUT: Input;
    /// How scores become weights.
    const NORMALISE: Normalise;
    /// The per-head parameter.
    const HEAD: HeadParam;
    /// p when the config gives none (metrics whose input is not [`Input::DistPow`] ignore it).
    const DEFAULT_POWER: f64;
    /// Whether the fused backward reuses the forward's scores (when recomputing costs more).
    const KEEP_SCORES: bool;

    /// The score `s(z)`; `head` is the temperature for [`HeadParam::Temperature`].
    fn score<N: Num>(c: Consts<N::C>, head: &N::Head, z: N) -> N;

    /// `ds/dz` at `z`; `s()` gives the score (read back when [`Metric::KEEP_SCORES`], else
    /// recomputed), for metrics whose derivative is cheapest through it.
    fn dscore(c: Consts<f32>, head: f32, z: f32, s: impl Fn() -> f32) -> f32;

    /// `ds/d(head)` at `z` for [`HeadParam::Temperature`] (tau) and [`HeadParam::Scale`] (the
    /// scale); 0 for the others (a learned power enters through `z`).
    fn dscore_dhead(z: f32) -> f32;

    /// The same row in CUDA C for the GPU kernels (feature `cuda`, [`crate::gpu`]): each
    /// expression is written beside the Rust formula it mirrors.
    const CUDA: CudaRow;

    /// `exp(s(z))` in closed form, for [`Normalise::Direct`].
    #[inline(always)]
    fn weight(c: Consts<f32>, head: f32, z: f32) -> f32 {
        Self::score(c, &head, z).exp()
    }
}

/// `dot`: `scale * q.k`.
pub struct Dot;
impl Metric for Dot {
    const KIND: MetricKind = MetricKind::Dot;
    const INPUT: Input = Input::Dot;
    const NORMALISE: Normalise = Normalise::Softmax;
    const HEAD: HeadParam = HeadParam::Scale;
    const DEFAULT_POWER: f64 = 2.0;
    const KEEP_SCORES: bool = false;
    const CUDA: CudaRow = CudaRow::softmax("scale * z", "scale", "z");
    #[inline(always)]
    fn score<N: Num>(c: Consts<N::C>, _: &N::Head, z: N) -> N {
        z.mul(c.scale)
    }
    #[inline(always)]
    fn dscore(c: Consts<f32>, _: f32, _: f32, _: impl Fn() -> f32) -> f32 {
        c.scale
    }
    #[inline(always)]
    fn dscore_dhead(z: f32) -> f32 {
        z
    }
}

/// `cosine`: `tau_h * q^.k^`.
pub struct Cosine;
impl Metric for Cosine {
    const KIND: MetricKind = MetricKind::Cosine;
    const INPUT: Input = Input::UnitDot;
    const NORMALISE: Normalise = Normalise::Softmax;
    const HEAD: HeadParam = HeadParam::Temperature;
    const DEFAULT_POWER: f64 = 2.0;
    const KEEP_SCORES: bool = false;
    const CUDA: CudaRow = CudaRow::softmax("head * z", "head", "z");
    #[inline(always)]
    fn score<N: Num>(_: Consts<N::C>, tau: &N::Head, z: N) -> N {
        z.mul_head(tau)
    }
    #[inline(always)]
    fn dscore(_: Consts<f32>, tau: f32, _: f32, _: impl Fn() -> f32) -> f32 {
        tau
    }
    #[inline(always)]
    fn dscore_dhead(z: f32) -> f32 {
        z
    }
}

/// `neg_sq_euclid`: `-scale * d2`.
pub struct NegSqEuclid;
impl Metric for NegSqEuclid {
    const KIND: MetricKind = MetricKind::NegSqEuclid;
    const INPUT: Input = Input::SqDist;
    const NORMALISE: Normalise = Normalise::Softmax;
    const HEAD: HeadParam = HeadParam::Scale;
    const DEFAULT_POWER: f64 = 2.0;
    const KEEP_SCORES: bool = false;
    const CUDA: CudaRow = CudaRow::softmax("-scale * z", "-scale", "-z");
    #[inline(always)]
    fn score<N: Num>(c: Consts<N::C>, _: &N::Head, z: N) -> N {
        z.mul(-c.scale)
    }
    #[inline(always)]
    fn dscore(c: Consts<f32>, _: f32, _: f32, _: impl Fn() -> f32) -> f32 {
        -c.scale
    }
    #[inline(always)]
    fn dscore_dhead(z: f32) -> f32 {
        -z
    }
}

/// `neg_euclid`: `-scale * u`, p = 1 by default (McCarter's neg-dist).
pub struct NegEuclid;
impl Metric for NegEuclid {
    const KIND: MetricKind = MetricKind::NegEuclid;
    const INPUT: Input = Input::DistPow;
    const NORMALISE: Normalise = Normalise::Softmax;
    const HEAD: HeadParam = HeadParam::Scale;
    const DEFAULT_POWER: f64 = 1.0;
    const KEEP_SCORES: bool = false;
    const CUDA: CudaRow = CudaRow::softmax("-scale * z", "-scale", "-z");
    #[inline(always)]
    fn score<N: Num>(c: Consts<N::C>, _: &N::Head, z: N) -> N {
        z.mul(-c.scale)
    }
    #[inline(always)]
    fn dscore(c: Consts<f32>, _: f32, _: f32, _: impl Fn() -> f32) -> f32 {
        -c.scale
    }
    #[inline(always)]
    fn dscore_dhead(z: f32) -> f32 {
        -z
    }
}

/// `idw`: `-ln(eps + u)`; its softmax is Shepard's `(eps + u)^-1` normalised.
pub struct Idw;
impl Metric for Idw {
    const KIND: MetricKind = MetricKind::Idw;
    const INPUT: Input = Input::DistPow;
    const NORMALISE: Normalise = Normalise::Direct;
    const HEAD: HeadParam = HeadParam::Power;
    const DEFAULT_POWER: f64 = 2.0;
    const KEEP_SCORES: bool = false;
    const CUDA: CudaRow = CudaRow {
        score: "-logf(eps + z)",
        dscore: "-1.0f / (eps + z)",
        dscore_dhead: "0.0f",
        weight: "1.0f / (eps + z)",
    };
    #[inline(always)]
    fn score<N: Num>(c: Consts<N::C>, _: &N::Head, z: N) -> N {
        z.add(c.eps).ln().neg()
    }
    #[inline(always)]
    fn dscore(c: Consts<f32>, _: f32, u: f32, _: impl Fn() -> f32) -> f32 {
        -1.0 / (c.eps + u)
    }
    #[inline(always)]
    fn weight(c: Consts<f32>, _: f32, u: f32) -> f32 {
        1.0 / (c.eps + u)
    }
    #[inline(always)]
    fn dscore_dhead(_: f32) -> f32 {
        0.0
    }
}

/// `inv_dist`: `1 / (eps + u)`.
pub struct InvDist;
impl Metric for InvDist {
    const KIND: MetricKind = MetricKind::InvDist;
    const INPUT: Input = Input::DistPow;
    const NORMALISE: Normalise = Normalise::Softmax;
    const HEAD: HeadParam = HeadParam::None;
    const DEFAULT_POWER: f64 = 2.0;
    const KEEP_SCORES: bool = false;
    const CUDA: CudaRow = CudaRow::softmax("1.0f / (eps + z)", "-1.0f / ((eps + z) * (eps + z))", "0.0f");
    #[inline(always)]
    fn score<N: Num>(c: Consts<N::C>, _: &N::Head, z: N) -> N {
        z.add(c.eps).recip()
    }
    #[inline(always)]
    fn dscore(c: Consts<f32>, _: f32, u: f32, _: impl Fn() -> f32) -> f32 {
        -1.0 / ((c.eps + u) * (c.eps + u))
    }
    #[inline(always)]
    fn dscore_dhead(_: f32) -> f32 {
        0.0
    }
}

/// `rbf`: `exp(-u / 2)`; its backward reuses the forward scores.
pub struct Rbf;
impl Metric for Rbf {
    const KIND: MetricKind = MetricKind::Rbf;
    const INPUT: Input = Input::DistPow;
    const NORMALISE: Normalise = Normalise::SoftmaxBounded;
    const HEAD: HeadParam = HeadParam::None;
    const DEFAULT_POWER: f64 = 2.0;
    const KEEP_SCORES: bool = true;
    const CUDA: CudaRow = CudaRow::softmax("expf(-0.5f * z)", "-0.5f * s", "0.0f");
    #[inline(always)]
    fn score<N: Num>(_: Consts<N::C>, _: &N::Head, z: N) -> N {
        z.mul(N::c(-0.5)).exp()
    }
    #[inline(always)]
    fn dscore(_: Consts<f32>, _: f32, _: f32, s: impl Fn() -> f32) -> f32 {
        -0.5 * s()
    }
    #[inline(always)]
    fn dscore_dhead(_: f32) -> f32 {
        0.0
    }
}

/// Evaluates `$body` with the type `$m` bound to the table row of `$kind`: the one dispatch
/// from a [`MetricKind`] to its [`Metric`].
macro_rules! with_metric {
    ($kind:expr, $m:ident => $body:expr) => {
        match $kind {
            $crate::metric::MetricKind::Dot => {
                type $m = $crate::metric::table::Dot;
                $body
            }
            $crate::metric::MetricKind::Cosine => {
                type $m = $crate::metric::table::Cosine;
                $body
            }
            $crate::metric::MetricKind::NegSqEuclid => {
                type $m = $crate::metric::table::NegSqEuclid;
                $body
            }
            $crate::metric::MetricKind::NegEuclid => {
                type $m = $crate::metric::table::NegEuclid;
                $body
            }
            $crate::metric::MetricKind::Idw => {
                type $m = $crate::metric::table::Idw;
                $body
            }
            $crate::metric::MetricKind::InvDist => {
                type $m = $crate::metric::table::InvDist;
                $body
            }
            $crate::metric::MetricKind::Rbf => {
                type $m = $crate::metric::table::Rbf;
                $body
            }
        }
    };
}
pub(crate) use with_metric;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row's `KIND` is the kind that dispatches to it, and `dscore` is the derivative of
    /// `score` (central differences in f32 at a few points).
    #[test]
    fn rows_match_their_kind_and_dscore_is_the_derivative() {
        let c = Consts { scale: 0.7f32, eps: 1e-2 };
        for kind in MetricKind::ALL {
            assert_eq!(with_metric!(kind, M => M::KIND), kind);
            for z in [0.3f32, 1.0, 2.5] {
                let (s, ds) = with_metric!(kind, M => {
                    let s = |z: f32| M::score(c, &1.3, z);
                    let h = 1e-3;
                    ((s(z + h) - s(z - h)) / (2.0 * h), M::dscore(c, 1.3, z, || s(z)))
                });
                assert!((s - ds).abs() < 2e-2 * (1.0 + ds.abs()), "{kind} z={z}: {s} vs {ds}");
                // ds/d(head) for the parameters that enter the score directly.
                let (fd, dh) = with_metric!(kind, M => {
                    let h = 1e-3;
                    let fd = match M::HEAD {
                        HeadParam::Temperature => (M::score(c, &(1.3 + h), z) - M::score(c, &(1.3 - h), z)) / (2.0 * h),
                        HeadParam::Scale => {
                            let at = |scale: f32| M::score(Consts { scale, ..c }, &1.3, z);
                            // Linear in the scale: s(z; scale) = scale * s(z; 1).
                            assert!((at(0.7) - 0.7 * at(1.0)).abs() < 1e-5, "{kind}: not linear in its scale");
                            (at(0.7 + h) - at(0.7 - h)) / (2.0 * h)
                        }
                        HeadParam::None | HeadParam::Power => 0.0,
                    };
                    (fd, M::dscore_dhead(z))
                });
                assert!((fd - dh).abs() < 2e-2 * (1.0 + dh.abs()), "{kind} z={z}: d/dhead {fd} vs {dh}");
            }
        }
    }
}
