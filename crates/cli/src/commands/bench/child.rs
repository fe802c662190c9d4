//! One metric's benchmark, run inside its own process: trains the GPT for a few steps and times
//! forward, backward and optimizer separately.

use std::time::Instant;

use anyhow::{Context, Result};
use attnlab_model::{GptConfig, MetricKind, Model, ModelConfig, fused};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adamw::AdamW;

/// What the benchmark trains.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Sequence length.
    pub block_size: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Timed steps (after the warm-up).
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
}

/// One metric's result (a line of `--json` output's `results`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    /// Metric config name.
    pub metric: String,
    /// Median training tokens per second.
    pub tokens_per_s: f64,
    /// Median forward time (model + loss), ms.
    pub fwd_ms: f64,
    /// Median backward time, ms.
    pub bwd_ms: f64,
    /// Median optimizer time (clipping + AdamW), ms.
    pub opt_ms: f64,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Threads candle used.
    pub threads: usize,
    /// Loss of the first and the last step (sanity: training moves).
    pub loss_first: f32,
    /// See `loss_first`.
    pub loss_last: f32,
}

/// The GPT of issue 6: 4 layers, 4 heads, width 128, vocabulary 65.
pub fn model_config(metric: MetricKind, block_size: usize) -> GptConfig {
    let mut cfg = GptConfig::baby_char(65);
    cfg.block_size = block_size;
    cfg.attention.metric = metric;
    cfg
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (`VmHWM`).
pub fn peak_rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    let kib: f64 = line.split_whitespace().nth(1).context("malformed VmHWM line")?.parse()?;
    Ok(kib / 1024.0)
}

/// Random tokens `(b, t + 1)` split into inputs and next-token targets.
fn batch(rng: &mut ChaCha8Rng, s: &Shape, device: &Device) -> Result<(Tensor, Tensor)> {
    let (b, t) = (s.batch_size, s.block_size);
    let data: Vec<u32> = (0..b * (t + 1)).map(|_| rng.random_range(0..65u32)).collect();
    let all = Tensor::from_vec(data, (b, t + 1), device)?;
    Ok((all.narrow(1, 0, t)?.contiguous()?, all.narrow(1, 1, t)?.contiguous()?))
}

/// Trains `metric` for `warmup + steps` steps and reports medians over the timed steps.
pub fn run(metric: MetricKind, s: &Shape, device: &Device) -> Result<BenchResult> {
    let cfg = ModelConfig::Gpt(model_config(metric, s.block_size));
    let (model, params) = Model::init(&cfg, 1337, device)?;
    let gpt = model.as_gpt().context("bench model is a GPT")?;
    let mut opt = AdamW::new(params.vars())?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mut fwd, mut bwd, mut optm, mut tps) = (vec![], vec![], vec![], vec![]);
    let (mut loss_first, mut loss_last) = (f32::NAN, f32::NAN);
    for step in 0..s.warmup + s.steps {
        let (x, y) = batch(&mut rng, s, device)?;
        let t0 = Instant::now();
        let logits = gpt.forward(&x)?;
        let loss = fused::cross_entropy(&logits.flatten_to(1)?, &y.flatten_all()?)?;
        let loss_v = loss.to_scalar::<f32>()?; // synchronises non-CPU devices
        let t1 = Instant::now();
        let grads = loss.backward()?;
        device.synchronize()?;
        let t2 = Instant::now();
        opt.step(&grads)?;
        device.synchronize()?;
        let t3 = Instant::now();
        drop(grads);
        if step == 0 {
            loss_first = loss_v;
        }
        loss_last = loss_v;
        if step >= s.warmup {
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
            optm.push((t3 - t2).as_secs_f64() * 1e3);
            tps.push((s.batch_size * s.block_size) as f64 / (t3 - t0).as_secs_f64());
        }
    }
    Ok(BenchResult {
        metric: metric.name().to_string(),
        tokens_per_s: median(tps),
        fwd_ms: median(fwd),
        bwd_ms: median(bwd),
        opt_ms: median(optm),
        peak_rss_mib: peak_rss_mib()?,
        threads: crate::runtime::current(),
        loss_first,
        loss_last,
    })
}
