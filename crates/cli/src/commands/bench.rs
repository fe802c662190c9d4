//! `attnlab bench`: training throughput of the issue-6 GPT per attention metric.
//!
//! Each metric runs in a fresh child process of the same binary (`--child`), so peak-memory
//! figures do not mix and every metric starts with cold pools and allocator.

use std::process::Command;

use anyhow::{Context, Result, bail};
use attnlab_model::{MetricKind, fused};
use candle_core::Device;
use clap::Args;
use serde::Serialize;

use attnlab_train::bench::{self, BenchResult, Shape};

/// Options of `attnlab bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Comma-separated metrics (default: every metric).
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// Timed training steps per metric (after the warm-up).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed warm-up steps per metric.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Sequence length.
    #[arg(long, default_value_t = 128)]
    block_size: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Fused kernels to use: `all`, `none`, or a comma list of weights,tiles,norm,gelu,ce,linear (old names attn, flash still work).
    #[arg(long, default_value = "all")]
    fused: String,
    /// Device: `cpu` or `cuda` (needs the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// The modern recipe's attention: RMS qk-norm, RoPE and a learned score scale.
    #[arg(long)]
    modern: bool,
    /// Internal: run the single metric in this process and print its result as JSON.
    #[arg(long, hide = true)]
    child: bool,
}

/// The `--json` output.
#[derive(Debug, Serialize)]
struct Report {
    block_size: usize,
    batch_size: usize,
    steps: usize,
    warmup: usize,
    fused: String,
    device: String,
    /// Whether the model had the modern recipe's attention (`--modern`).
    modern: bool,
    results: Vec<BenchResult>,
}

fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).context("--device cuda (build with `--features cuda`)"),
        other => bail!("unknown --device `{other}` (expected cpu or cuda)"),
    }
}

impl BenchArgs {
    fn shape(&self) -> Result<Shape> {
        for (name, v) in
            [("--steps", self.steps), ("--block-size", self.block_size), ("--batch-size", self.batch_size)]
        {
            if v == 0 {
                bail!("{name} must be at least 1")
            }
        }
        Ok(Shape {
            block_size: self.block_size,
            batch_size: self.batch_size,
            steps: self.steps,
            warmup: self.warmup,
            modern: self.modern,
        })
    }

    fn metrics(&self) -> Result<Vec<MetricKind>> {
        if self.metrics.is_empty() {
            return Ok(MetricKind::ALL.to_vec());
        }
        self.metrics.iter().map(|m| MetricKind::parse(m.trim()).context("--metrics")).collect()
    }
}

