//! The per-row metric kernels shared by every fused attention route: one row of `q.k` (and the
//! squared norms) to softmax weights, and back to `g_qk`. The formulas come from
//! [`crate::metric::table`]; each call dispatches once on the metric and runs loops
//! monomorphised for it, compiled per CPU by `multiversion`.
//!
//! Forward: `z` from the metric's [`Input`], the score (or for [`Normalise::Direct`] its
//! exponential), the mask, the normalisation. Backward: `gs = w (g - sum(w g))`,
//! `g_qk = gs ds/dz dz/dqk` with `dz/dqk = -2 du/dx` for distances (0 where `d2` was clamped).

use candle_core::{DType, Result, Tensor, bail};

use super::{fast_exp, lanes};
use crate::metric::MetricKind;
use crate::metric::distance::{PowFn, sq_dist_unclamped, with_pow};
use crate::metric::table::{Consts, HeadParam, Input, Metric, Normalise, with_metric};

/// The score function the kernels apply (fixed parameters of a [`crate::MetricLayer`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricFn {
    /// Which metric.
    pub kind: MetricKind,
    /// Scale of `dot`, `neg_sq_euclid`, `neg_euclid`.
    pub scale: f32,
    /// eps of `idw`, `inv_dist`.
    pub eps: f32,
    /// delta added to the squared distance.
    pub delta: f32,
    /// Fixed power p (ignored when a learned per-head power is passed).
    pub power: f32,
}

impl MetricFn {
    /// The constants of a row: the head's scale (learned or fixed) and eps.
    fn consts(&self, row: &Row) -> Consts<f32> {
        Consts { scale: row.scale, eps: self.eps }
    }
}

/// What the per-head tensor passed to a kernel means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ParamUse {
    None,
    /// `cosine` temperature tau: score `tau * qk` (qk of unit rows).
    Temperature,
    /// Learned power p of `idw`.
    Power,
    /// Learned score scale of `dot`, `neg_sq_euclid`, `neg_euclid` (`exp(log_scale)`).
    Scale,
}

/// The constants of one head: the row parameter (`p / 2` for distance metrics, tau for
/// `cosine`) and the score scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Head {
    pub(super) param: f32,
    pub(super) scale: f32,
}

impl ParamUse {
    /// What the per-head tensor means for `kind`, given whether the caller passed one.
    pub(crate) fn of(kind: MetricKind, given: bool) -> Result<Self> {
        Ok(match (kind.head_param(), given) {
            (HeadParam::Temperature, true) => ParamUse::Temperature,
            (HeadParam::Temperature, false) => bail!("fused `{kind}` attention needs the temperature"),
            (HeadParam::Power, true) => ParamUse::Power,
            (HeadParam::Scale, true) => ParamUse::Scale,
            (HeadParam::None, true) => bail!("metric `{kind}` takes no per-head parameter"),
            (HeadParam::None | HeadParam::Power | HeadParam::Scale, false) => ParamUse::None,
        })
    }

    /// The constants of head `hd`.
    pub(super) fn value(self, f: &MetricFn, param: &[f32], hd: usize) -> Head {
        let fixed = Head { param: f.power * 0.5, scale: f.scale };
        match self {
            ParamUse::None => fixed,
            ParamUse::Temperature => Head { param: param[hd], ..fixed },
            ParamUse::Power => Head { param: param[hd] * 0.5, ..fixed },
            ParamUse::Scale => Head { scale: param[hd], ..fixed },
        }
    }
}

/// The per-head parameter `(h,)` as the kernels take it (a one-element dummy when absent).
pub(crate) fn head_param(param: Option<&Tensor>, h: usize, device: &candle_core::Device) -> Result<Tensor> {
    match param {
        Some(p) if p.elem_count() == h => p.contiguous(),
        Some(p) => bail!("fused attention: per-head parameter has shape {:?}, expected ({h},)", p.dims()),
        None => Tensor::zeros(1, DType::F32, device),
    }
}

/// Per-row constants of the kernel.
#[derive(Clone, Copy)]
pub(super) struct Row<'a> {
    /// `|q_i|^2` (distance metrics).
    pub(super) qn: f32,
    /// `|k_j|^2` of every key (distance metrics).
    pub(super) kn: &'a [f32],
    /// `p / 2` for distance metrics, tau for cosine.
    pub(super) param: f32,
    /// The head's score scale.
    pub(super) scale: f32,
    /// Which per-head parameter's gradient is wanted.
    pub(super) learned: ParamUse,
}

