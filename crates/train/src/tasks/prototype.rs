//! `prototype`: McCarter's (2023) prototype networks on two moons.
//!
//! The paper's recipe: noise 0.1, 100 points per moon for training and 20 per moon for
//! validation, batch 10, 25 epochs (500 steps), Adam lr 0.01 with cosine annealing. Batches walk
//! through a permutation of the training set per epoch; the epoch and its permutation are derived
//! from the step and the task seed, so a resumed run sees exactly the same batches.
//! Scores: `train_accuracy`, `val_accuracy`, `key_distances` (each key's distance to its
//! nearest training point: idw keys become prototypes on the data, dot keys do not),
//! `train_errors` (up to 20 misclassified training points `[x, y, label]`, candidates for
//! `attnlab augment`) and the `data_mean` / `data_std` the keys were initialised around.

use anyhow::{Result, bail};
use attnlab_model::{Model, ModelConfig, PrototypeConfig, PrototypeNet, key_distances};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::moons::{Points, two_moons};
use super::report::{Column, FRACTION_MARGIN, Picture, Question, RELATIVE_MARGIN, TaskReport, Unit};
use crate::task::{Batch, Task, TaskContext, TaskName, TaskSpec};

fn default_noise() -> f64 {
    0.1
}
fn default_train_per_class() -> usize {
    100
}
fn default_val_per_class() -> usize {
    20
}
fn default_dataset() -> String {
    "moons".into()
}

/// `[task]` of a `prototype` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrototypeTaskConfig {
    /// The data set; only `moons` (two moons) for now.
    #[serde(default = "default_dataset")]
    pub dataset: String,
    /// Standard deviation of the Gaussian noise on every coordinate.
    #[serde(default = "default_noise")]
    pub noise: f64,
    /// Training points per class.
    #[serde(default = "default_train_per_class")]
    pub train_per_class: usize,
    /// Validation points per class.
    #[serde(default = "default_val_per_class")]
    pub val_per_class: usize,
}

/// Scores of a prototype run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrototypeScores {
    /// The score function's name (`idw`, `dot`, `fc-relu`, ...).
    pub score: String,
    /// Number of prototypes (key/value pairs).
    pub n_protos: usize,
    /// Accuracy on the training points.
    pub train_accuracy: f64,
    /// Accuracy on the validation points.
    pub val_accuracy: f64,
    /// Each key's distance to its nearest training point.
    pub key_distances: KeyDistances,
    /// Up to 20 misclassified training points `[x, y, label]` (candidates for augmentation).
    pub train_errors: Vec<[f64; 3]>,
    /// Per-feature mean of the training points (around which keys were initialised).
    pub data_mean: Vec<f64>,
    /// Per-feature standard deviation of the training points.
    pub data_std: Vec<f64>,
}

/// Min, median, mean and max of the key-to-data distances, and the list itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyDistances {
    /// Smallest distance.
    pub min: f64,
    /// Median distance.
    pub median: f64,
    /// Mean distance.
    pub mean: f64,
    /// Largest distance.
    pub max: f64,
    /// Every key's distance, in key order.
    pub per_key: Vec<f64>,
}

impl TaskSpec for PrototypeTaskConfig {
    type Task = PrototypeTask;

    /// The report: losses, accuracies, key-to-data distances, steps and wall time (throughput
    /// means nothing for a few hundred points); pictures of keys and decision regions.
    fn report(&self) -> TaskReport {
        let task = [
            Column::higher("val_accuracy", "val acc", Unit::Fraction, 3).within(FRACTION_MARGIN),
            Column::higher("train_accuracy", "train acc", Unit::Fraction, 3).within(FRACTION_MARGIN),
            Column::lower("key_distances.median", "key→data median", Unit::Distance, 3)
                .within(RELATIVE_MARGIN)
                .informs(Question::Geometry),
            Column::lower("key_distances.max", "key→data max", Unit::Distance, 3).within(RELATIVE_MARGIN),
        ];
        TaskReport::of(&task, false, vec![Picture::PrototypeMaps])
    }

    fn build(&self, cx: &TaskContext) -> Result<PrototypeTask> {
        PrototypeTask::new(self, cx.seed, &cx.env.device)
    }

    fn validate(&self) -> Result<()> {
        if self.dataset != "moons" {
            bail!("task.dataset `{}` is unknown (expected `moons`)", self.dataset)
        }
        for (name, v) in [("train_per_class", self.train_per_class), ("val_per_class", self.val_per_class)] {
            if v == 0 {
                bail!("task.{name} must be at least 1")
            }
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            bail!("task.noise must be a finite number >= 0, got {}", self.noise)
        }
        Ok(())
    }
}

impl Default for PrototypeTaskConfig {
    fn default() -> Self {
        Self {
            dataset: default_dataset(),
            noise: default_noise(),
            train_per_class: default_train_per_class(),
            val_per_class: default_val_per_class(),
        }
    }
}

/// The `prototype` task.
pub struct PrototypeTask {
    seed: u64,
    train: Points,
    val: Points,
    train_x: Tensor,
    train_y: Tensor,
    val_batches: Vec<Batch>,
}

/// Number of classes and features of two moons.
const N_CLASSES: usize = 2;
const N_FEATURES: usize = 2;

impl PrototypeTask {
    /// Generates the training (stream 1) and validation (stream 2) sets from `seed`.
    pub fn new(cfg: &PrototypeTaskConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let train = two_moons(cfg.train_per_class, cfg.noise, seed, 1)?;
        let val = two_moons(cfg.val_per_class, cfg.noise, seed, 2)?;
        let (train_x, train_y) = tensors(&train, device)?;
        let (vx, vy) = tensors(&val, device)?;
        let val_batches = vec![Batch { n_items: val.x.len(), inputs: vec![vx], targets: vy, weights: None }];
        Ok(Self { seed, train, val, train_x, train_y, val_batches })
    }

