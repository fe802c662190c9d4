//! `regression`: in-context regression with a [`SetRegressor`], after Garg et al. (2022, "What
//! can transformers learn in context? A case study of simple function classes").
//!
//! Every prompt draws a function `f` of the family `task.function` on `R^dim`, then context
//! points `(x_i, f(x_i) + noise * e_i)` (`e_i ~ N(0, 1)`) and query points `x` with targets
//! `f(x)` (noiseless: the error measures how well `f` is recovered). Families:
//!
//! - `linear`: `f(x) = w . x`, `w ~ N(0, I / dim)`;
//! - `sparse_linear`: the same with `sparsity` non-zero coordinates on a uniform random support,
//!   each `N(0, 1 / sparsity)`;
//! - `relu_net`: `f(x) = sum_{j=1..hidden} a_j relu(w_j . x)`, `a_j ~ N(0, 2 / hidden)`,
//!   `w_j ~ N(0, I / dim)` (Garg et al.'s 2-layer network, inputs scaled by `1 / sqrt(dim)`);
//! - `bumps`: the `scattered` task's Gaussian bumps on a linear trend ([`SmoothFn`]).
//!
//! Points are `N(0, I)` for the first three families (Garg et al.'s) and uniform in `[0, 1]^dim`
//! for `bumps`. The first three are scaled so that `E[f(x)^2] = 1`: their squared error is
//! Garg et al.'s "squared error normalised by d" (they draw `w ~ N(0, I)`, so `E[y^2] = d`), and
//! predicting 0 scores 1.
//!
//! Each training batch has one context size `n`, uniform in `1..=n_context`, so one model
//! learns every prompt length; validation prompts have `n_context` points, and the scores give
//! the error curve against the number of in-context examples beside the classical baselines
//! ([`super::icl_curve`]).

use anyhow::{Result, bail};
use attnlab_model::{Model, ModelConfig, SetRegressor};
use candle_core::{Device, Tensor};
use rand::seq::index::sample as sample_indices;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::icl_curve::{RegressionScores, error_curve};
use super::models::{set_regressor_of, set_regressor_of_dim};
use super::report::{Column, Picture, RELATIVE_MARGIN, TaskReport, Unit};
use super::scattered::{Problem, SmoothFn, to_batch};
use crate::task::{Batch, Task, TaskContext, TaskName, TaskSpec};

fn default_n_query() -> usize {
    16
}
fn default_val_functions() -> usize {
    128
}

/// The function family of a `regression` task (`task.function`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionFamily {
    /// `w . x`, `w ~ N(0, I / dim)`.
    Linear,
    /// `w . x` with `sparsity` non-zero coordinates.
    SparseLinear,
    /// A 2-layer ReLU network with `hidden` units.
    ReluNet,
    /// Gaussian bumps on a linear trend on `[0, 1]^dim`.
    Bumps,
}

/// `[task]` of a `regression` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionConfig {
    /// The function family.
    pub function: FunctionFamily,
    /// Input dimension `d` (must equal `model.dim`).
    pub dim: usize,
    /// Largest number of context points (at least `2 * dim`: the curve runs to `2d` and beyond).
    pub n_context: usize,
    /// Query points per prompt.
    #[serde(default = "default_n_query")]
    pub n_query: usize,
    /// Standard deviation of the Gaussian noise on the context values (0: none).
    #[serde(default)]
    pub noise: f64,
    /// Non-zero coordinates of `w` (`sparse_linear` only; default `min(3, dim)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparsity: Option<usize>,
    /// Hidden units (`relu_net` only; default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<usize>,
    /// Prompts in the fixed validation set.
    #[serde(default = "default_val_functions")]
    pub val_functions: usize,
}

impl RegressionConfig {
    /// A config with the defaults for the optional keys.
    pub fn new(function: FunctionFamily, dim: usize, n_context: usize) -> Self {
        Self {
            function,
            dim,
            n_context,
            n_query: default_n_query(),
            noise: 0.0,
            sparsity: None,
            hidden: None,
            val_functions: default_val_functions(),
        }
    }

    /// Non-zero coordinates of a `sparse_linear` weight vector.
    pub fn sparsity(&self) -> usize {
        self.sparsity.unwrap_or(self.dim.min(3))
    }

    /// Hidden units of a `relu_net`.
    pub fn hidden(&self) -> usize {
        self.hidden.unwrap_or(100)
    }
}

impl TaskSpec for RegressionConfig {
    type Task = RegressionTask;

