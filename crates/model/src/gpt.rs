//! The decoder-only transformer (GPT) with a pluggable attention metric.

use candle_core::{D, IndexOp, Module, Result, Tensor, bail};
use candle_nn::Embedding;
use serde::{Deserialize, Serialize};

use crate::attention::{AttnProbe, MetricAttention, QkOptions};
use crate::dropout::{self, Dropout, DropoutKey, Site};
use crate::layers::{INIT_STD, Linear, Mlp, Norm, NormKind, linear};
use crate::metric::{MaskCache, MaskShape, MetricSpec};
use crate::params::{Init, ParamBuilder};
use crate::qk::{PosKind, PosSpec, QkSpec, Rope};

fn default_mlp_ratio() -> usize {
    4
}
fn default_norm_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}

/// Configuration of a [`Gpt`]; part of every checkpoint's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptConfig {
    /// Number of token ids.
    pub vocab_size: usize,
    /// Longest context.
    pub block_size: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Model width `c`; must be divisible by `n_head`.
    pub n_embd: usize,
    /// MLP hidden width as a multiple of `n_embd`.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: usize,
    /// Normalisation: `layernorm`, `rmsnorm` or `none`.
    #[serde(default)]
    pub norm: NormKind,
    /// eps of the norms.
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// Biases in linear maps and layer norms.
    #[serde(default)]
    pub bias: bool,
    /// LM head shares the token-embedding matrix.
    #[serde(default = "default_true")]
    pub tied_embeddings: bool,
    /// The attention metric and its parameters.
    #[serde(flatten)]
    pub attention: MetricSpec,
    /// qk-norm and the norm in front of attention.
    #[serde(flatten)]
    pub qk: QkSpec,
    /// Positions: learned, RoPE or none.
    #[serde(flatten)]
    pub pos: PosSpec,
    /// Dropout probability in training (embeddings, attention weights, residual branches, as
    /// nanoGPT); unset means 0 (and is not written, so configs without it read back unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
}

impl GptConfig {
    /// nanoGPT's CPU "baby" character model: 4 layers, 4 heads, width 128, block 64.
    pub fn baby_char(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            block_size: 64,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            mlp_ratio: 4,
            norm: NormKind::Layernorm,
            norm_eps: 1e-5,
            bias: false,
            tied_embeddings: true,
            attention: MetricSpec::default(),
            qk: QkSpec::default(),
            pos: PosSpec::default(),
            dropout: None,
        }
    }

    /// The training dropout probability (0 when unset).
    pub fn dropout_p(&self) -> f64 {
        self.dropout.unwrap_or(0.0)
    }

    /// What the attention layers do to queries and keys (RoPE only for `pos = rope`).
    pub fn qk_options(&self) -> Result<QkOptions> {
        let rope = match self.pos.pos {
            PosKind::Rope => {
                let rot = self.pos.rotated_dims(self.n_embd / self.n_head)?;
                Some(Rope { rot, base: self.pos.rope_base })
            }
            PosKind::Learned | PosKind::None => None,
        };
        Ok(QkOptions { norm: self.qk.qk_norm, rope, tied: self.qk.tied() })
    }

    /// Rejects a config that does not make sense, naming the field.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("mlp_ratio", self.mlp_ratio),
        ] {
            if v == 0 {
                bail!("model.{name} must be at least 1")
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            bail!("model.n_embd ({}) must be divisible by model.n_head ({})", self.n_embd, self.n_head)
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            bail!("model.norm_eps must be > 0, got {}", self.norm_eps)
        }
        self.pos.validate(self.n_embd / self.n_head)?;
        dropout::check_p(self.dropout_p())?;
        self.attention.validate().map_err(|e| candle_core::Error::Msg(format!("model.{e}")))
    }
}

/// One pre-norm block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))` (`ln_1` is the identity
/// when `attn_norm = false`).
#[derive(Debug, Clone)]
pub struct Block {
    ln_1: Norm,
    attn: MetricAttention,
    ln_2: Norm,
    mlp: Mlp,
}

impl Block {
    /// Creates the block's variables under `pb` (`ln_1`, `attn`, `ln_2`, `mlp`).
    pub fn new(cfg: &GptConfig, pb: &ParamBuilder) -> Result<Self> {
        let c = cfg.n_embd;
        let resid_std = INIT_STD / (2.0 * cfg.n_layer as f64).sqrt();
        let attn_norm = if cfg.qk.attn_norm { cfg.norm } else { NormKind::None };
        let qk = (&cfg.attention, cfg.qk_options()?);
        Ok(Self {
            ln_1: Norm::new(attn_norm, c, cfg.bias, cfg.norm_eps, &pb.pp("ln_1"))?,
            attn: MetricAttention::new(c, cfg.n_head, cfg.bias, qk, resid_std, &pb.pp("attn"))?,
            ln_2: Norm::new(cfg.norm, c, cfg.bias, cfg.norm_eps, &pb.pp("ln_2"))?,
            mlp: Mlp::new(c, cfg.mlp_ratio * c, cfg.bias, resid_std, &pb.pp("mlp"))?,
        })
    }

