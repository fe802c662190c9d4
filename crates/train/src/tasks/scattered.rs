//! `scattered`: in-context scattered-data interpolation with a [`SetRegressor`].
//!
//! Every example draws a random smooth function on [0,1]^dim (dim 1 or 2) from the family
//!
//! `f(x) = a0 + a . (x - 1/2) + sum_{k=1..K} c_k exp(-|x - mu_k|^2 / (2 s_k^2))`
//!
//! with `K` uniform in {1, .., 4}, centres `mu_k` uniform in [-0.1, 1.1]^dim, widths `s_k`
//! log-uniform in [0.08, 0.4], heights `c_k` uniform in [-1, 1], offset `a0` uniform in
//! [-0.5, 0.5] and slope `a` uniform in [-0.5, 0.5]^dim (Gaussian bumps on a linear trend, the
//! ingredients of Franke's F1, which training never sees), then `n_context` context points and
//! `n_query` query points uniform in [0,1]^dim. The loss is the mean squared error at the
//! queries. Scores: validation MSE of the model and of Shepard p = 2 / nearest neighbour on the
//! same validation sets, and for dim 2 the Franke F1 errors (see [`franke_scores`]).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use attnlab_model::{Model, ModelConfig, SetRegressor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::franke::{Errors, FRANKE_NODES, GRID_SIDE, franke_f1, grid};
use super::models::{set_regressor_of, set_regressor_of_dim};
use super::report::{Column, Picture, RELATIVE_MARGIN, TaskReport, Unit};
use super::shepard::{Baseline, nearest, shepard};
use crate::task::{Batch, Task, TaskContext, TaskName, TaskSpec};

fn default_val_functions() -> usize {
    128
}

/// `[task]` of a `scattered` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScatteredConfig {
    /// Dimension of the points: 1 or 2 (Franke evaluation needs 2).
    pub dim: usize,
    /// Context points per example (at least 1; 100 matches Franke's node set).
    pub n_context: usize,
    /// Query points per example (at least 1).
    pub n_query: usize,
    /// Functions in the fixed validation set.
    #[serde(default = "default_val_functions")]
    pub val_functions: usize,
}

/// Scores of a scattered-data run: validation MSE of the model and of two classical
/// interpolants on the same problems, and (dim 2) the Franke F1 errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScatteredScores {
    /// Mean squared error of the model at the validation queries.
    pub val_mse: f64,
    /// The same for Shepard's interpolant with p = 2.
    pub val_shepard_p2_mse: f64,
    /// The same for the nearest neighbour.
    pub val_nearest_mse: f64,
    /// Franke F1 errors (dim 2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub franke: Option<FrankeScores>,
}

/// Errors interpolating Franke's F1 on the 33 x 33 grid from its 100 nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrankeScores {
    /// The model's errors (absent for baselines alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Errors>,
    /// The classical baselines by name (`shepard_p1`..`shepard_p4`, `nearest`).
    #[serde(flatten)]
    pub baselines: BTreeMap<String, Errors>,
}

impl TaskSpec for ScatteredConfig {
    type Task = ScatteredTask;

    /// The report: losses, MSE beside Shepard's, Franke errors, cost; Franke error maps.
    fn report(&self) -> TaskReport {
        let task = [
            Column::lower("val_mse", "val mse", Unit::SquaredError, 4).within(RELATIVE_MARGIN),
            Column::lower("val_shepard_p2_mse", "Shepard p2 val mse", Unit::SquaredError, 4)
                .within(RELATIVE_MARGIN),
            Column::lower("franke.model.max_abs", "Franke max", Unit::AbsoluteError, 4)
                .within(RELATIVE_MARGIN),
            Column::lower("franke.model.mean_abs", "Franke mean", Unit::AbsoluteError, 4)
                .within(RELATIVE_MARGIN),
            Column::lower("franke.model.rms", "Franke rms", Unit::AbsoluteError, 4).within(RELATIVE_MARGIN),
        ];
        TaskReport::of(&task, true, vec![Picture::FrankeErrorMaps])
    }

    fn build(&self, cx: &TaskContext) -> Result<ScatteredTask> {
        ScatteredTask::new(self, cx.seed, &cx.env.device)
    }

    fn validate(&self) -> Result<()> {
        if !(1..=2).contains(&self.dim) {
            bail!("task.dim must be 1 or 2, got {}", self.dim)
        }
        for (name, v) in
            [("n_context", self.n_context), ("n_query", self.n_query), ("val_functions", self.val_functions)]
        {
            if v == 0 {
                bail!("task.{name} must be at least 1 (got 0)")
            }
        }
        Ok(())
    }
}

/// One random smooth function of the family in the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothFn {
    offset: f64,
    slope: Vec<f64>,
    /// `(centre, width, height)` of each bump.
    bumps: Vec<(Vec<f64>, f64, f64)>,
}