/// Runs the benchmark and prints a table (or JSON with `--json`).
pub fn run(args: &BenchArgs) -> Result<()> {
    let shape = args.shape()?;
    let metrics = args.metrics()?;
    let kernels = fused::parse_kernels(&args.fused)?;
    let dev = device(&args.device)?;
    if args.child {
        let [metric] = metrics.as_slice() else { bail!("--child runs exactly one metric") };
        fused::set_enabled(kernels);
        let r = bench::run(*metric, &shape, &dev)?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let mut results = Vec::new();
    for m in metrics {
        tracing::info!(metric = m.name(), "bench");
        results.push(spawn_child(args, m)?);
    }
    let report = Report {
        block_size: shape.block_size,
        batch_size: shape.batch_size,
        steps: shape.steps,
        warmup: shape.warmup,
        fused: args.fused.clone(),
        device: args.device.clone(),
        modern: args.modern,
        results,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Runs one metric in a child process of this binary with the same options.
fn spawn_child(args: &BenchArgs, metric: MetricKind) -> Result<BenchResult> {
    let exe = std::env::current_exe().context("locating the attnlab binary")?;
    let out = Command::new(exe)
        .arg("bench")
        .arg("--child")
        .args(["--metrics", metric.name()])
        .args(["--steps", &args.steps.to_string(), "--warmup", &args.warmup.to_string()])
        .args(["--block-size", &args.block_size.to_string(), "--batch-size", &args.batch_size.to_string()])
        .args(["--fused", &args.fused, "--device", &args.device])
        .args(args.modern.then_some("--modern"))
        .output()
        .context("starting the benchmark child process")?;
    if !out.status.success() {
        bail!("benchmark of `{metric}` failed: {}", String::from_utf8_lossy(&out.stderr).trim())
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().context("benchmark child printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("parsing benchmark child output {line:?}"))
}

fn print_table(r: &Report) {
    println!(
        "GPT 4x4x128{}, block {}, batch {} ({} tokens/step), {} timed steps after {} warm-up, fused: {}, device {}",
        if r.modern { " with qk-norm rms + RoPE + learned scale (--modern)" } else { "" },
        r.block_size,
        r.batch_size,
        r.block_size * r.batch_size,
        r.steps,
        r.warmup,
        r.fused,
        r.device
    );
    println!(
        "{:<14} {:>9} {:>8} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}",
        "metric",
        "tokens/s",
        "vs dot",
        "clean tok/s",
        "cpu ms",
        "fwd ms",
        "bwd ms",
        "opt ms",
        "peak MiB",
        "dev MiB",
        "threads"
    );
    let dot = r.results.iter().find(|x| x.metric == "dot").map(|x| x.tokens_per_s);
    for x in &r.results {
        let ratio = dot.map(|d| format!("{:.3}", d / x.tokens_per_s)).unwrap_or_else(|| "-".into());
        let clean = match x.tokens_per_s_clean {
            Some(c) => format!("{c:.0} ({})", x.clean_steps),
            None => "-".into(),
        };
        let dev_mib = x.peak_device_mib.map(|m| format!("{m:.0}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<14} {:>9.0} {:>8} {:>11} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.0} {:>9} {:>7}",
            x.metric,
            x.tokens_per_s,
            ratio,
            clean,
            x.cpu_ms,
            x.fwd_ms,
            x.bwd_ms,
            x.opt_ms,
            x.peak_rss_mib,
            dev_mib,
            x.threads
        );
    }
    println!(
        "vs dot: step time relative to this run's dot{}. clean: median over steps where other processes used",
        if r.modern { " (also --modern)" } else { "" }
    );
    println!("under 10% of the CPUs (count). cpu ms: this process's CPU time per step, all threads.");
    println!("peak MiB: resident host memory; dev MiB: peak device memory in use (CUDA only).");
    print_kinds(&r.results);
}

/// The per-step breakdown by op kind, forward / backward, ms (medians over steps).
fn print_kinds(results: &[BenchResult]) {
    println!();
    println!(
        "{:<14} {:>15} {:>15} {:>15} {:>15} {:>8}",
        "ms per step", "matmul f/b", "elementwise f/b", "attention f/b", "other f/b", "opt"
    );
    for x in results {
        let k = &x.kinds;
        let pair = |f: f64, b: f64| format!("{f:.1} / {b:.1}");
        println!(
            "{:<14} {:>15} {:>15} {:>15} {:>15} {:>8.1}",
            x.metric,
            pair(k.matmul_fwd_ms, k.matmul_bwd_ms),
            pair(k.elementwise_fwd_ms, k.elementwise_bwd_ms),
            pair(k.attention_fwd_ms, k.attention_bwd_ms),
            pair(k.other_fwd_ms, k.other_bwd_ms),
            x.opt_ms
        );
    }
    println!(
        "matmul: linear maps' products; elementwise: norms, GELU, cross-entropy; attention: the attention op"
    );
    println!(
        "(the metric's own cost, and qk-norm/RoPE when fused); other: the rest of the phase (embedding,"
    );
    println!("residual adds, gradient bookkeeping; qk-norm/RoPE with --fused none);");
    println!("opt: clipping + AdamW. Medians per column, so rows need not add up.");
}
