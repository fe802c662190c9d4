//! The model kinds a checkpoint can hold, chosen by `kind` in the config.

use candle_core::{Device, Result};
use serde::{Deserialize, Serialize};

use crate::gpt::{Gpt, GptConfig};
use crate::params::ParamStore;

/// Configuration of any model; `kind` selects the variant (`gpt`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// Decoder-only language model.
    Gpt(GptConfig),
}

impl ModelConfig {
    /// Rejects a config that does not make sense, naming the field.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Gpt(c) => c.validate(),
        }
    }

    /// The attention metric's config name.
    pub fn metric(&self) -> crate::metric::MetricKind {
        match self {
            ModelConfig::Gpt(c) => c.attention.metric,
        }
    }
}

/// A built model of any kind.
#[derive(Debug, Clone)]
pub enum Model {
    /// Decoder-only language model.
    Gpt(Gpt),
}

impl Model {
    /// Validates `cfg` and creates the model's variables in `params`.
    pub fn new(cfg: &ModelConfig, params: &ParamStore) -> Result<Self> {
        let pb = params.root();
        Ok(match cfg {
            ModelConfig::Gpt(c) => Model::Gpt(Gpt::new(c, &pb)?),
        })
    }

    /// A fresh model with weights initialised from `seed`, and its variables.
    pub fn init(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<(Self, ParamStore)> {
        let params = ParamStore::new(seed, device);
        let model = Self::new(cfg, &params)?;
        Ok((model, params))
    }

    /// The GPT inside, if this is one.
    pub fn as_gpt(&self) -> Option<&Gpt> {
        match self {
            Model::Gpt(g) => Some(g),
        }
    }
}