    /// The training points.
    pub fn train_points(&self) -> &Points {
        &self.train
    }

    /// The validation points.
    pub fn val_points(&self) -> &Points {
        &self.val
    }

    /// Fills in what the model config takes from the data: per-feature mean and std of the
    /// training set (for the keys' initialisation), unless already set; checks features/classes.
    pub fn prepare_model(&self, cfg: &mut PrototypeConfig) -> Result<()> {
        if cfg.n_features != N_FEATURES || cfg.n_classes != N_CLASSES {
            bail!(
                "two moons have {N_FEATURES} features and {N_CLASSES} classes, but the model has \
                 model.n_features = {} and model.n_classes = {}",
                cfg.n_features,
                cfg.n_classes
            )
        }
        let (mean, std) = self.train.stats();
        cfg.data_mean.get_or_insert(mean);
        cfg.data_std.get_or_insert(std);
        Ok(())
    }

    /// Accuracy of `net` on `points`.
    pub fn accuracy(net: &PrototypeNet, points: &Points) -> Result<f64> {
        let (x, _) = tensors(points, net.keys().device())?;
        let pred: Vec<u32> = net.forward(&x)?.argmax(1)?.to_vec1()?;
        let right = pred.iter().zip(&points.label).filter(|(p, l)| p == l).count();
        Ok(right as f64 / points.label.len() as f64)
    }
}

/// Points `(n, 2)` and labels `(n,)`.
fn tensors(p: &Points, device: &Device) -> Result<(Tensor, Tensor)> {
    let x: Vec<f32> = p.x.iter().flatten().map(|v| *v as f32).collect();
    Ok((Tensor::from_vec(x, (p.x.len(), 2), device)?, Tensor::new(p.label.as_slice(), device)?))
}

/// The prototype network inside `model`, or an error naming what the task needs.
fn proto(model: &Model) -> Result<&PrototypeNet> {
    let Some(net) = model.as_prototype() else {
        bail!(
            "the {} task needs model.kind = \"prototype\", got `{}`",
            PrototypeTaskConfig::NAME,
            model.kind_name()
        )
    };
    let c = net.config();
    if c.n_features != N_FEATURES || c.n_classes != N_CLASSES {
        bail!(
            "two moons need model.n_features = 2 and model.n_classes = 2, got {} and {}",
            c.n_features,
            c.n_classes
        )
    }
    Ok(net)
}

/// Up to `limit` misclassified points of `points` as `[x, y, label]` (candidates for augmentation).
fn misclassified(net: &PrototypeNet, points: &Points, limit: usize) -> Result<Vec<[f64; 3]>> {
    let (x, _) = tensors(points, net.keys().device())?;
    let pred: Vec<u32> = net.forward(&x)?.argmax(1)?.to_vec1()?;
    Ok(points
        .x
        .iter()
        .zip(&points.label)
        .zip(&pred)
        .filter(|((_, l), p)| l != p)
        .take(limit)
        .map(|((x, l), _)| [x[0], x[1], *l as f64])
        .collect())
}

/// Min, median, mean and max of `v`, and the list itself; an empty list is an error.
fn summary(v: &[f64]) -> Result<KeyDistances> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let (Some(&min), Some(&max)) = (s.first(), s.last()) else { bail!("a prototype network without keys") };
    let median = if s.len() % 2 == 1 { s[s.len() / 2] } else { (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0 };
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    Ok(KeyDistances { min, median, mean, max, per_key: v.to_vec() })
}

impl Task for PrototypeTask {
    type Scores = PrototypeScores;

    fn configure_model(&self, model: &mut ModelConfig) -> Result<()> {
        match model {
            ModelConfig::Prototype(cfg) => self.prepare_model(cfg),
            _ => bail!("the {} task needs model.kind = \"prototype\"", PrototypeTaskConfig::NAME),
        }
    }

    fn train_batch(&mut self, step: usize, _rng: &mut ChaCha8Rng, batch_size: usize) -> Result<Batch> {
        if batch_size == 0 {
            bail!("train.batch_size must be at least 1")
        }
        let n = self.train.x.len();
        let per_epoch = n.div_ceil(batch_size);
        let (epoch, i) = (step / per_epoch, step % per_epoch);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(1000 + epoch as u64);
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.shuffle(&mut rng);
        let idx = &perm[i * batch_size..((i + 1) * batch_size).min(n)];
        let idx_t = Tensor::new(idx, self.train_x.device())?;
        Ok(Batch {
            inputs: vec![self.train_x.index_select(&idx_t, 0)?],
            targets: self.train_y.index_select(&idx_t, 0)?,
            weights: None,
            n_items: idx.len(),
        })
    }

    fn val_batches(&self) -> &[Batch] {
        &self.val_batches
    }

    fn loss(&self, model: &Model, batch: &Batch) -> Result<Tensor> {
        let net = proto(model)?;
        let [x] = batch.inputs.as_slice() else { bail!("a prototype batch has one input") };
        Ok(candle_nn::loss::cross_entropy(&net.forward(x)?, &batch.targets)?)
    }

    fn scores(&self, model: &Model) -> Result<PrototypeScores> {
        let net = proto(model)?;
        let (data_mean, data_std) = self.train.stats();
        Ok(PrototypeScores {
            score: net.config().score_name().to_string(),
            n_protos: net.config().n_protos,
            train_accuracy: Self::accuracy(net, &self.train)?,
            val_accuracy: Self::accuracy(net, &self.val)?,
            key_distances: summary(&key_distances(net.keys(), &self.train_x)?)?,
            train_errors: misclassified(net, &self.train, 20)?,
            data_mean,
            data_std,
        })
    }
}
