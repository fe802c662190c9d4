//! The attention route: chosen once from the kernel switches, device and dtype; probes leave
//! the logits unchanged.

use attnlab_model::fused::{self, Kernel};
use attnlab_model::{GptConfig, Job, MetricKind, Model, ModelConfig, Route};
use candle_core::{DType, Result, Tensor};

use crate::util::{DEV, max_abs_diff};

#[test]
fn route_follows_the_kernel_switches_and_the_dtype() -> Result<()> {
    let x = Tensor::zeros((1, 2, 3), DType::F32, &DEV)?;
    let choose = |bits: u8, job: Job, x: &Tensor| fused::with_enabled(bits, || Route::choose(job, x));
    let all = fused::parse_kernels("all")?;
    assert_eq!(choose(all, Job::SelfAttention, &x), Route::PackedSelfAttention);
    assert_eq!(choose(all, Job::Attention, &x), Route::AttentionTiles);
    assert_eq!(choose(all, Job::Weights, &x), Route::WeightsKernel);
    let no_linear = all & !(Kernel::Linear as u8);
    assert_eq!(choose(no_linear, Job::SelfAttention, &x), Route::AttentionTiles);
    let weights_only = Kernel::Weights as u8;
    assert_eq!(choose(weights_only, Job::SelfAttention, &x), Route::WeightsKernel);
    assert_eq!(choose(weights_only, Job::Attention, &x), Route::WeightsKernel);
    for job in [Job::SelfAttention, Job::Attention, Job::Weights] {
        assert_eq!(choose(0, job, &x), Route::Composed, "{job:?} with every kernel off");
        let x64 = x.to_dtype(DType::F64)?;
        assert_eq!(choose(all, job, &x64), Route::Composed, "{job:?} on f64 takes candle ops");
    }
    Ok(())
}

#[test]
fn probes_return_every_layer_and_leave_the_logits_unchanged() -> Result<()> {
    for metric in MetricKind::ALL {
        let mut cfg = GptConfig::baby_char(11);
        (cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd) = (8, 3, 2, 8);
        cfg.attention.metric = metric;
        let (model, _) = Model::init(&ModelConfig::Gpt(cfg), 5, &DEV)?;
        let gpt = model.as_gpt().expect("gpt");
        let idx = Tensor::new(&[[1u32, 4, 2, 7, 3, 3, 9, 0]], &DEV)?;
        let plain = gpt.forward(&idx)?;
        let (probed, probes) = gpt.forward_with_probes(&idx)?;
        assert_eq!(probes.len(), 3, "{metric}: one probe per layer");
        for p in &probes {
            assert_eq!(p.q.dims(), &[1, 2, 8, 4], "{metric}: probe q shape");
            assert_eq!(p.k.dims(), &[1, 2, 8, 4], "{metric}: probe k shape");
        }
        let d = max_abs_diff(&plain, &probed)?;
        assert!(d < 1e-5, "{metric}: packed and probed routes differ by {d}");
    }
    Ok(())
}