impl SmoothFn {
    /// Draws a function on [0,1]^dim.
    pub fn sample(dim: usize, rng: &mut ChaCha8Rng) -> Self {
        let offset = rng.random_range(-0.5..0.5);
        let slope = (0..dim).map(|_| rng.random_range(-0.5..0.5)).collect();
        let k = rng.random_range(1..=4);
        let bumps = (0..k)
            .map(|_| {
                let centre = (0..dim).map(|_| rng.random_range(-0.1..1.1)).collect();
                let width = (rng.random_range(0.08f64.ln()..0.4f64.ln())).exp();
                (centre, width, rng.random_range(-1.0..1.0))
            })
            .collect();
        Self { offset, slope, bumps }
    }

    /// The value at `x`.
    pub fn eval(&self, x: &[f64]) -> f64 {
        let trend: f64 = self.slope.iter().zip(x).map(|(a, v)| a * (v - 0.5)).sum();
        let bumps: f64 = self
            .bumps
            .iter()
            .map(|(mu, s, c)| {
                let d2: f64 = mu.iter().zip(x).map(|(m, v)| (v - m).powi(2)).sum();
                c * (-d2 / (2.0 * s * s)).exp()
            })
            .sum();
        self.offset + trend + bumps
    }
}

/// One interpolation problem: context points and values, query points and true values.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Context points, `n` of `dim` coordinates.
    pub ctx_x: Vec<Vec<f64>>,
    /// Values at the context points.
    pub ctx_y: Vec<f64>,
    /// Query points, `m` of `dim` coordinates.
    pub query_x: Vec<Vec<f64>>,
    /// True values at the queries.
    pub query_y: Vec<f64>,
}

impl Problem {
    /// Draws a function, `n` context and `m` query points uniform in [0,1]^dim.
    pub fn sample(dim: usize, n: usize, m: usize, rng: &mut ChaCha8Rng) -> Self {
        let f = SmoothFn::sample(dim, rng);
        let mut pts = |k: usize| -> Vec<Vec<f64>> {
            (0..k).map(|_| (0..dim).map(|_| rng.random_range(0.0..1.0)).collect()).collect()
        };
        let (ctx_x, query_x) = (pts(n), pts(m));
        let ctx_y = ctx_x.iter().map(|x| f.eval(x)).collect();
        let query_y = query_x.iter().map(|x| f.eval(x)).collect();
        Self { ctx_x, ctx_y, query_x, query_y }
    }
}

/// Problems of equal sizes as a batch: context `(b, n, dim + 1)`, queries `(b, m, dim)`,
/// targets `(b, m)`.
pub fn to_batch(problems: &[Problem], device: &Device) -> Result<Batch> {
    let Some(first) = problems.first() else { bail!("an empty batch of interpolation problems") };
    let (b, n, m) = (problems.len(), first.ctx_x.len(), first.query_x.len());
    let dim = first.ctx_x.first().or(first.query_x.first()).map_or(0, |x| x.len());
    let mut ctx = Vec::with_capacity(b * n * (dim + 1));
    let (mut qry, mut tgt) = (Vec::with_capacity(b * m * dim), Vec::with_capacity(b * m));
    for p in problems {
        if p.ctx_x.len() != n || p.query_x.len() != m {
            bail!("interpolation problems of one batch must have equal sizes")
        }
        for (x, y) in p.ctx_x.iter().zip(&p.ctx_y) {
            ctx.extend(x.iter().chain([y]).map(|v| *v as f32));
        }
        qry.extend(p.query_x.iter().flatten().map(|v| *v as f32));
        tgt.extend(p.query_y.iter().map(|v| *v as f32));
    }
    if ctx.iter().chain(&qry).chain(&tgt).any(|v| !v.is_finite()) {
        bail!("interpolation points and values must be finite numbers")
    }
    Ok(Batch {
        inputs: vec![
            Tensor::from_vec(ctx, (b, n, dim + 1), device)?,
            Tensor::from_vec(qry, (b, m, dim), device)?,
        ],
        targets: Tensor::from_vec(tgt, (b, m), device)?,
        weights: None,
        n_items: b * (n + m),
    })
}

/// The `scattered` task.
pub struct ScatteredTask {
    cfg: ScatteredConfig,
    device: Device,
    val_problems: Vec<Problem>,
    val: Vec<Batch>,
}

/// Validation functions per batch.
const VAL_BATCH: usize = 32;

impl ScatteredTask {
    /// Validates `cfg` and draws the fixed validation set from `seed`.
    pub fn new(cfg: &ScatteredConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let val_problems: Vec<Problem> = (0..cfg.val_functions)
            .map(|_| Problem::sample(cfg.dim, cfg.n_context, cfg.n_query, &mut rng))
            .collect();
        let val = val_problems.chunks(VAL_BATCH).map(|c| to_batch(c, device)).collect::<Result<_>>()?;
        Ok(Self { cfg: cfg.clone(), device: device.clone(), val_problems, val })
    }

