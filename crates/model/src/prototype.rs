//! McCarter's (2023) one-hidden-layer prototype network and its low-impact augmentation.
//!
//! Learned keys `K` `(p, f)` (prototypes) and values `V` `(p, classes)` (their logits); for
//! inputs `x` `(b, f)` the logits are `weights(x, K) V` `(b, classes)`, with the weights of any
//! [`MetricLayer`] (queries `x` as `(1, 1, b, f)`, keys `(1, 1, p, f)`), or the paper's `fc-relu`
//! baseline `relu(x K^T) V`. With the `idw` metric the weights are Shepard's
//! `(eps + |x - k_j|^p)^-1 / sum_j (...)`, keys become prototypes on the data and one hand-made
//! key/value pair can fix one prediction while barely touching far-away ones
//! ([`PrototypeNet::augment`]).
//!
//! Scales follow the paper's reference code: `dot` uses `1/sqrt(n_protos)`, `neg_sq_euclid` and
//! `neg_euclid` use 1 (the paper's `neg-dist`).

use candle_core::{Result, Tensor, Var, bail};
use serde::{Deserialize, Serialize};

use crate::metric::table::Input;
use crate::metric::{MetricKind, MetricLayer, MetricSpec};
use crate::params::{Init, ParamBuilder, ParamStore};

/// Configuration of a [`PrototypeNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrototypeConfig {
    /// Input features `f`.
    pub n_features: usize,
    /// Output classes.
    pub n_classes: usize,
    /// Number of prototypes `p` (keys and values).
    pub n_protos: usize,
    /// The paper's `fc-relu` baseline `relu(x K^T) V` instead of attention (the metric is unused).
    #[serde(default)]
    pub fc_relu: bool,
    /// The attention metric and its parameters.
    #[serde(flatten)]
    pub attention: MetricSpec,
    /// Per-feature mean of the training data: distance-type metrics draw their keys from
    /// N(data_mean, (0.1 data_std)^2). Set by the task before the model is built (not part of
    /// the saved config, so runs that differ only in seed compare as one configuration; the
    /// task records the values in its scores); 0 when absent.
    #[serde(skip)]
    pub data_mean: Option<Vec<f64>>,
    /// Per-feature standard deviation of the training data (see `data_mean`); 1 when absent.
    #[serde(skip)]
    pub data_std: Option<Vec<f64>>,
}

impl PrototypeConfig {
    /// The score scale where `attn_scale` is unset, the paper's: `1/sqrt(n_protos)` for `dot`,
    /// 1 for the distances (metrics without a score scale ignore it).
    pub fn default_scale(&self) -> f64 {
        match self.attention.metric.input() {
            Input::Dot => 1.0 / (self.n_protos as f64).sqrt(),
            Input::SqDist | Input::DistPow | Input::UnitDot => 1.0,
        }
    }

    /// `n_protos` prototypes over `n_features` inputs and `n_classes` classes, with `metric`.
    pub fn new(n_features: usize, n_classes: usize, n_protos: usize, metric: MetricKind) -> Self {
        Self {
            n_features,
            n_classes,
            n_protos,
            fc_relu: false,
            attention: MetricSpec::of(metric),
            data_mean: None,
            data_std: None,
        }
    }

    /// The score's name for reports: the metric, or `fc_relu`.
    pub fn score_name(&self) -> &'static str {
        if self.fc_relu { "fc_relu" } else { self.attention.metric.name() }
    }

    /// Rejects a config that does not make sense, naming the field.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in
            [("n_features", self.n_features), ("n_classes", self.n_classes), ("n_protos", self.n_protos)]
        {
            if v == 0 {
                bail!("model.{name} must be at least 1")
            }
        }
        for (name, stats) in [("data_mean", &self.data_mean), ("data_std", &self.data_std)] {
            let Some(v) = stats else { continue };
            if v.len() != self.n_features {
                bail!("model.{name} has {} entries but model.n_features is {}", v.len(), self.n_features)
            }
            if let Some(x) = v.iter().find(|x| !x.is_finite() || (name == "data_std" && **x < 0.0)) {
                bail!("model.{name} must hold finite numbers (std >= 0), got {x}")
            }
        }
        self.attention.validate().map_err(|e| candle_core::Error::Msg(format!("model.{e}")))
    }

    /// Whether keys start around the data (every score but `dot` and `fc-relu`, as in the paper).
    fn data_init(&self) -> bool {
        !self.fc_relu && self.attention.metric != MetricKind::Dot
    }
}

