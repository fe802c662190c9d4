//! A whole GPT with every fused kernel against the same GPT with none (candle's composed ops):
//! logits, loss and the gradient of every variable, for every metric. Kernels are switched for
//! this test's thread only ([`fused::with_enabled`]), so other tests keep the default.

use attnlab_model::{GptConfig, MetricKind, MetricSpec, Model, ModelConfig, ParamStore, fused};
use candle_core::{D, Device, Result, Tensor};

use crate::util::{max_abs, max_abs_diff};

/// Logits and the gradient of every variable of a GPT built from `cfg` (seed 3).
fn logits_and_grads(cfg: &GptConfig, idx: &Tensor) -> Result<Vec<Tensor>> {
    let store = ParamStore::new(3, idx.device());
    let model = Model::new(&ModelConfig::Gpt(cfg.clone()), &store)?;
    let Model::Gpt(gpt) = &model else { unreachable!("built a GPT") };
    let logits = gpt.forward(idx)?;
    let loss = (candle_nn::ops::log_softmax(&logits, D::Minus1)? * -1.0)?.mean_all()?;
    let grads = loss.backward()?;
    let mut out = vec![logits];
    for (name, v) in store.vars() {
        let g = grads.get(v.as_tensor()).cloned();
        let metric = cfg.attention.metric;
        out.push(g.ok_or_else(|| candle_core::Error::Msg(format!("{metric}: no gradient for {name}")))?);
    }
    Ok(out)
}

#[test]
fn fused_gpt_matches_the_composed_gpt() -> Result<()> {
    let dev = Device::Cpu;
    for metric in MetricKind::ALL {
        let mut cfg = GptConfig::baby_char(11);
        (cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.bias) = (9, 2, 2, 8, true);
        cfg.attention = MetricSpec::of(metric);
        let idx: Vec<u32> = (0..18).map(|i| (i * 7 % 11) as u32).collect();
        let idx = Tensor::from_vec(idx, (2, 9), &dev)?;
        let run = |kernels: &str| -> Result<Vec<Tensor>> {
            fused::with_enabled(fused::parse_kernels(kernels)?, || logits_and_grads(&cfg, &idx))
        };
        let (fused_out, composed_out) = (run("all")?, run("none")?);
        for (i, (a, r)) in fused_out.iter().zip(&composed_out).enumerate() {
            let d = max_abs_diff(a, r)?;
            let scale = max_abs(r)?;
            assert!(d < 1e-4 * (1.0 + scale), "{metric}: logits/gradient {i} differ by {d}");
        }
    }
    Ok(())
}
