//! Matrix-product throughput of the fused linear map at the reference GPT's shapes (4,096 tokens a
//! step, width 128): forward `x w^T` and backward (`dx = dy w`, `dw = dy^T x`, two products),
//! reported by criterion as elements/s = FLOP/s (2 m n k per product).
//!
//! `CANDLE_BARRIER_POOL_SPIN_LIMIT=0 RAYON_NUM_THREADS=N CANDLE_NUM_THREADS=N
//! cargo bench -p attnlab-model --bench matmul`; README's performance section has the matching
//! `torch.mm` snippet.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::time::Duration;

use attnlab_model::fused;
use candle_core::{Device, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Tokens per step (batch 32 x block 128).
const M: usize = 4096;

/// `(name, k, n)`: the linear maps `(M, k) x (k, n)` of one block and the LM head.
const SHAPES: [(&str, usize, usize); 5] =
    [("qkv", 128, 384), ("o_proj", 128, 128), ("fc", 128, 512), ("proj", 512, 128), ("lm_head", 128, 65)];

fn fill(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut group = c.benchmark_group("matmul");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for (name, k, n) in SHAPES {
        let x = Tensor::from_vec(fill(M * k, 1), (M, k), &dev).expect("x");
        let w = Tensor::from_vec(fill(n * k, 2), (n, k), &dev).expect("w");
        let dy = Tensor::from_vec(fill(M * n, 3), (M, n), &dev).expect("dy");
        let flops = (2 * M * n * k) as u64;
        group.throughput(Throughput::Elements(flops));
        group.bench_function(format!("{name}_fwd_{M}x{k}x{n}"), |b| {
            b.iter(|| std::hint::black_box(fused::linear(&x, &w, None).expect("linear").expect("fused")))
        });
        group.throughput(Throughput::Elements(2 * flops));
        group.bench_function(format!("{name}_bwd_{M}x{n}x{k}+{n}x{M}x{k}"), |b| {
            b.iter(|| {
                std::hint::black_box(fused::linear_backward(&x, &w, &dy).expect("backward").expect("fused"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