    /// Mean squared error of a baseline over the validation queries.
    fn baseline_val_mse(&self, baseline: Baseline) -> Result<f64> {
        let (mut se, mut n) = (0.0, 0usize);
        for p in &self.val_problems {
            for (x, y) in p.query_x.iter().zip(&p.query_y) {
                let pred = match baseline {
                    Baseline::Shepard(k) => shepard(&p.ctx_x, &p.ctx_y, x, k as f64, 0.0)?,
                    Baseline::Nearest => nearest(&p.ctx_x, &p.ctx_y, x)?,
                };
                se += (pred - y).powi(2);
                n += 1;
            }
        }
        Ok(se / n as f64)
    }
}

/// The set regressor inside `model`, or an error naming what the task needs.
fn regressor(model: &Model) -> Result<&SetRegressor> {
    set_regressor_of(model, ScatteredConfig::NAME)
}

impl Task for ScatteredTask {
    type Scores = ScatteredScores;

    fn configure_model(&self, model: &mut ModelConfig) -> Result<()> {
        set_regressor_of_dim(model, self.cfg.dim, ScatteredConfig::NAME)
    }

    fn train_batch(&mut self, _step: usize, rng: &mut ChaCha8Rng, batch_size: usize) -> Result<Batch> {
        let c = &self.cfg;
        let problems: Vec<Problem> =
            (0..batch_size).map(|_| Problem::sample(c.dim, c.n_context, c.n_query, rng)).collect();
        to_batch(&problems, &self.device)
    }

    fn val_batches(&self) -> &[Batch] {
        &self.val
    }

    fn loss(&self, model: &Model, batch: &Batch) -> Result<Tensor> {
        let net = regressor(model)?;
        let [ctx, qry] = batch.inputs.as_slice() else { bail!("a scattered batch has two inputs") };
        Ok((net.forward(ctx, qry)? - &batch.targets)?.sqr()?.mean_all()?)
    }

    fn scores(&self, model: &Model) -> Result<ScatteredScores> {
        let (mut se, mut n) = (0.0, 0usize);
        for b in &self.val {
            let l = self.loss(model, b)?.to_scalar::<f32>()? as f64;
            let k = b.targets.elem_count();
            (se, n) = (se + l * k as f64, n + k);
        }
        let franke = match self.cfg.dim {
            2 => Some(franke_scores(Some(regressor(model)?))?),
            _ => None,
        };
        Ok(ScatteredScores {
            val_mse: se / n as f64,
            val_shepard_p2_mse: self.baseline_val_mse(Baseline::Shepard(2))?,
            val_nearest_mse: self.baseline_val_mse(Baseline::Nearest)?,
            franke,
        })
    }
}

/// Franke F1 errors on the 33 x 33 grid from its 100 nodes, of the model (when given) and of
/// the classical baselines (`shepard_p1`..`shepard_p4`, `nearest`).
pub fn franke_scores(model: Option<&SetRegressor>) -> Result<FrankeScores> {
    let values: Vec<f64> = FRANKE_NODES.iter().map(|[x, y]| franke_f1(*x, *y)).collect();
    let pts = grid(GRID_SIDE);
    let truth: Vec<f64> = pts.iter().map(|[x, y]| franke_f1(*x, *y)).collect();
    let model = match model {
        Some(net) => Some(Errors::of(&predict(net, &FRANKE_NODES, &values, &pts)?, &truth)?),
        None => None,
    };
    let mut baselines = BTreeMap::new();
    for b in Baseline::ALL {
        baselines.insert(b.name(), Errors::of(&b.predict(&FRANKE_NODES, &values, &pts)?, &truth)?);
    }
    Ok(FrankeScores { model, baselines })
}

/// The model's interpolant of `(nodes, values)` at `xs` (queries in chunks; they are independent).
pub fn predict<P: AsRef<[f64]>, Q: AsRef<[f64]>>(
    net: &SetRegressor,
    nodes: &[P],
    values: &[f64],
    xs: &[Q],
) -> Result<Vec<f64>> {
    let problem = |q: &[Q]| Problem {
        ctx_x: nodes.iter().map(|n| n.as_ref().to_vec()).collect(),
        ctx_y: values.to_vec(),
        query_x: q.iter().map(|x| x.as_ref().to_vec()).collect(),
        query_y: vec![0.0; q.len()],
    };
    let device = net.device().clone();
    let mut out = Vec::with_capacity(xs.len());
    for chunk in xs.chunks(256) {
        let b = to_batch(&[problem(chunk)], &device)?;
        let y: Vec<f32> = net.forward(&b.inputs[0], &b.inputs[1])?.flatten_all()?.to_vec1()?;
        out.extend(y.iter().map(|v| *v as f64));
    }
    Ok(out)
}
