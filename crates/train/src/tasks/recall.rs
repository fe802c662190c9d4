//! `recall`: multi-query associative recall (MQAR; Arora et al. 2023, "Zoology").
//!
//! A sequence of `seq_len` tokens starts with `n_pairs` key/value pairs `k1 v1 k2 v2 ...`,
//! keys drawn without replacement from `1..vocab_size/2`, values from `vocab_size/2..vocab_size`.
//! The rest holds every key once more as a query, at even offsets `2 g` of the query region,
//! with gaps `g` drawn without replacement with probability proportional to `g^(power_a - 1)`
//! (Zoology's power law, favouring short gaps); the target at a query is its value. Other
//! positions hold random tokens and carry no loss: loss and accuracy count answer positions only.

use anyhow::{Result, bail};
use attnlab_model::{Model, ModelConfig};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::loss::{batch_loss, weighted_accuracy};
use super::models::{fill_at_least, gpt_config_mut, gpt_of};
use super::report::{Column, FRACTION_MARGIN, TaskReport, Threshold, Unit};
use crate::task::{Batch, Task, TaskContext, TaskName, TaskSpec};

fn default_power_a() -> f64 {
    0.01
}

/// `[task]` of kind `recall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallConfig {
    /// Vocabulary size: keys from the lower half, values from the upper half.
    pub vocab_size: usize,
    /// Sequence length (the model's `block_size` defaults to it).
    pub seq_len: usize,
    /// Key/value pairs per sequence (each queried once).
    pub n_pairs: usize,
    /// Exponent of the power law of query gaps (Zoology's `power_a`).
    #[serde(default = "default_power_a")]
    pub power_a: f64,
}

/// Scores of a recall run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallScores {
    /// Fraction of answer positions of the validation set predicted right.
    pub val_accuracy: f64,
}

impl TaskSpec for RecallConfig {
    type Task = RecallTask;

    /// The report: losses, validation accuracy, cost; a run leaves the plateau at a validation
    /// accuracy above 0.9. The header leaves out `power_a` while it has its default (Zoology's),
    /// which the task's documentation states.
    fn report(&self) -> TaskReport {
        let acc = Column::higher("val_accuracy", "val acc", Unit::Fraction, 3).within(FRACTION_MARGIN);
        let report = TaskReport::of(&[acc], true, Vec::new()).with_threshold(Threshold::AccuracyAbove(0.9));
        match self.power_a == default_power_a() {
            true => report.omitting("power_a"),
            false => report,
        }
    }

    fn build(&self, cx: &TaskContext) -> Result<RecallTask> {
        RecallTask::new(self, cx.batch_size, cx.eval_batches, cx.seed, &cx.env.device)
    }

    fn validate(&self) -> Result<()> {
        let (v, t, n) = (self.vocab_size, self.seq_len, self.n_pairs);
        if n == 0 {
            bail!("task.n_pairs must be at least 1")
        }
        if v / 2 < n + 1 {
            bail!("task.vocab_size {v} is too small for {n} pairs: keys need vocab_size/2 - 1 >= n_pairs")
        }
        if t < 4 * n {
            bail!("task.seq_len {t} is too short for {n} pairs: it must be at least 4 * n_pairs = {}", 4 * n)
        }
        if !(self.power_a.is_finite() && self.power_a > 0.0) {
            bail!("task.power_a must be a finite number > 0, got {}", self.power_a)
        }
        Ok(())
    }
}

/// The recall task: a generator of MQAR batches and a fixed validation set.
pub struct RecallTask {
    cfg: RecallConfig,
    gap_weights: Vec<f64>,
    val: Vec<Batch>,
    device: Device,
}

impl RecallTask {
    /// Share of answer positions predicted right on the validation set (argmax of the logits).
    fn val_accuracy(&self, model: &Model) -> Result<f64> {
        let gpt = gpt_of(model, RecallConfig::NAME)?;
        let (mut hits, mut n) = (0.0, 0.0);
        for b in &self.val {
            let (h, c) = weighted_accuracy(&gpt.forward(&b.inputs[0])?, b)?;
            hits += h;
            n += c;
        }
        Ok(hits / n.max(1.0))
    }

