//! `qk_tied`: keys use the query map. One variable (`q_proj`) instead of two; the same numbers
//! as an untied model whose `k_proj` is a copy of `q_proj`; fused and composed routes agree;
//! the gradient of the shared weight matches central finite differences; every metric.

use attnlab_model::{GptConfig, MetricKind, MetricSpec, Model, ModelConfig, ParamStore, fused};
use candle_core::{D, Device, Result, Tensor};

use crate::util::{max_abs, max_abs_diff};

fn tiny(metric: MetricKind, tied: bool) -> GptConfig {
    let mut cfg = GptConfig::baby_char(11);
    (cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.bias) = (7, 2, 2, 8, true);
    cfg.attention = MetricSpec::of(metric);
    cfg.qk.qk_tied = Some(tied);
    cfg
}

fn tokens(dev: &Device) -> Result<Tensor> {
    let idx: Vec<u32> = (0..14).map(|i| (i * 5 % 11) as u32).collect();
    Tensor::from_vec(idx, (2, 7), dev)
}

/// Mean next-token cross-entropy of the GPT of `store` against shifted inputs.
fn loss(model: &Model, idx: &Tensor) -> Result<Tensor> {
    let Model::Gpt(gpt) = model else { unreachable!("built a GPT") };
    let logits = gpt.forward(idx)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let tgt = idx.narrow(1, 1, 6)?.contiguous()?.unsqueeze(D::Minus1)?;
    logp.narrow(1, 0, 6)?.contiguous()?.gather(&tgt, D::Minus1)?.mean_all()?.neg()
}

#[test]
fn tied_keys_have_one_variable_and_equal_an_untied_copy() -> Result<()> {
    let dev = Device::Cpu;
    let idx = tokens(&dev)?;
    for metric in MetricKind::ALL {
        let tied_store = ParamStore::new(1, &dev);
        let tied = Model::new(&ModelConfig::Gpt(tiny(metric, true)), &tied_store)?;
        let names: Vec<String> = tied_store.vars().into_iter().map(|(n, _)| n).collect();
        assert!(names.iter().all(|n| !n.contains("k_proj")), "{metric}: {names:?}");
        assert!(names.iter().any(|n| n.ends_with("attn.q_proj.weight")), "{metric}: {names:?}");
        let free_store = ParamStore::new(2, &dev);
        let free = Model::new(&ModelConfig::Gpt(tiny(metric, false)), &free_store)?;
        for (name, var) in free_store.vars() {
            let src = name.replace("k_proj", "q_proj");
            let v = tied_store.get(&src).ok_or_else(|| candle_core::Error::Msg(format!("no {src}")))?;
            var.set(v.as_tensor())?;
        }
        let (a, b) = (loss(&tied, &idx)?.to_scalar::<f32>()?, loss(&free, &idx)?.to_scalar::<f32>()?);
        assert!((a - b).abs() < 1e-5, "{metric}: tied {a} vs untied copy {b}");
    }
    Ok(())
}

/// The loss and the gradient of every variable of a tied GPT (seed 3) on the route `kernels`.
fn loss_and_grads(metric: MetricKind, kernels: &str, idx: &Tensor) -> Result<Vec<Tensor>> {
    fused::with_enabled(fused::parse_kernels(kernels)?, || {
        let store = ParamStore::new(3, idx.device());
        let model = Model::new(&ModelConfig::Gpt(tiny(metric, true)), &store)?;
        let l = loss(&model, idx)?;
        let grads = l.backward()?;
        let mut out = vec![l];
        for (name, v) in store.vars() {
            let g = grads.get(v.as_tensor()).cloned();
            out.push(g.ok_or_else(|| candle_core::Error::Msg(format!("{metric}: no gradient for {name}")))?);
        }
        Ok(out)
    })
}

#[test]
fn tied_fused_and_composed_routes_agree_and_match_finite_differences() -> Result<()> {
    let dev = Device::Cpu;
    let idx = tokens(&dev)?;
    for metric in MetricKind::ALL {
        let (f, c) = (loss_and_grads(metric, "all", &idx)?, loss_and_grads(metric, "none", &idx)?);
        for (i, (a, r)) in f.iter().zip(&c).enumerate() {
            let d = max_abs_diff(a, r)?;
            assert!(d < 1e-4 * (1.0 + max_abs(r)?), "{metric}: loss/gradient {i} differ by {d}");
        }
        // Central differences along a fixed direction of the shared weight (composed route).
        fused::with_enabled(fused::parse_kernels("none")?, || -> Result<()> {
            let store = ParamStore::new(3, &dev);
            let model = Model::new(&ModelConfig::Gpt(tiny(metric, true)), &store)?;
            let name = "blocks.0.attn.q_proj.weight";
            let w = store.get(name).ok_or_else(|| candle_core::Error::Msg(name.into()))?;
            let w0 = w.as_tensor().copy()?;
            let n = w0.elem_count();
            let dir: Vec<f32> = (0..n).map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0).collect();
            let dir = Tensor::from_vec(dir, w0.shape(), &dev)?;
            let grads = loss(&model, &idx)?.backward()?;
            let g = grads.get(w.as_tensor()).ok_or_else(|| candle_core::Error::Msg("no grad".into()))?;
            let analytic = (g * &dir)?.sum_all()?.to_scalar::<f32>()? as f64;
            let eps = 2e-3;
            let at = |s: f64| -> Result<f64> {
                w.set(&(&w0 + (&dir * s)?)?)?;
                Ok(loss(&model, &idx)?.to_scalar::<f32>()? as f64)
            };
            let numeric = (at(eps)? - at(-eps)?) / (2.0 * eps);
            w.set(&w0)?;
            let tol = 2e-2 * analytic.abs().max(numeric.abs()) + 1e-3;
            assert!(
                (analytic - numeric).abs() < tol,
                "{metric}: gradient {analytic} vs finite difference {numeric}"
            );
            Ok(())
        })?;
    }
    Ok(())
}
