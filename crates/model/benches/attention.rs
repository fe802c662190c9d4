//! Attention core forward + backward per metric: `softmax(s(q, k) + causal) v` and the gradients
//! of q, k, v (and the metric's own parameters), at batch 8, 4 heads, head dim 32, T = 256 and
//! T = 1024; the fused kernels (`fused`) and the composed candle path (`reference`).
//!
//! `cargo bench -p attnlab-model --bench attention [-- FILTER]`; ratios to `dot` come from
//! criterion's estimates (`target/criterion/<group>/<metric>/new/estimates.json`).
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::time::Duration;

use attnlab_model::{MetricKind, MetricLayer, MetricSpec, ParamStore, causal_mask};
use candle_core::{Device, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};

fn input(shape: (usize, usize, usize, usize), seed: u64) -> candle_core::Result<Var> {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    // A cheap deterministic pseudo-random fill (values in [-1, 1)).
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu)?)
}

fn step(
    layer: &MetricLayer,
    q: &Var,
    k: &Var,
    v: &Var,
    mask: &Tensor,
    fused: bool,
) -> candle_core::Result<()> {
    let (q, k) = (q.as_tensor(), k.as_tensor());
    let w =
        if fused { layer.weights(q, k, Some(mask))? } else { layer.weights_reference(q, k, Some(mask))? };
    let y = w.matmul(v.as_tensor())?;
    let grads = y.sum_all()?.backward()?;
    std::hint::black_box(grads);
    Ok(())
}

fn bench(c: &mut Criterion) {
    let (b, h, d) = (8, 4, 32);
    for t in [256usize, 1024] {
        let mask = causal_mask(t, &Device::Cpu).expect("mask");
        let (q, k, v) = (
            input((b, h, t, d), 1).expect("q"),
            input((b, h, t, d), 2).expect("k"),
            input((b, h, t, d), 3).expect("v"),
        );
        for (path, fused) in [("fused", true), ("reference", false)] {
            let mut group = c.benchmark_group(format!("attention_{path}_t{t}"));
            group.sample_size(10).warm_up_time(Duration::from_millis(500));
            group.measurement_time(Duration::from_secs(if t > 256 { 8 } else { 3 }));
            for metric in MetricKind::ALL {
                let store = ParamStore::new(0, &Device::Cpu);
                let layer = MetricLayer::new(&MetricSpec::of(metric), h, d, &store.root()).expect("layer");
                group.bench_function(metric.name(), |bench| {
                    bench.iter(|| step(&layer, &q, &k, &v, &mask, fused).expect("step"))
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
