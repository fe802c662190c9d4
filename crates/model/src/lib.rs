//! attnlab-model: the attention-metric layer, the models built on it, and checkpoints.
//!
//! Shape vocabulary: `b` batch, `t` sequence, `h` heads, `d` head width, `c` model width,
//! `v` vocabulary. The crate maps tensors to tensors; the only files it touches are checkpoints.

pub mod attention;
pub mod checkpoint;
pub mod config;
pub mod dropout;
pub mod files;
pub mod fused;
pub mod gpt;
pub mod gpu;
pub mod hub;
pub mod layers;
pub mod metric;
pub mod model;
pub mod params;
pub mod prototype;
pub mod qk;
pub mod route;
pub mod sample;
pub mod set_regressor;

pub use attention::{AttnProbe, MetricAttention, QkOptions};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use dropout::{Dropout, DropoutKey, Site};
pub use gpt::{Gpt, GptConfig};
pub use layers::NormKind;
pub use metric::{MetricKind, MetricLayer, MetricSpec, causal_mask, context_mask, sq_dists};
pub use model::{Model, ModelConfig};
pub use params::{Init, ParamBuilder, ParamStore};
pub use prototype::{Augmented, PrototypeConfig, PrototypeNet, key_distances};
pub use qk::{PosKind, PosSpec, QkNorm, QkSpec};
pub use route::{Job, Route};
pub use sample::{Sampling, generate, generate_masked, generate_streaming};
pub use set_regressor::{SetRegressor, SetRegressorConfig};
