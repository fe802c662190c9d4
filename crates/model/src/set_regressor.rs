//! The in-context interpolation model: a transformer over a set of points.
//!
//! Context points `(x, y)` and query points `x` are embedded by two linear projections, pass
//! through the GPT's pre-norm blocks under [`context_mask`] (every point attends to the context
//! points only, so queries never see each other and the prediction at one query does not depend
//! on the others), and a linear head reads `y` at each query.

use candle_core::{D, Module, Result, Tensor, bail};
use serde::{Deserialize, Serialize};

use crate::gpt::{Block, GptConfig};
use crate::layers::{INIT_STD, Linear, Norm, NormKind, linear};
use crate::metric::{MaskCache, MaskShape, MetricSpec};
use crate::params::ParamBuilder;
use crate::qk::{PosKind, PosSpec, QkSpec};

fn default_mlp_ratio() -> usize {
    4
}
fn default_norm_eps() -> f64 {
    1e-5
}

/// Configuration of a [`SetRegressor`]; the field names are the GPT's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRegressorConfig {
    /// Dimension of the input points `x`, any `d >= 1` (the `scattered` task takes 1 or 2, the
    /// `regression` task any).
    pub dim: usize,
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
    /// Biases in the blocks' linear maps and layer norms (the input projections and the head
    /// always have a bias).
    #[serde(default)]
    pub bias: bool,
    /// The attention metric and its parameters.
    #[serde(flatten)]
    pub attention: MetricSpec,
    /// qk-norm and the norm in front of attention (a set has no positions: no `pos` keys).
    #[serde(flatten)]
    pub qk: QkSpec,
}

impl SetRegressorConfig {
    /// A small default: 2-D points, 3 layers, 4 heads, width 64, layer norm, dot attention.
    pub fn small(dim: usize) -> Self {
        Self {
            dim,
            n_layer: 3,
            n_head: 4,
            n_embd: 64,
            mlp_ratio: 4,
            norm: NormKind::Layernorm,
            norm_eps: 1e-5,
            bias: false,
            attention: MetricSpec::default(),
            qk: QkSpec::default(),
        }
    }

    /// Rejects a config that does not make sense, naming the field.
    pub fn validate(&self) -> Result<()> {
        self.block_config().validate()?;
        if self.dim == 0 {
            bail!("model.dim must be at least 1")
        }
        Ok(())
    }

    /// The GPT config whose blocks this model reuses ([`Block::new`] reads only the block
    /// fields; vocabulary and positions do not exist here and are set to 1).
    fn block_config(&self) -> GptConfig {
        GptConfig {
            vocab_size: 1,
            block_size: 1,
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_embd: self.n_embd,
            mlp_ratio: self.mlp_ratio,
            norm: self.norm,
            norm_eps: self.norm_eps,
            bias: self.bias,
            tied_embeddings: false,
            attention: self.attention.clone(),
            qk: self.qk.clone(),
            pos: PosSpec { pos: PosKind::None, ..PosSpec::default() },
            dropout: None,
        }
    }
}

/// Set transformer for in-context regression: context `(b, n, dim + 1)` (each row `x, y`) and
/// queries `(b, m, dim)` to predictions `(b, m)`.
#[derive(Debug, Clone)]
pub struct SetRegressor {
    cfg: SetRegressorConfig,
    ctx_proj: Linear,
    query_proj: Linear,
    blocks: Vec<Block>,
    ln_f: Norm,
    head: Linear,
    /// The last context mask built, for forwards of the same set sizes.
    mask: MaskCache,
}

impl SetRegressor {
    /// Validates `cfg` and creates `ctx_proj`, `query_proj`, `blocks.{i}`, `ln_f` and `head`
    /// under `pb` (input projections N(0, 1/fan_in), blocks as in the GPT, head N(0, 0.02)).
    pub fn new(cfg: &SetRegressorConfig, pb: &ParamBuilder) -> Result<Self> {
        cfg.validate()?;
        let c = cfg.n_embd;
        let block_cfg = cfg.block_config();
        let in_std = |d: usize| 1.0 / (d as f64).sqrt();
        let blocks = (0..cfg.n_layer)
            .map(|i| Block::new(&block_cfg, &pb.pp("blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            ctx_proj: linear(cfg.dim + 1, c, true, in_std(cfg.dim + 1), &pb.pp("ctx_proj"))?,
            query_proj: linear(cfg.dim, c, true, in_std(cfg.dim), &pb.pp("query_proj"))?,
            blocks,
            ln_f: Norm::new(cfg.norm, c, cfg.bias, cfg.norm_eps, &pb.pp("ln_f"))?,
            head: linear(c, 1, true, INIT_STD, &pb.pp("head"))?,
            mask: MaskCache::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SetRegressorConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &candle_core::Device {
        self.head.weight().device()
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Predictions `(b, m)` at the queries `(b, m, dim)` given context points `(b, n, dim + 1)`.
    pub fn forward(&self, context: &Tensor, queries: &Tensor) -> Result<Tensor> {
        let (b, n, dc) = context.dims3()?;
        let (bq, m, dq) = queries.dims3()?;
        if n == 0 {
            bail!("the set regressor needs at least one context point, got 0")
        }
        if dc != self.cfg.dim + 1 || dq != self.cfg.dim || bq != b {
            bail!(
                "set regressor of dim {} expects context (b, n, {}) and queries (b, m, {}), got {:?} and {:?}",
                self.cfg.dim,
                self.cfg.dim + 1,
                self.cfg.dim,
                context.dims(),
                queries.dims()
            )
        }
        let hc = self.ctx_proj.forward(context)?; // (b, n, c)
        let hq = self.query_proj.forward(queries)?; // (b, m, c)
        let mut x = Tensor::cat(&[&hc, &hq], 1)?; // (b, n + m, c)
        let mask = self.mask.get(MaskShape::Context(n, m), context.device())?;
        for block in &self.blocks {
            x = block.forward(&x, Some(&mask))?;
        }
        let y = self.head.forward(&self.ln_f.forward(&x.narrow(1, n, m)?)?)?; // (b, m, 1)
        y.squeeze(D::Minus1)
    }
}