impl<'a> Row<'a> {
    /// The row of a query with squared norm `qn` against keys of squared norms `kn`, in a head
    /// with constants `head`.
    pub(super) fn new(qn: f32, kn: &'a [f32], head: Head, learned: ParamUse) -> Self {
        Row { qn, kn, param: head.param, scale: head.scale, learned }
    }
}

/// Writes softmax weights of row `qk[..n]` into `out` (zeros beyond `n` and where `keep` is false);
/// with `scores`, also the row's scores before masking (for metrics that keep them).
#[multiversion::multiversion(targets = "simd")]
pub(super) fn forward_row(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    n: usize,
    keep: Option<&[bool]>,
    out: &mut [f32],
    scores: Option<&mut [f32]>,
) {
    with_metric!(f.kind, M => forward_row_of::<M>(f, row, qk, n, keep, out, scores))
}

/// [`forward_row`] for metric `M`.
#[inline(always)]
fn forward_row_of<M: Metric>(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    n: usize,
    keep: Option<&[bool]>,
    out: &mut [f32],
    scores: Option<&mut [f32]>,
) {
    let o = &mut out[..n];
    let c = f.consts(&row);
    let first = |z: f32| match M::NORMALISE {
        Normalise::Direct => M::weight(c, row.param, z),
        Normalise::Softmax | Normalise::SoftmaxBounded => M::score(c, &row.param, z),
    };
    match M::INPUT {
        Input::Dot | Input::UnitDot => o.iter_mut().zip(qk).for_each(|(o, &v)| *o = first(v)),
        Input::SqDist => {
            for ((o, &v), &kn) in o.iter_mut().zip(qk).zip(row.kn) {
                *o = first(sq_dist_unclamped(row.qn, kn, v).max(0.0));
            }
        }
        Input::DistPow => with_pow!(row.param, pw => {
            for ((o, &v), &kn) in o.iter_mut().zip(qk).zip(row.kn) {
                *o = first(pw.u(sq_dist_unclamped(row.qn, kn, v).max(0.0) + f.delta));
            }
        }),
    }
    if let Some(sc) = scores {
        sc[..n].copy_from_slice(o);
    }
    normalise::<M>(o, keep);
    out[n..].fill(0.0);
}

/// Masks row `o` (scores, or exponentials for [`Normalise::Direct`]) and turns it into weights.
#[inline(always)]
fn normalise<M: Metric>(o: &mut [f32], keep: Option<&[bool]>) {
    let blocked = match M::NORMALISE {
        Normalise::Direct => 0.0,
        Normalise::Softmax | Normalise::SoftmaxBounded => f32::NEG_INFINITY,
    };
    if let Some(keep) = keep {
        o.iter_mut().zip(keep).filter(|(_, k)| !**k).for_each(|(o, _)| *o = blocked);
    }
    let z = match M::NORMALISE {
        Normalise::Direct => lanes::sum(o),
        Normalise::SoftmaxBounded => lanes::map_sum(o, fast_exp),
        Normalise::Softmax => {
            let m = lanes::max(o);
            if m == f32::NEG_INFINITY {
                o.fill(0.0);
                0.0
            } else {
                lanes::map_sum(o, |v| fast_exp(v - m))
            }
        }
    };
    let inv = if z > 0.0 { 1.0 / z } else { 0.0 };
    o.iter_mut().for_each(|v| *v *= inv);
}

/// Writes `g_qk` of one row into `out` and returns this row's gradient of the per-head parameter.
/// `scores` (from [`forward_row`]) spares metrics that keep them recomputing them.
#[multiversion::multiversion(targets = "simd")]
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_row(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    w: &[f32],
    g: &[f32],
    n: usize,
    out: &mut [f32],
    scores: Option<&[f32]>,
) -> f32 {
    let (qk, w, g) = (&qk[..n], &w[..n], &g[..n]);
    let sg = SoftmaxGrad { w, g, wg: lanes::dot(w, g) };
    let gp = with_metric!(f.kind, M => backward_row_of::<M>(f, row, qk, sg, &mut out[..n], scores));
    out[n..].fill(0.0);
    gp
}