/// McCarter's prototype network: `(b, f)` inputs to `(b, classes)` logits.
#[derive(Debug, Clone)]
pub struct PrototypeNet {
    cfg: PrototypeConfig,
    keys: Tensor,
    values: Tensor,
    metric: MetricLayer,
}

impl PrototypeNet {
    /// Validates `cfg` and creates `keys` `(p, f)`, `values` `(p, classes)` (and `metric.*`)
    /// under `pb`. Initialisation follows the paper's code: `fc-relu` and `dot` draw keys from
    /// N(0, 2/f) and values from N(0, 2/classes) (Kaiming-normal, where the paper has
    /// Kaiming-uniform of the same variance); every other metric draws keys from
    /// N(data_mean, (0.1 data_std)^2) per feature and sets the values to zero.
    pub fn new(cfg: &PrototypeConfig, pb: &ParamBuilder) -> Result<Self> {
        cfg.validate()?;
        let (p, f, k) = (cfg.n_protos, cfg.n_features, cfg.n_classes);
        let (keys, values) = if cfg.data_init() {
            let z = pb.var("keys", (p, f), Init::Normal { std: 1.0 })?;
            let mean = cfg.data_mean.clone().unwrap_or_else(|| vec![0.0; f]);
            let std = cfg.data_std.clone().unwrap_or_else(|| vec![1.0; f]);
            let mean = Tensor::from_vec(mean.iter().map(|v| *v as f32).collect(), (1, f), pb.device())?;
            let std = Tensor::from_vec(std.iter().map(|v| 0.1 * *v as f32).collect(), (1, f), pb.device())?;
            let init = z.broadcast_mul(&std)?.broadcast_add(&mean)?;
            // `z` is the variable's own tensor: `Var::from_tensor` shares its storage.
            Var::from_tensor(&z)?.set(&init)?;
            (z, pb.var("values", (p, k), Init::Const(0.0))?)
        } else {
            let keys = pb.var("keys", (p, f), Init::Normal { std: (2.0 / f as f64).sqrt() })?;
            (keys, pb.var("values", (p, k), Init::Normal { std: (2.0 / k as f64).sqrt() })?)
        };
        let metric =
            MetricLayer::with_default_scale(&cfg.attention, 1, cfg.default_scale(), &pb.pp("metric"))?;
        Ok(Self { cfg: cfg.clone(), keys, values, metric })
    }

    /// The configuration.
    pub fn config(&self) -> &PrototypeConfig {
        &self.cfg
    }

    /// The keys (prototypes) `(p, f)`.
    pub fn keys(&self) -> &Tensor {
        &self.keys
    }

    /// The values (prototype logits) `(p, classes)`.
    pub fn values(&self) -> &Tensor {
        &self.values
    }

    /// The metric layer.
    pub fn metric(&self) -> &MetricLayer {
        &self.metric
    }

    /// Attention weights `(b, p)` of inputs `(b, f)` over the keys (an error for `fc-relu`).
    pub fn weights(&self, x: &Tensor) -> Result<Tensor> {
        if self.cfg.fc_relu {
            bail!("the fc-relu prototype network has no attention weights")
        }
        let (q, k) = self.as_heads(x)?;
        let (b, p) = (q.dim(2)?, k.dim(2)?);
        self.metric.weights(&q, &k, None)?.reshape((b, p))
    }

    /// Logits `(b, classes)` of inputs `(b, f)`: `weights(x, K) V`, or `relu(x K^T) V`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = if self.cfg.fc_relu {
            self.check_input(x)?;
            x.matmul(&self.keys.t()?)?.relu()? // (b, p)
        } else {
            self.weights(x)?
        };
        h.matmul(&self.values)
    }

    /// Inputs `(b, f)` and keys as one-head attention tensors `(1, 1, b, f)`, `(1, 1, p, f)`.
    fn as_heads(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.check_input(x)?;
        Ok((x.unsqueeze(0)?.unsqueeze(0)?, self.keys.unsqueeze(0)?.unsqueeze(0)?))
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        match x.dims() {
            [_, f] if *f == self.cfg.n_features => Ok(()),
            d => bail!("prototype network expects inputs (b, {}), got {d:?}", self.cfg.n_features),
        }
    }
}

/// The result of [`PrototypeNet::augment`]: the new network and its variables.
pub struct Augmented {
    /// The new configuration (`n_protos` one larger when a pair was added).
    pub config: PrototypeConfig,
    /// The new variables.
    pub params: ParamStore,
    /// The new network.
    pub model: PrototypeNet,
    /// `eta`, the size of the new value; `<= 0` means the point already had the class and
    /// nothing was changed.
    pub eta: f64,
}

