//! [`MetricSpec`]: the metric and its parameters, as they appear (flattened) in model configs.

use candle_core::{Result, bail};
use serde::{Deserialize, Serialize};

use super::MetricKind;
use super::table::{HeadParam, Input};

fn default_eps() -> f64 {
    1e-3
}
fn default_delta() -> f64 {
    1e-6
}
fn default_temperature() -> f64 {
    10.0
}
fn default_true() -> bool {
    true
}

/// The metric and its parameters, as they appear (flattened) in every model config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    /// Which metric (see [`MetricKind::ALL`]).
    #[serde(default)]
    pub metric: MetricKind,
    /// Power p of the distance for `neg_euclid`, `idw`, `inv_dist`, `rbf` (initial value when
    /// learned); `None` takes the metric's default ([`MetricKind::default_power`]: 1 for
    /// `neg_euclid`, 2 otherwise). Read it through [`MetricSpec::power`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f64>,
    /// eps in `idw` and `inv_dist`; must be > 0.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// delta added to the squared distance before fractional powers; keeps gradients finite at q == k.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Learn p per head (`idw` only).
    #[serde(default)]
    pub learn_power: bool,
    /// Initial per-head temperature of `cosine`.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Learn the `cosine` temperature.
    #[serde(default = "default_true")]
    pub learn_temperature: bool,
    /// Score scale of `dot`, `neg_sq_euclid`, `neg_euclid` (initial value when learned); `None`
    /// takes the model's default (`1/sqrt(d)` for a head of width d). Metrics without a score
    /// scale ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_scale: Option<f64>,
    /// Learn the score scale per head, stored as its log (`metric.log_scale`, `(h,)`, no weight
    /// decay) so that it stays positive. Metrics without a score scale ignore it.
    #[serde(default)]
    pub learn_scale: bool,
}

impl Default for MetricSpec {
    fn default() -> Self {
        Self::of(MetricKind::Dot)
    }
}

impl MetricSpec {
    /// The metric with default parameters (its default p, eps = 1e-3, delta = 1e-6, tau = 10).
    pub fn of(metric: MetricKind) -> Self {
        Self {
            metric,
            power: None,
            eps: default_eps(),
            delta: default_delta(),
            learn_power: false,
            temperature: default_temperature(),
            learn_temperature: true,
            attn_scale: None,
            learn_scale: false,
        }
    }

    /// The power p: the configured one, else the metric's default.
    pub fn power(&self) -> f64 {
        self.power.unwrap_or_else(|| self.metric.default_power())
    }

    /// The spec with every default the metric reads written out, so that a saved config means
    /// the same model under a later version whose defaults differ: `power` for the metrics
    /// whose score is a power of the distance ([`Input::DistPow`]: the metric's default p), and
    /// `attn_scale` for the metrics with a score scale ([`HeadParam::Scale`]: `default_scale`,
    /// the model's `1/sqrt(d)`). `eps`, `delta` and `temperature` always carry a value.
    pub fn resolved(&self, default_scale: f64) -> Self {
        let mut out = self.clone();
        if self.metric.input() == Input::DistPow {
            out.power = Some(self.power());
        }
        if self.metric.head_param() == HeadParam::Scale {
            out.attn_scale = Some(self.attn_scale.unwrap_or(default_scale));
        }
        out
    }

    /// Rejects parameters that make no sense, naming the field.
    pub fn validate(&self) -> Result<()> {
        let power = self.power();
        if !(power.is_finite() && power > 0.0) {
            bail!("power must be a finite number > 0, got {power}")
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            bail!("eps must be a finite number > 0, got {}", self.eps)
        }
        if !(self.delta.is_finite() && self.delta >= 0.0) {
            bail!("delta must be a finite number >= 0, got {}", self.delta)
        }
        if !self.temperature.is_finite() {
            bail!("temperature must be finite, got {}", self.temperature)
        }
        if let Some(s) = self.attn_scale
            && !(s.is_finite() && s > 0.0)
        {
            bail!("attn_scale must be a finite number > 0, got {s}")
        }
        if self.learn_power && self.metric.head_param() != HeadParam::Power {
            bail!("learn_power is only supported by the `idw` metric, not `{}`", self.metric)
        }
        Ok(())
    }
}