    fn build(&self, cx: &TaskContext) -> Result<RegressionTask> {
        RegressionTask::new(self, cx.seed, &cx.env.device)
    }

    fn validate(&self) -> Result<()> {
        for (name, v) in [("dim", self.dim), ("n_query", self.n_query), ("val_functions", self.val_functions)]
        {
            if v == 0 {
                bail!("task.{name} must be at least 1 (got 0)")
            }
        }
        if self.n_context < 2 * self.dim {
            bail!(
                "task.n_context ({}) must be at least 2 * task.dim ({}): the error curve runs to 2d examples",
                self.n_context,
                2 * self.dim
            )
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            bail!("task.noise must be a finite number >= 0, got {}", self.noise)
        }
        let family = self.function;
        if self.sparsity.is_some() && family != FunctionFamily::SparseLinear {
            bail!("task.sparsity applies only to function = \"sparse_linear\"")
        }
        if self.hidden.is_some() && family != FunctionFamily::ReluNet {
            bail!("task.hidden applies only to function = \"relu_net\"")
        }
        if !(1..=self.dim).contains(&self.sparsity()) {
            bail!("task.sparsity must be in 1..=task.dim ({}), got {}", self.dim, self.sparsity())
        }
        if self.hidden() == 0 {
            bail!("task.hidden must be at least 1 (got 0)")
        }
        Ok(())
    }

    /// The report: losses, the model's error at `d` and `2d` examples beside least squares and
    /// Nadaraya-Watson at `2d`, cost; the error-curve picture.
    fn report(&self) -> TaskReport {
        let task = [
            Column::lower("at_d.model", "err n=d", Unit::SquaredError, 4).within(RELATIVE_MARGIN),
            Column::lower("at_2d.model", "err n=2d", Unit::SquaredError, 4).within(RELATIVE_MARGIN),
            Column::lower("at_2d.least_squares", "LS n=2d", Unit::SquaredError, 4).within(RELATIVE_MARGIN),
            Column::lower("at_2d.nadaraya_watson", "NW n=2d", Unit::SquaredError, 4).within(RELATIVE_MARGIN),
        ];
        TaskReport::of(&task, true, vec![Picture::ErrorByContextSize])
    }
}

/// One function of a family.
#[derive(Debug, Clone, PartialEq)]
pub enum Function {
    /// `w . x` (`linear`, `sparse_linear`).
    Linear(Vec<f64>),
    /// `sum_j a_j relu(w_j . x)`.
    ReluNet {
        /// Input weights `w_j`, `hidden` rows of `dim`.
        w: Vec<Vec<f64>>,
        /// Output weights `a_j`.
        a: Vec<f64>,
    },
    /// Gaussian bumps on a linear trend.
    Bumps(SmoothFn),
}

fn normal(rng: &mut ChaCha8Rng, std: f64) -> f64 {
    std * rng.sample::<f64, _>(StandardNormal)
}

impl Function {
    /// Draws a function of `cfg`'s family (distributions in the module docs).
    pub fn sample(cfg: &RegressionConfig, rng: &mut ChaCha8Rng) -> Self {
        let d = cfg.dim;
        let gauss = |rng: &mut ChaCha8Rng, n: usize, std: f64| (0..n).map(|_| normal(rng, std)).collect();
        match cfg.function {
            FunctionFamily::Linear => Function::Linear(gauss(rng, d, (1.0 / d as f64).sqrt())),
            FunctionFamily::SparseLinear => {
                let s = cfg.sparsity();
                let mut w = vec![0.0; d];
                for i in sample_indices(rng, d, s).into_vec() {
                    w[i] = normal(rng, (1.0 / s as f64).sqrt());
                }
                Function::Linear(w)
            }
            FunctionFamily::ReluNet => {
                let r = cfg.hidden();
                let w = (0..r).map(|_| gauss(rng, d, (1.0 / d as f64).sqrt())).collect();
                Function::ReluNet { w, a: gauss(rng, r, (2.0 / r as f64).sqrt()) }
            }
            FunctionFamily::Bumps => Function::Bumps(SmoothFn::sample(d, rng)),
        }
    }

    /// The value at `x`.
    pub fn eval(&self, x: &[f64]) -> f64 {
        let dot = |w: &[f64]| w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
        match self {
            Function::Linear(w) => dot(w),
            Function::ReluNet { w, a } => w.iter().zip(a).map(|(wj, aj)| aj * dot(wj).max(0.0)).sum(),
            Function::Bumps(f) => f.eval(x),
        }
    }
}

