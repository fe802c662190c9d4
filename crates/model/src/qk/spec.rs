//! The qk and position options as they appear (flattened) in model configs: [`QkSpec`] (GPT and
//! set regressor) and [`PosSpec`] (GPT only: a set has no positions).

use candle_core::{Result, bail};
use serde::{Deserialize, Serialize};

/// Per-head normalisation of queries and keys after their projections, before the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QkNorm {
    /// None (today's attention).
    #[default]
    None,
    /// `x / sqrt(mean(x^2) + eps)`, no parameters: every row has norm `sqrt(d)`
    /// (modded-nanogpt, nanochat; torch's `F.rms_norm` without weight).
    Rms,
    /// `g * x / sqrt(mean(x^2) + eps)` with a learned per-dimension gain `g` `(d,)` for queries
    /// and one for keys, shared by the heads of a layer, initialised to 1 (Gemma, OLMo 2).
    RmsGain,
    /// `x / sqrt(|x|^2 + eps)`: unit rows (with `dot`, cosine attention at the scale's temperature).
    L2,
}

/// Where a GPT's positions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PosKind {
    /// Learned position embeddings added to the token embeddings (GPT-2, today's).
    #[default]
    Learned,
    /// Rotary position embeddings on q and k (no position embeddings).
    Rope,
    /// No positions (the causal mask alone).
    None,
}

fn default_true() -> bool {
    true
}
fn default_rope_fraction() -> f64 {
    1.0
}
fn default_rope_base() -> f64 {
    10_000.0
}

/// qk-norm and the norm in front of attention (flattened into GPT and set-regressor configs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QkSpec {
    /// Per-head qk-norm (default `none`).
    #[serde(default)]
    pub qk_norm: QkNorm,
    /// Keep the norm in front of attention (`ln_1`); `false` removes only that one, keeping the
    /// MLP's and the final norm.
    #[serde(default = "default_true")]
    pub attn_norm: bool,
    /// Keys use the query map (`W_K = W_Q`): one parameter, `q_proj`, saved once; unset means
    /// `false`. With a distance metric this is the tied L2 attention that Kim, Papamakarios and
    /// Mnih (2021) prove Lipschitz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qk_tied: Option<bool>,
}

impl QkSpec {
    /// Whether keys use the query map (`qk_tied`, default `false`).
    pub fn tied(&self) -> bool {
        self.qk_tied.unwrap_or(false)
    }
}

impl Default for QkSpec {
    fn default() -> Self {
        Self { qk_norm: QkNorm::None, attn_norm: true, qk_tied: None }
    }
}

/// Positions of a GPT (flattened into its config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PosSpec {
    /// Where positions come from (default `learned`).
    #[serde(default)]
    pub pos: PosKind,
    /// Share of each head's dimensions that RoPE rotates, in (0, 1] (default 1).
    #[serde(default = "default_rope_fraction")]
    pub rope_fraction: f64,
    /// RoPE base: dimension pair `i` of `r/2` turns by `base^(-i / (r/2))` radians per position.
    #[serde(default = "default_rope_base")]
    pub rope_base: f64,
}

impl Default for PosSpec {
    fn default() -> Self {
        Self { pos: PosKind::Learned, rope_fraction: default_rope_fraction(), rope_base: default_rope_base() }
    }
}

impl PosSpec {
    /// The number of dimensions RoPE rotates in a head of width `d`, or an error naming the key
    /// (`rope_fraction` outside (0, 1], or `rope_fraction * d` not a whole even number).
    pub fn rotated_dims(&self, d: usize) -> Result<usize> {
        let f = self.rope_fraction;
        if !(f > 0.0 && f <= 1.0) {
            bail!("model.rope_fraction must be in (0, 1], got {f}")
        }
        let r = f * d as f64;
        let whole = r.round() as usize;
        if (r - r.round()).abs() > 1e-9 || !whole.is_multiple_of(2) || whole < 2 {
            bail!(
                "model.rope_fraction {f} of a head of {d} dimensions: the number of rotated dimensions, \
                 {r}, must be a whole even number (at least 2)"
            )
        }
        Ok(whole)
    }

    /// Rejects values that make no sense for heads of width `d`, naming the key; RoPE options
    /// other than their defaults without `pos = "rope"` are rejected too (they would do nothing,
    /// while the run looked like a RoPE run).
    pub fn validate(&self, d: usize) -> Result<()> {
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            bail!("model.rope_base must be a finite number > 0, got {}", self.rope_base)
        }
        let pos = match self.pos {
            PosKind::Rope => return self.rotated_dims(d).map(|_| ()),
            PosKind::Learned => "learned",
            PosKind::None => "none",
        };
        let changed = [
            ("rope_fraction", self.rope_fraction != default_rope_fraction()),
            ("rope_base", self.rope_base != default_rope_base()),
        ];
        match changed.iter().find(|(_, c)| *c) {
            Some((key, _)) => {
                bail!("model.{key} applies only with model.pos = \"rope\", but pos is \"{pos}\"")
            }
            None => Ok(()),
        }
    }
}
