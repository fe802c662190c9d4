//! The training benchmark (`attnlab bench`): trains the reference GPT with one attention metric
//! for a few steps on random tokens and times forward, backward and optimizer separately. The
//! CLI runs each metric in a process of its own (so peak memory is per metric) and prints the
//! table; this module is the measurement.

use std::time::Instant;

use anyhow::{Context, Result};
use attnlab_model::fused::profile::{OpKind, OpTimes, Pass};
use attnlab_model::{GptConfig, MetricKind, Model, ModelConfig, PosKind, QkNorm, fused, gpu};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::optim::{AdamW, AdamWParams, clip_grads, grad_norm};

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
    /// The modern recipe's attention (`qk_norm = "rms"`, `pos = "rope"`, `learn_scale = true`)
    /// instead of the nanoGPT one (learned positions, no qk-norm, fixed scale).
    pub modern: bool,
}

/// One metric's result (a line of `--json` output's `results`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    /// Metric config name.
    pub metric: String,
    /// Median training tokens per second.
    pub tokens_per_s: f64,
    /// Median tokens per second over the "clean" steps, those during which other processes used
    /// under 10% of the machine's CPU (as `torch_gpt.py` does); `None` when no step was clean.
    pub tokens_per_s_clean: Option<f64>,
    /// Number of clean steps.
    pub clean_steps: usize,
    /// Median CPU time of this process per step (all threads), ms: less sensitive to other
    /// processes than wall time.
    pub cpu_ms: f64,
    /// Median forward time (model + loss), ms.
    pub fwd_ms: f64,
    /// Median backward time, ms.
    pub bwd_ms: f64,
    /// Median optimizer time (clipping + AdamW), ms.
    pub opt_ms: f64,
    /// Median time per step in the fused kernels by op kind (and the rest), ms.
    pub kinds: KindTimes,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Peak device memory in use (CUDA's memory pool high-water mark: weights, optimizer state,
    /// activations, attention), MiB; `None` on the CPU.
    #[serde(default)]
    pub peak_device_mib: Option<f64>,
    /// Threads candle used.
    pub threads: usize,
    /// Loss of the first and the last step (sanity: training moves).
    pub loss_first: f32,
    /// See `loss_first`.
    pub loss_last: f32,
}

/// Median milliseconds per step by op kind and pass, from the fused kernels' timers
/// ([`fused::profile`]); `other_*` is the phase's time outside them (embedding, residual adds,
/// candle's gradient bookkeeping, reshapes and copies).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KindTimes {
    /// Matrix products of the linear maps, forward.
    pub matmul_fwd_ms: f64,
    /// Matrix products of the linear maps' backward (`dx` and `dw`).
    pub matmul_bwd_ms: f64,
    /// Norms, GELU and cross-entropy, forward.
    pub elementwise_fwd_ms: f64,
    /// Their backward kernels.
    pub elementwise_bwd_ms: f64,
    /// The attention op (scores, mask, softmax, values), forward: the metric's own cost.
    pub attention_fwd_ms: f64,
    /// The attention op's backward.
    pub attention_bwd_ms: f64,
    /// Forward time outside the fused kernels.
    pub other_fwd_ms: f64,
    /// Backward time outside the fused kernels.
    pub other_bwd_ms: f64,
}

/// Per-step samples of [`KindTimes`]' fields, in its order.
#[derive(Default)]
struct KindSamples([Vec<f64>; 8]);

impl KindSamples {
    /// Records one step from its kernel times `d` and its forward and backward wall times (s).
    fn push(&mut self, d: &OpTimes, fwd_s: f64, bwd_s: f64) {
        let mut i = 0;
        for kind in [OpKind::MatMul, OpKind::Elementwise, OpKind::Attention] {
            for pass in [Pass::Forward, Pass::Backward] {
                self.0[i].push(d.get(kind, pass) * 1e3);
                i += 1;
            }
        }
        self.0[6].push((fwd_s - d.total(Pass::Forward)) * 1e3);
        self.0[7].push((bwd_s - d.total(Pass::Backward)) * 1e3);
    }

    fn medians(self) -> KindTimes {
        let [a, b, c, d, e, f, g, h] = self.0.map(median);
        KindTimes {
            matmul_fwd_ms: a,
            matmul_bwd_ms: b,
            elementwise_fwd_ms: c,
            elementwise_bwd_ms: d,
            attention_fwd_ms: e,
            attention_bwd_ms: f,
            other_fwd_ms: g,
            other_bwd_ms: h,
        }
    }
}

