//! The model kinds a checkpoint can hold, chosen by `kind` in the config.

use candle_core::{Device, Result};
use serde::{Deserialize, Serialize};

use crate::gpt::{Gpt, GptConfig};
use crate::params::ParamStore;
use crate::prototype::{PrototypeConfig, PrototypeNet};
use crate::set_regressor::{SetRegressor, SetRegressorConfig};

/// Configuration of any model; `kind` selects the variant (`gpt`, `set_regressor`, `prototype`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// Decoder-only language model.
    Gpt(GptConfig),
    /// In-context interpolation over sets of points.
    SetRegressor(SetRegressorConfig),
    /// McCarter's one-hidden-layer prototype network.
    Prototype(PrototypeConfig),
}

impl ModelConfig {
    /// Rejects a config that does not make sense, naming the field.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Gpt(c) => c.validate(),
            ModelConfig::SetRegressor(c) => c.validate(),
            ModelConfig::Prototype(c) => c.validate(),
        }
    }

    /// The config with every default its metric reads written out (see
    /// [`crate::MetricSpec::resolved`]): the score scale each model kind uses by default
    /// (`1/sqrt(head width)` for GPTs and set regressors, the paper's for prototype networks).
    /// A config whose sizes do not validate is returned as it is (its error comes from
    /// [`ModelConfig::validate`]).
    pub fn resolved(&self) -> Self {
        let scale = self.default_scale();
        let mut out = self.clone();
        match (&mut out, scale) {
            (ModelConfig::Gpt(c), Some(scale)) => c.attention = c.attention.resolved(scale),
            (ModelConfig::SetRegressor(c), Some(scale)) => c.attention = c.attention.resolved(scale),
            (ModelConfig::Prototype(c), Some(scale)) => c.attention = c.attention.resolved(scale),
            (_, None) => {}
        }
        out
    }

    /// The score scale this model uses where `attn_scale` is unset: `1/sqrt(head width)` for
    /// GPTs and set regressors, the paper's for prototype networks
    /// ([`crate::prototype::PrototypeConfig::default_scale`]); `None` for sizes with no head
    /// (`n_head = 0`, refused by [`ModelConfig::validate`]). Metrics without a score scale
    /// ignore it.
    pub fn default_scale(&self) -> Option<f64> {
        let head_scale = |n_embd: usize, n_head: usize| match n_head {
            0 => None,
            h => Some(1.0 / ((n_embd / h) as f64).sqrt()),
        };
        match self {
            ModelConfig::Gpt(c) => head_scale(c.n_embd, c.n_head),
            ModelConfig::SetRegressor(c) => head_scale(c.n_embd, c.n_head),
            ModelConfig::Prototype(c) => Some(c.default_scale()),
        }
    }

    /// The attention metric's config name.
    pub fn metric(&self) -> crate::metric::MetricKind {
        match self {
            ModelConfig::Gpt(c) => c.attention.metric,
            ModelConfig::SetRegressor(c) => c.attention.metric,
            ModelConfig::Prototype(c) => c.attention.metric,
        }
    }
}

/// A built model of any kind.
#[derive(Debug, Clone)]
pub enum Model {
    /// Decoder-only language model.
    Gpt(Gpt),
    /// In-context interpolation over sets of points.
    SetRegressor(SetRegressor),
    /// McCarter's one-hidden-layer prototype network.
    Prototype(PrototypeNet),
}

impl Model {
    /// Validates `cfg` and creates the model's variables in `params`.
    pub fn new(cfg: &ModelConfig, params: &ParamStore) -> Result<Self> {
        let pb = params.root();
        Ok(match cfg {
            ModelConfig::Gpt(c) => Model::Gpt(Gpt::new(c, &pb)?),
            ModelConfig::SetRegressor(c) => Model::SetRegressor(SetRegressor::new(c, &pb)?),
            ModelConfig::Prototype(c) => Model::Prototype(PrototypeNet::new(c, &pb)?),
        })
    }

    /// A fresh model with weights initialised from `seed`, and its variables.
    pub fn init(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<(Self, ParamStore)> {
        let params = ParamStore::new(seed, device);
        let model = Self::new(cfg, &params)?;
        Ok((model, params))
    }

    /// This model in training mode for the step `key` names: a GPT applies its dropout
    /// ([`Gpt::training`]); the other kinds have none and are returned as they are.
    pub fn training(&self, key: crate::DropoutKey) -> Result<Self> {
        Ok(match self {
            Model::Gpt(g) => Model::Gpt(g.training(key)?),
            Model::SetRegressor(_) | Model::Prototype(_) => self.clone(),
        })
    }

    /// The GPT inside, if this is one.
    pub fn as_gpt(&self) -> Option<&Gpt> {
        match self {
            Model::Gpt(g) => Some(g),
            _ => None,
        }
    }

    /// The set regressor inside, if this is one.
    pub fn as_set_regressor(&self) -> Option<&SetRegressor> {
        match self {
            Model::SetRegressor(m) => Some(m),
            _ => None,
        }
    }

    /// The prototype network inside, if this is one.
    pub fn as_prototype(&self) -> Option<&PrototypeNet> {
        match self {
            Model::Prototype(m) => Some(m),
            _ => None,
        }
    }

    /// The kind's config name (`gpt`, `set_regressor`, `prototype`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Model::Gpt(_) => "gpt",
            Model::SetRegressor(_) => "set_regressor",
            Model::Prototype(_) => "prototype",
        }
    }
}