/// [`backward_row`] for metric `M` over the row's `n` keys.
#[inline(always)]
fn backward_row_of<M: Metric>(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    sg: SoftmaxGrad,
    o: &mut [f32],
    scores: Option<&[f32]>,
) -> f32 {
    let (c, h) = (f.consts(&row), row.param);
    let n = o.len();
    // Whether the head's temperature or scale (which enter the score directly) is learned.
    let head_grad = match row.learned {
        ParamUse::Temperature | ParamUse::Scale => true,
        ParamUse::None | ParamUse::Power => false,
    };
    let wg = sg.wg;
    let head_grad = |r: f32| if head_grad { r } else { 0.0 };
    match M::INPUT {
        Input::Dot | Input::UnitDot => lanes::map_sum_by(o, [qk, sg.w, sg.g], |[z, w, g]| {
            let s = w * (g - wg);
            (s * M::dscore(c, h, z, || M::score(c, &h, z)), head_grad(s * M::dscore_dhead(z)))
        }),
        Input::SqDist => lanes::map_sum_by(o, [qk, &row.kn[..n], sg.w, sg.g], |[v, kn, w, g]| {
            let r = sq_dist_unclamped(row.qn, kn, v);
            let z = r.max(0.0);
            let s = w * (g - wg);
            let d = s * M::dscore(c, h, z, || M::score(c, &h, z));
            (if r >= 0.0 { -2.0 * d } else { 0.0 }, head_grad(s * M::dscore_dhead(z)))
        }),
        Input::DistPow => match (M::KEEP_SCORES, scores) {
            (true, Some(e)) => {
                with_pow!(h, pw => dist_grads(f, row, qk, sg, o, pw, &e[..n], |e, u| M::dscore(c, h, u, || e), M::dscore_dhead))
            }
            (true, None) | (false, _) => {
                with_pow!(h, pw => dist_grads(f, row, qk, sg, o, pw, qk, |_, u| {
                    M::dscore(c, h, u, || M::score(c, &h, u))
                }, M::dscore_dhead))
            }
        },
    }
}

/// The softmax backward of one row: `ds_j = w_j (g_j - sum_i w_i g_i)`.
#[derive(Clone, Copy)]
struct SoftmaxGrad<'a> {
    w: &'a [f32],
    g: &'a [f32],
    wg: f32,
}

/// `g_qk = -2 ds ds/du du/dx` (zero where the squared distance was clamped) for one row of a
/// [`Input::DistPow`] metric with `ds/du` given (as a function of the kept score `e_j`, or of
/// whatever `e` holds when scores are not kept, and `u`); returns the row's gradient of the
/// learned power (`sum ds ds/du u ln(x) / 2`) or of the learned scale (`sum ds ds/dscale(u)`,
/// `dsdh`) when the row has one, else 0. All slices hold the row's `n` keys.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dist_grads<P: PowFn>(
    f: &MetricFn,
    row: Row,
    qk: &[f32],
    sg: SoftmaxGrad,
    o: &mut [f32],
    pw: P,
    e: &[f32],
    dsdu: impl Fn(f32, f32) -> f32,
    dsdh: impl Fn(f32) -> f32,
) -> f32 {
    let n = o.len();
    let (qk, kn, w, g, e) = (&qk[..n], &row.kn[..n], &sg.w[..n], &sg.g[..n], &e[..n]);
    let wg = sg.wg;
    // The softmax backward `ds_j = w_j (g_j - sum_i w_i g_i)`.
    let ds_at = |j: usize| w[j] * (g[j] - wg);
    let x_at = |j: usize| {
        let r = sq_dist_unclamped(row.qn, kn[j], qk[j]);
        (r, r.max(0.0) + f.delta)
    };
    for (j, o) in o.iter_mut().enumerate() {
        let (r, x) = x_at(j);
        let u = pw.u(x);
        let d = ds_at(j) * dsdu(e[j], u);
        *o = if r >= 0.0 { -2.0 * d * pw.dudx(x, u) } else { 0.0 };
    }
    // The head gradient in a pass of its own: folded into the loop above, its sum (and for the
    // power, `ln`, a libm call) would keep that loop from vectorising.
    match row.learned {
        ParamUse::None | ParamUse::Temperature => 0.0,
        ParamUse::Power => (0..n)
            .map(|j| {
                let x = x_at(j).1;
                let u = pw.u(x);
                ds_at(j) * dsdu(e[j], u) * u * 0.5 * x.ln()
            })
            .sum(),
        ParamUse::Scale => lanes::sum_by([qk, kn, w, g], |[v, kn, w, g]| {
            let x = sq_dist_unclamped(row.qn, kn, v).max(0.0) + f.delta;
            w * (g - wg) * dsdh(pw.u(x))
        }),
    }
}
