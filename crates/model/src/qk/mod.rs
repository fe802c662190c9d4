//! What happens to queries and keys between their projections and the metric: per-head qk-norm
//! ([`QkNorm`]), then RoPE ([`Rope`]); one [`QkTransform`] per attention layer.
//!
//! With `rms`, every row has norm `sqrt(d)` (up to eps), so `|q - k|^2 = 2d - 2 q.k` and
//! `neg_sq_euclid` at scale s is `dot` at scale 2s: the two metrics become the same function.
//! With `l2`, rows are unit vectors and `dot` at scale s is `cosine` with temperature s.
//! RoPE keeps norms, so it composes with every metric (scores depend on content and offset).
//!
//! Two implementations: composed candle ops on split heads `(b, h, t, d)` ([`QkTransform::heads`],
//! the reference) and the fused one ([`QkTransform::kernel`], [`crate::fused::QkFn`]), applied
//! row by row by the packed self-attention kernel as it gathers each head's queries and keys.

pub mod rope;
pub mod spec;

use candle_core::{D, Result, Tensor};

use crate::fused::{NormFn, QkFn};
use crate::metric::unit::{UNIT_EPS, unit_rows};
use crate::params::{Init, ParamBuilder};
pub use rope::Rope;
pub use spec::{PosKind, PosSpec, QkNorm, QkSpec};

/// eps of the `rms` qk-norm: torch's `F.rms_norm` default for `f32` (`torch.finfo(float32).eps`).
pub const QK_RMS_EPS: f32 = f32::EPSILON;

/// qk-norm and RoPE of one attention layer.
#[derive(Debug, Clone)]
pub struct QkTransform {
    norm: QkNorm,
    /// `[query gain, key gain]`, `(d,)` variables each (`rms_gain`); stacked at every forward
    /// pass (a tensor computed once would keep the initial values).
    gain: Option<[Tensor; 2]>,
    rope: Option<Rope>,
}

impl QkTransform {
    /// The transform for heads of width `d`; `rope` is `Some` for `pos = rope`. Creates
    /// `q_norm.weight` and `k_norm.weight` `(d,)` (ones) under `pb` for `rms_gain`.
    pub fn new(norm: QkNorm, rope: Option<Rope>, d: usize, pb: &ParamBuilder) -> Result<Self> {
        let gain = match norm {
            QkNorm::RmsGain => {
                let q = pb.pp("q_norm").var("weight", d, Init::Const(1.0))?;
                let k = pb.pp("k_norm").var("weight", d, Init::Const(1.0))?;
                Some([q, k])
            }
            QkNorm::None | QkNorm::Rms | QkNorm::L2 => None,
        };
        Ok(Self { norm, gain, rope })
    }

    /// Whether the transform changes nothing (no qk-norm, no RoPE).
    pub fn is_identity(&self) -> bool {
        self.norm == QkNorm::None && self.rope.is_none()
    }

    /// The qk-norm.
    pub fn norm(&self) -> QkNorm {
        self.norm
    }

    /// RoPE, if on.
    pub fn rope(&self) -> Option<Rope> {
        self.rope
    }

    /// `(x, gain row)` normalised: `x` `(b, h, t, d)`, composed candle ops.
    fn norm_heads(&self, x: &Tensor, part: usize) -> Result<Tensor> {
        let rms = |x: &Tensor| -> Result<Tensor> {
            let r = (x.sqr()?.mean_keepdim(D::Minus1)? + QK_RMS_EPS as f64)?.sqrt()?.recip()?;
            x.broadcast_mul(&r)
        };
        match (self.norm, &self.gain) {
            (QkNorm::None, _) => Ok(x.clone()),
            (QkNorm::Rms, _) | (QkNorm::RmsGain, None) => rms(x),
            (QkNorm::RmsGain, Some(g)) => rms(x)?.broadcast_mul(&g[part].to_dtype(x.dtype())?),
            (QkNorm::L2, _) => unit_rows(x),
        }
    }

    /// Queries and keys `(b, h, t, d)` after qk-norm and RoPE (positions `start ..`), composed
    /// from candle ops: the reference the fused kernel is tested against.
    pub fn heads(&self, q: &Tensor, k: &Tensor, start: usize) -> Result<(Tensor, Tensor)> {
        let (q, k) = (self.norm_heads(q, 0)?, self.norm_heads(k, 1)?);
        match &self.rope {
            Some(r) => Ok((r.rotate(&q, start)?, r.rotate(&k, start)?)),
            None => Ok((q, k)),
        }
    }

    /// The fused kernel's description of the transform for `t` positions (from 0) and heads of
    /// width `d`, with the gain `(2, d)` (query gain, key gain) where there is one; `None` when
    /// the transform does nothing. The packed self-attention kernel applies it to the query and
    /// key rows it gathers ([`crate::fused::self_attention`]).
    pub fn kernel(&self, t: usize, d: usize) -> Result<Option<(QkFn, Option<Tensor>)>> {
        if self.is_identity() {
            return Ok(None);
        }
        let gain = self.gain.as_ref().map(|g| Tensor::stack(g, 0)).transpose()?;
        Ok(Some((self.kernel_fn(t, d), gain)))
    }

    /// The fused kernel's description for `t` positions (from 0) and heads of width `d`.
    fn kernel_fn(&self, t: usize, d: usize) -> QkFn {
        let norm = match self.norm {
            QkNorm::None => None,
            QkNorm::Rms | QkNorm::RmsGain => Some(NormFn { n: d as f32, eps: QK_RMS_EPS }),
            QkNorm::L2 => Some(NormFn { n: 1.0, eps: UNIT_EPS }),
        };
        QkFn { norm, rope: self.rope.map(|r| r.kernel_tables(0, t)) }
    }
}