/// A point of `family`'s input distribution on `R^dim`.
fn sample_x(family: FunctionFamily, dim: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    match family {
        FunctionFamily::Linear | FunctionFamily::SparseLinear | FunctionFamily::ReluNet => {
            (0..dim).map(|_| normal(rng, 1.0)).collect()
        }
        FunctionFamily::Bumps => (0..dim).map(|_| rng.random_range(0.0..1.0)).collect(),
    }
}

/// A prompt of `f`: `n` context points with noisy values and `cfg.n_query` queries with
/// noiseless targets.
pub fn sample_prompt_of(f: &Function, cfg: &RegressionConfig, n: usize, rng: &mut ChaCha8Rng) -> Problem {
    let ctx_x: Vec<Vec<f64>> = (0..n).map(|_| sample_x(cfg.function, cfg.dim, rng)).collect();
    let ctx_y = ctx_x.iter().map(|x| f.eval(x) + normal(rng, cfg.noise)).collect();
    let query_x: Vec<Vec<f64>> = (0..cfg.n_query).map(|_| sample_x(cfg.function, cfg.dim, rng)).collect();
    let query_y = query_x.iter().map(|x| f.eval(x)).collect();
    Problem { ctx_x, ctx_y, query_x, query_y }
}

/// A prompt of a fresh function of the family with `n` context points.
pub fn sample_prompt(cfg: &RegressionConfig, n: usize, rng: &mut ChaCha8Rng) -> Problem {
    let f = Function::sample(cfg, rng);
    sample_prompt_of(&f, cfg, n, rng)
}

/// Validation prompts per batch.
const VAL_BATCH: usize = 32;
/// Prompts of the training distribution on which Nadaraya-Watson's bandwidth is chosen.
pub const TUNE_FUNCTIONS: usize = 64;

/// The `regression` task.
pub struct RegressionTask {
    cfg: RegressionConfig,
    device: Device,
    val_problems: Vec<Problem>,
    tune_problems: Vec<Problem>,
    val: Vec<Batch>,
}

impl RegressionTask {
    /// Validates `cfg`; draws the fixed validation prompts (stream 1 of `seed`) and the
    /// bandwidth-tuning prompts (stream 2), both with `n_context` points.
    pub fn new(cfg: &RegressionConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let draw = |stream: u64, count: usize| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(stream);
            (0..count).map(|_| sample_prompt(cfg, cfg.n_context, &mut rng)).collect::<Vec<_>>()
        };
        let (val_problems, tune_problems) = (draw(1, cfg.val_functions), draw(2, TUNE_FUNCTIONS));
        let val = val_problems.chunks(VAL_BATCH).map(|c| to_batch(c, device)).collect::<Result<_>>()?;
        Ok(Self { cfg: cfg.clone(), device: device.clone(), val_problems, tune_problems, val })
    }

    /// The fixed validation prompts.
    pub fn val_problems(&self) -> &[Problem] {
        &self.val_problems
    }
}

/// The set regressor inside `model`, or an error naming what the task needs.
fn regressor(model: &Model) -> Result<&SetRegressor> {
    set_regressor_of(model, RegressionConfig::NAME)
}

impl Task for RegressionTask {
    type Scores = RegressionScores;

    fn configure_model(&self, model: &mut ModelConfig) -> Result<()> {
        set_regressor_of_dim(model, self.cfg.dim, RegressionConfig::NAME)
    }

    fn train_batch(&mut self, _step: usize, rng: &mut ChaCha8Rng, batch_size: usize) -> Result<Batch> {
        let n = rng.random_range(1..=self.cfg.n_context);
        let problems: Vec<Problem> = (0..batch_size).map(|_| sample_prompt(&self.cfg, n, rng)).collect();
        to_batch(&problems, &self.device)
    }

    fn val_batches(&self) -> &[Batch] {
        &self.val
    }

    fn loss(&self, model: &Model, batch: &Batch) -> Result<Tensor> {
        let net = regressor(model)?;
        let [ctx, qry] = batch.inputs.as_slice() else { bail!("a regression batch has two inputs") };
        Ok((net.forward(ctx, qry)? - &batch.targets)?.sqr()?.mean_all()?)
    }

    fn scores(&self, model: &Model) -> Result<RegressionScores> {
        let net = regressor(model)?;
        let curve = error_curve(Some(net), &self.val_problems, &self.tune_problems, &self.device)?;
        RegressionScores::from_curve(curve, self.cfg.dim)
    }
}