/// The GPT of issue 6: 4 layers, 4 heads, width 128, vocabulary 65; with `modern`, RMS qk-norm,
/// RoPE on every dimension and a learned per-head score scale (`configs/shakespeare_char_modern.toml`).
pub fn model_config(metric: MetricKind, block_size: usize, modern: bool) -> GptConfig {
    let mut cfg = GptConfig::baby_char(65);
    cfg.block_size = block_size;
    cfg.attention.metric = metric;
    if modern {
        cfg.qk.qk_norm = QkNorm::Rms;
        cfg.pos.pos = PosKind::Rope;
        cfg.attention.learn_scale = true;
    }
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

/// Clock ticks per second of `/proc` CPU counters (`USER_HZ`, 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// CPU seconds: this process (all threads) and the whole machine (busy time of every CPU).
fn cpu_now() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let after_name = stat.rsplit_once(')').context("malformed /proc/self/stat")?.1;
    let f: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(f.get(i).context("short /proc/self/stat")?.parse::<f64>()?) };
    let own = (ticks(11)? + ticks(12)?) / CLK_TCK; // utime, stime (fields 14, 15)
    let all = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let v: Vec<f64> =
        all.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum::<f64>() / CLK_TCK;
    Ok((own, busy))
}

/// Random tokens `(b, t + 1)` split into inputs and next-token targets.
fn batch(rng: &mut ChaCha8Rng, s: &Shape, device: &Device) -> Result<(Tensor, Tensor)> {
    let (b, t) = (s.batch_size, s.block_size);
    let data: Vec<u32> = (0..b * (t + 1)).map(|_| rng.random_range(0..65u32)).collect();
    let all = Tensor::from_vec(data, (b, t + 1), device)?;
    Ok((all.narrow(1, 0, t)?.contiguous()?, all.narrow(1, 1, t)?.contiguous()?))
}

/// Trains `metric` for `warmup + steps` steps and reports medians over the timed steps
/// (fused kernels as set by `attnlab_model::fused::set_enabled`). Switches the kernel timers
/// ([`fused::profile`]) on for the process.
pub fn run(metric: MetricKind, s: &Shape, device: &Device) -> Result<BenchResult> {
    let cfg = ModelConfig::Gpt(model_config(metric, s.block_size, s.modern));
    let (model, params) = Model::init(&cfg, 1337, device)?;
    let gpt = model.as_gpt().context("bench model is a GPT")?;
    // torch_gpt.py's optimiser: lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on matrices, clip 1.0.
    let hp = AdamWParams { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
    let mut opt = AdamW::new(&params, hp)?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mut fwd, mut bwd, mut optm, mut tps) = (vec![], vec![], vec![], vec![]);
    let (mut cpu, mut clean, mut kinds) = (vec![], vec![], KindSamples::default());
    fused::profile::set_profiling(true);
    gpu::memory::reset_peak(device)?;
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let (mut loss_first, mut loss_last) = (f32::NAN, f32::NAN);
    for step in 0..s.warmup + s.steps {
        let (x, y) = batch(&mut rng, s, device)?;
        let (own0, busy0) = cpu_now()?;
        let ops0 = OpTimes::now();
        let t0 = Instant::now();
        let logits = gpt.forward(&x)?;
        let loss = fused::cross_entropy(&logits.flatten_to(1)?, &y.flatten_all()?)?;
        let loss_v = loss.to_scalar::<f32>()?; // synchronises non-CPU devices
        let t1 = Instant::now();
        let mut grads = loss.backward()?;
        device.synchronize()?;
        let t2 = Instant::now();
        let norm = grad_norm(&params, &grads)?;
        clip_grads(&params, &mut grads, norm, 1.0)?;
        opt.step(&grads, 1e-3)?;
        device.synchronize()?;
        let t3 = Instant::now();
        let (own1, busy1) = cpu_now()?;
        drop(grads);
        if step == 0 {
            loss_first = loss_v;
        }
        loss_last = loss_v;
        if step >= s.warmup {
            kinds.push(&OpTimes::now().since(&ops0), (t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
            optm.push((t3 - t2).as_secs_f64() * 1e3);
            let (dt, tokens) = ((t3 - t0).as_secs_f64(), (s.batch_size * s.block_size) as f64);
            tps.push(tokens / dt);
            cpu.push((own1 - own0) * 1e3);
            let other = ((busy1 - busy0) - (own1 - own0)).max(0.0) / (ncpu * dt);
            if other < 0.1 {
                clean.push(tokens / dt);
            }
        }
    }
    Ok(BenchResult {
        metric: metric.name().to_string(),
        tokens_per_s: median(tps),
        clean_steps: clean.len(),
        tokens_per_s_clean: if clean.is_empty() { None } else { Some(median(clean)) },
        cpu_ms: median(cpu),
        fwd_ms: median(fwd),
        bwd_ms: median(bwd),
        opt_ms: median(optm),
        kinds: kinds.medians(),
        peak_rss_mib: peak_rss_mib()?,
        peak_device_mib: gpu::memory::peak_mib(device)?,
        threads: candle_core::utils::get_num_threads(),
        loss_first,
        loss_last,
    })
}