    /// `(b, t, c) -> (b, t, c)` under an additive `(t, t)` mask.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.forward_t(x, mask, None)
    }

    /// [`Block::forward`] with dropout (training) as block `layer`: on the attention weights
    /// and on both branches before they join the residual stream. `None` is [`Block::forward`].
    pub fn forward_t(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        drop: Option<(&Dropout, usize)>,
    ) -> Result<Tensor> {
        let a = self.attn.forward_t(&self.ln_1.forward(x)?, mask, drop)?;
        let a = match drop {
            Some((d, l)) => d.apply(&a, Site::AttnResid(l))?,
            None => a,
        };
        let x = (x + a)?;
        let m = self.mlp.forward(&self.ln_2.forward(&x)?)?;
        let m = match drop {
            Some((d, l)) => d.apply(&m, Site::MlpResid(l))?,
            None => m,
        };
        &x + m
    }

    /// [`Block::forward`] that also returns the attention's queries and keys.
    pub fn forward_with_probe(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<(Tensor, AttnProbe)> {
        let (a, probe) = self.attn.forward_with_probe(&self.ln_1.forward(x)?, mask)?;
        let x = (x + a)?;
        Ok(((&x + self.mlp.forward(&self.ln_2.forward(&x)?)?)?, probe))
    }

    /// The attention layer.
    pub fn attn(&self) -> &MetricAttention {
        &self.attn
    }
}

/// Decoder-only transformer: token ids `(b, t)` to next-token logits `(b, t, vocab_size)`.
#[derive(Debug, Clone)]
pub struct Gpt {
    cfg: GptConfig,
    wte: Embedding,
    /// Learned positions (`pos = learned`).
    wpe: Option<Embedding>,
    blocks: Vec<Block>,
    ln_f: Norm,
    lm_head: Linear,
    /// The last causal mask built, for forwards of the same length.
    mask: MaskCache,
    /// Training dropout of this forward ([`Gpt::training`]); `None`: evaluation.
    drop: Option<Dropout>,
}

impl Gpt {
    /// Validates `cfg` and creates every variable under `pb` with GPT-2 initialisation:
    /// N(0, 0.02) weights, residual projections N(0, 0.02 / sqrt(2 n_layer)), zero biases.
    pub fn new(cfg: &GptConfig, pb: &ParamBuilder) -> Result<Self> {
        cfg.validate()?;
        let c = cfg.n_embd;
        let wte_w = pb.pp("wte").var("weight", (cfg.vocab_size, c), Init::Normal { std: INIT_STD })?;
        let wpe = match cfg.pos.pos {
            PosKind::Learned => {
                let w = pb.pp("wpe").var("weight", (cfg.block_size, c), Init::Normal { std: INIT_STD })?;
                Some(Embedding::new(w, c))
            }
            PosKind::Rope | PosKind::None => None,
        };
        let blocks =
            (0..cfg.n_layer).map(|i| Block::new(cfg, &pb.pp("blocks").pp(i))).collect::<Result<Vec<_>>>()?;
        let ln_f = Norm::new(cfg.norm, c, cfg.bias, cfg.norm_eps, &pb.pp("ln_f"))?;
        let lm_head = if cfg.tied_embeddings {
            Linear::new(wte_w.clone(), None)
        } else {
            linear(c, cfg.vocab_size, false, INIT_STD, &pb.pp("lm_head"))?
        };
        let mask = MaskCache::default();
        Ok(Self {
            cfg: cfg.clone(),
            wte: Embedding::new(wte_w, c),
            wpe,
            blocks,
            ln_f,
            lm_head,
            mask,
            drop: None,
        })
    }

    /// This model (sharing its variables) in training mode for one step: its forwards apply
    /// dropout `model.dropout` with the masks of `key` ([`crate::dropout`]). With dropout 0 it
    /// is the model itself, and forwards are exactly the evaluation ones.
    pub fn training(&self, key: DropoutKey) -> Result<Self> {
        let mut m = self.clone();
        m.drop = Dropout::new(self.cfg.dropout_p(), key)?;
        Ok(m)
    }

    /// The configuration.
    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &candle_core::Device {
        self.wte.embeddings().device()
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Logits `(b, t, vocab_size)` for token ids `(b, t)` (u32), `t <= block_size`.
    pub fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        let (mut x, mask) = self.embed(idx)?;
        if let Some(d) = &self.drop {
            x = d.apply(&x, Site::Embedding)?;
        }
        for (l, block) in self.blocks.iter().enumerate() {
            x = block.forward_t(&x, Some(&mask), self.drop.as_ref().map(|d| (d, l)))?;
        }
        self.lm_head.forward(&self.ln_f.forward(&x)?)
    }

    /// Like [`Gpt::forward`], and also returns every layer's queries and keys (analysis probes;
    /// the attention takes the split-heads route, so this is slower than `forward`).
    pub fn forward_with_probes(&self, idx: &Tensor) -> Result<(Tensor, Vec<AttnProbe>)> {
        let (mut x, mask) = self.embed(idx)?;
        let mut probes = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (y, probe) = block.forward_with_probe(&x, Some(&mask))?;
            probes.push(probe);
            x = y;
        }
        Ok((self.lm_head.forward(&self.ln_f.forward(&x)?)?, probes))
    }

    /// Token (plus learned position) embeddings `(b, t, c)` of `idx` `(b, t)`, and the causal mask.
    fn embed(&self, idx: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_b, t) = idx.dims2()?;
        if t > self.cfg.block_size {
            bail!("sequence of {t} tokens is longer than block_size {}", self.cfg.block_size)
        }
        let x = self.wte.forward(idx)?; // (b, t, c)
        let x = match &self.wpe {
            Some(wpe) => x.broadcast_add(&wpe.forward(&Tensor::arange(0u32, t as u32, idx.device())?)?)?,
            None => x,
        };
        Ok((x, self.causal_mask(t, idx.device())?))
    }

    /// The causal mask `(t, t)` on `device`, built once per length and device.
    fn causal_mask(&self, t: usize, device: &candle_core::Device) -> Result<Tensor> {
        self.mask.get(MaskShape::Causal(t), device)
    }

    /// Logits `(b, vocab_size)` at the last position only (for generation).
    pub fn last_logits(&self, idx: &Tensor) -> Result<Tensor> {
        let t = idx.dim(D::Minus1)?;
        self.forward(idx)?.i((.., t - 1, ..))
    }
}