    /// Validates `cfg` and draws `eval_batches` validation batches of `batch_size` from `seed`.
    pub fn new(
        cfg: &RecallConfig,
        batch_size: usize,
        eval_batches: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let space = (cfg.seq_len - 2 * cfg.n_pairs) / 2;
        let gap_weights = (1..=space).map(|i| (i as f64).powf(cfg.power_a - 1.0)).collect();
        let mut task = Self { cfg: cfg.clone(), gap_weights, val: Vec::new(), device: device.clone() };
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4EC4_11A5);
        task.val = (0..eval_batches).map(|_| task.batch(&mut rng, batch_size)).collect::<Result<_>>()?;
        Ok(task)
    }

    /// One sequence: (inputs, targets, weights), each of length `seq_len`.
    pub fn example(&self, rng: &mut ChaCha8Rng) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        let RecallConfig { vocab_size: v, seq_len: t, n_pairs: n, .. } = self.cfg;
        let half = v / 2;
        let keys = distinct(rng, 1, half, n);
        let values = distinct(rng, half, v, n);
        let mut x: Vec<u32> = (0..t).map(|_| rng.random_range(0..v) as u32).collect();
        let mut y = vec![0u32; t];
        let mut w = vec![0f32; t];
        for i in 0..n {
            x[2 * i] = keys[i] as u32;
            x[2 * i + 1] = values[i] as u32;
        }
        for (i, g) in self.gaps(rng, n).into_iter().enumerate() {
            let pos = 2 * n + 2 * g;
            x[pos] = keys[i] as u32;
            y[pos] = values[i] as u32;
            w[pos] = 1.0;
        }
        (x, y, w)
    }

    /// `n` distinct gaps in `0..space`, drawn one by one with weights `(g + 1)^(power_a - 1)`.
    fn gaps(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
        let mut weights = self.gap_weights.clone();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let total: f64 = weights.iter().sum();
            let mut u = rng.random::<f64>() * total;
            let mut pick = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
            for (i, &wt) in weights.iter().enumerate() {
                if wt > 0.0 && u < wt {
                    pick = i;
                    break;
                }
                u -= wt;
            }
            weights[pick] = 0.0;
            out.push(pick);
        }
        out
    }

    fn batch(&self, rng: &mut ChaCha8Rng, b: usize) -> Result<Batch> {
        let t = self.cfg.seq_len;
        let (mut xs, mut ys, mut ws) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..b {
            let (x, y, w) = self.example(rng);
            xs.extend(x);
            ys.extend(y);
            ws.extend(w);
        }
        Ok(Batch {
            inputs: vec![Tensor::from_vec(xs, (b, t), &self.device)?],
            targets: Tensor::from_vec(ys, (b, t), &self.device)?,
            weights: Some(Tensor::from_vec(ws, (b, t), &self.device)?),
            n_items: b * t,
        })
    }
}

/// `n` distinct integers from `lo..hi`, in random order (partial Fisher-Yates).
fn distinct(rng: &mut ChaCha8Rng, lo: usize, hi: usize, n: usize) -> Vec<usize> {
    let mut pool: Vec<usize> = (lo..hi).collect();
    for i in 0..n {
        let j = rng.random_range(i..pool.len());
        pool.swap(i, j);
    }
    pool.truncate(n);
    pool
}

impl Task for RecallTask {
    type Scores = RecallScores;

    fn configure_model(&self, model: &mut ModelConfig) -> Result<()> {
        let g = gpt_config_mut(model, RecallConfig::NAME)?;
        let (v, t) = (self.cfg.vocab_size, self.cfg.seq_len);
        fill_at_least("vocab_size", &mut g.vocab_size, v, &format!("task.vocab_size {v}"))?;
        fill_at_least("block_size", &mut g.block_size, t, &format!("task.seq_len {t}"))?;
        Ok(())
    }

    fn train_batch(&mut self, _step: usize, rng: &mut ChaCha8Rng, batch_size: usize) -> Result<Batch> {
        self.batch(rng, batch_size)
    }

    fn val_batches(&self) -> &[Batch] {
        &self.val
    }

    fn loss(&self, model: &Model, batch: &Batch) -> Result<Tensor> {
        let logits = gpt_of(model, RecallConfig::NAME)?.forward(&batch.inputs[0])?;
        Ok(batch_loss(&logits, batch)?)
    }

    fn scores(&self, model: &Model) -> Result<RecallScores> {
        Ok(RecallScores { val_accuracy: self.val_accuracy(model)? })
    }

    fn eval_scores(&self, model: &Model) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("accuracy".to_string(), Value::from(self.val_accuracy(model)?));
        Ok(m)
    }
}
