//! Building blocks shared by the models: linear maps, norms, the MLP.

use candle_core::{Module, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::fused;
use crate::params::{Init, ParamBuilder};

/// Standard deviation of GPT-2 weight initialisation.
pub const INIT_STD: f64 = 0.02;

/// A linear map `(.., in) -> (.., out)` with weight `(out, in)` drawn from N(0, std^2) and an
/// optional zero-initialised bias, named `weight` / `bias` under `pb`.
pub fn linear(d_in: usize, d_out: usize, bias: bool, std: f64, pb: &ParamBuilder) -> Result<Linear> {
    let w = pb.var("weight", (d_out, d_in), Init::Normal { std })?;
    let b = if bias { Some(pb.var("bias", d_out, Init::Const(0.0))?) } else { None };
    Ok(Linear::new(w, b))
}

/// A linear map `y = x w^T + b`, `(.., in) -> (.., out)` with weight `(out, in)`: one fused node
/// ([`fused::linear`]) on the CPU, candle's `Linear` elsewhere.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Wraps a weight `(out, in)` and an optional bias `(out,)`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The weight `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `(out,)`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match fused::linear(x, &self.weight, self.bias.as_ref())? {
            Some(y) => Ok(y),
            None => candle_nn::Linear::new(self.weight.clone(), self.bias.clone()).forward(x),
        }
    }
}

/// Which normalisation the blocks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// `(x - mean) / sqrt(var + eps) * w (+ b)` over the channel axis.
    #[default]
    Layernorm,
    /// `x / sqrt(mean(x^2) + eps) * w`.
    Rmsnorm,
    /// Identity.
    None,
}

/// A normalisation layer over the last axis, `(.., c) -> (.., c)`: the project's fused kernels
/// with their own backward ([`fused::layer_norm`], [`fused::rms_norm`]; candle's fused
/// `layer_norm` has no backward), composed candle ops off the CPU.
#[derive(Debug, Clone)]
pub struct Norm {
    kind: NormKind,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
}

impl Norm {
    /// Creates `weight` (ones) and, for layer norm with `bias`, `bias` (zeros) under `pb`.
    pub fn new(kind: NormKind, c: usize, bias: bool, eps: f64, pb: &ParamBuilder) -> Result<Self> {
        let weight = match kind {
            NormKind::None => None,
            _ => Some(pb.var("weight", c, Init::Const(1.0))?),
        };
        let bias = match (kind, bias) {
            (NormKind::Layernorm, true) => Some(pb.var("bias", c, Init::Const(0.0))?),
            _ => None,
        };
        Ok(Self { kind, weight, bias, eps })
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match (self.kind, &self.weight) {
            (NormKind::None, _) => return Ok(x.clone()),
            (NormKind::Layernorm, Some(w)) => fused::layer_norm(x, w, self.eps)?,
            (NormKind::Rmsnorm, Some(w)) => fused::rms_norm(x, w, self.eps)?,
            (_, None) => candle_core::bail!("norm {:?} has no weight", self.kind),
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// The transformer MLP `proj(gelu(fc(x)))`, `(.., c) -> (.., c)` with hidden width `ratio * c`.
#[derive(Debug, Clone)]
pub struct Mlp {
    fc: Linear,
    proj: Linear,
}

impl Mlp {
    /// Creates `fc` and `proj` under `pb`; `proj_std` is the (residual-scaled) std of `proj`.
    pub fn new(c: usize, hidden: usize, bias: bool, proj_std: f64, pb: &ParamBuilder) -> Result<Self> {
        Ok(Self {
            fc: linear(c, hidden, bias, INIT_STD, &pb.pp("fc"))?,
            proj: linear(hidden, c, bias, proj_std, &pb.pp("proj"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj.forward(&fused::gelu(&self.fc.forward(x)?)?)
    }
}