impl PrototypeNet {
    /// Low-impact augmentation (McCarter 2023, `idw` only): makes `point` `(f,)` be classified as
    /// `class` by adding a key/value pair (or replacing pair `replace`): key `point`, value
    /// `eta * onehot(class)` with `eta = (1 + S / w0) (max_j logit_j - logit_class)`, where `S`
    /// is the sum of the unnormalised weights `(eps + |x - k_j|^p)^-1` at the point and
    /// `w0 = (eps + delta^(p/2))^-1` the weight of a key at distance zero (so with `delta = 0`
    /// this is the paper's `(1 + eps S)`). `params` are this network's variables.
    pub fn augment(
        &self,
        params: &ParamStore,
        point: &[f64],
        class: usize,
        replace: Option<usize>,
    ) -> Result<Augmented> {
        let cfg = &self.cfg;
        if cfg.fc_relu || cfg.attention.metric != MetricKind::Idw {
            bail!(
                "low-impact augmentation needs the `idw` metric, but this network uses `{}`",
                cfg.score_name()
            )
        }
        if class >= cfg.n_classes {
            bail!(
                "class {class} is out of range: the network has {} classes (0..={})",
                cfg.n_classes,
                cfg.n_classes - 1
            )
        }
        if point.len() != cfg.n_features || point.iter().any(|v| !v.is_finite()) {
            bail!("the point must be {} finite numbers, got {point:?}", cfg.n_features)
        }
        if let Some(r) = replace.filter(|r| *r >= cfg.n_protos) {
            bail!("cannot replace prototype {r}: the network has {} (0..={})", cfg.n_protos, cfg.n_protos - 1)
        }
        let dev = self.keys.device();
        let x = Tensor::from_vec(point.iter().map(|v| *v as f32).collect(), (1, cfg.n_features), dev)?;
        let (q, k) = self.as_heads(&x)?;
        let s = self.metric.scores(&q, &k)?.exp()?.sum_all()?.to_scalar::<f32>()? as f64;
        let w0 = self.metric.scores(&q, &q)?.exp()?.sum_all()?.to_scalar::<f32>()? as f64;
        let logits: Vec<f32> = self.forward(&x)?.flatten_all()?.to_vec1()?;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let eta = (1.0 + s / w0) * (max - logits[class] as f64);
        let mut new_cfg = cfg.clone();
        let mut tensors = params.tensors();
        if eta > 0.0 {
            let mut onehot = vec![0f32; cfg.n_classes];
            onehot[class] = eta as f32;
            let v = Tensor::from_vec(onehot, (1, cfg.n_classes), dev)?;
            let (keys, values) = match replace {
                None => {
                    new_cfg.n_protos += 1;
                    (Tensor::cat(&[&self.keys, &x], 0)?, Tensor::cat(&[&self.values, &v], 0)?)
                }
                Some(r) => (replace_row(&self.keys, r, &x)?, replace_row(&self.values, r, &v)?),
            };
            tensors.insert("keys".into(), keys.detach());
            tensors.insert("values".into(), values.detach());
        }
        let new_params = ParamStore::new(0, dev);
        let model = PrototypeNet::new(&new_cfg, &new_params.root())?;
        new_params.assign_from(tensors)?;
        Ok(Augmented { config: new_cfg, params: new_params, model, eta })
    }
}

/// `t` `(p, n)` with row `r` replaced by `row` `(1, n)`.
fn replace_row(t: &Tensor, r: usize, row: &Tensor) -> Result<Tensor> {
    let p = t.dim(0)?;
    let mut parts = Vec::with_capacity(3);
    if r > 0 {
        parts.push(t.narrow(0, 0, r)?);
    }
    parts.push(row.clone());
    if r + 1 < p {
        parts.push(t.narrow(0, r + 1, p - r - 1)?);
    }
    Tensor::cat(&parts, 0)
}

/// Distance of every key to its nearest data point: keys `(p, f)`, data `(n, f)` -> `p` values,
/// computed pairwise in f64 (no cancellation for keys that sit on a data point).
pub fn key_distances(keys: &Tensor, data: &Tensor) -> Result<Vec<f64>> {
    let keys: Vec<Vec<f32>> = keys.to_vec2()?;
    let data: Vec<Vec<f32>> = data.to_vec2()?;
    Ok(keys
        .iter()
        .map(|k| {
            data.iter()
                .map(|x| k.iter().zip(x).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>())
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .collect())
}
