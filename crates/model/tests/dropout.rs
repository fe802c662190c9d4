//! Dropout ([`attnlab_model::dropout`]): masks seeded by (seed, step, site) and dropping at
//! rate `p`; dropout 0 bit-identical to the forward without dropout (the path of every run
//! before dropout existed); evaluation without dropout; fused and composed routes agreeing with
//! dropout on (forward and every gradient); an f64 finite-difference check of the gradient
//! through dropped attention weights.

use attnlab_model::dropout::keep_scales;
use attnlab_model::{
    Dropout, DropoutKey, GptConfig, MetricKind, MetricLayer, MetricSpec, Model, ModelConfig, ParamStore,
    PosKind, QkNorm, Site, causal_mask, fused,
};
use candle_core::{D, DType, Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::util::{DEV, max_abs, max_abs_diff, randn};

const KEY: DropoutKey = DropoutKey { seed: 7, step: 3 };

fn tiny(metric: MetricKind, dropout: Option<f64>) -> GptConfig {
    let mut cfg = GptConfig::baby_char(11);
    (cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.bias) = (9, 2, 2, 8, true);
    cfg.attention = MetricSpec::of(metric);
    cfg.dropout = dropout;
    cfg
}

fn tokens() -> Result<Tensor> {
    let idx: Vec<u32> = (0..18).map(|i| (i * 7 % 11) as u32).collect();
    Tensor::from_vec(idx, (2, 9), &DEV)
}

/// Logits, then the gradient of every variable (sorted by name), of a GPT from `cfg` (seed 3)
/// in training mode at `key` (`None`: the plain forward, no training mode at all).
fn logits_and_grads(cfg: &GptConfig, key: Option<DropoutKey>) -> Result<Vec<Tensor>> {
    let store = ParamStore::new(3, &DEV);
    let model = Model::new(&ModelConfig::Gpt(cfg.clone()), &store)?;
    let model = match key {
        Some(k) => model.training(k)?,
        None => model,
    };
    let Model::Gpt(gpt) = &model else { unreachable!("built a GPT") };
    let logits = gpt.forward(&tokens()?)?;
    let loss = (candle_nn::ops::log_softmax(&logits, D::Minus1)? * -1.0)?.mean_all()?;
    let grads = loss.backward()?;
    let mut out = vec![logits];
    for (name, v) in store.vars() {
        let g = grads.get(v.as_tensor()).cloned();
        out.push(g.ok_or_else(|| candle_core::Error::Msg(format!("no gradient for {name}")))?);
    }
    Ok(out)
}

fn bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?.into_iter().map(f32::to_bits).collect())
}

#[test]
fn masks_are_a_function_of_seed_step_and_site_and_drop_at_rate_p() -> Result<()> {
    let n = 1 << 20;
    for p in [0.1, 0.2, 0.5] {
        let m = keep_scales(p, KEY, Site::AttnWeights(1), n)?;
        assert_eq!(m, keep_scales(p, KEY, Site::AttnWeights(1), n)?, "same key, same mask");
        let scale = (1.0 / (1.0 - p)) as f32;
        assert!(m.iter().all(|&v| v == 0.0 || v == scale), "values are 0 or 1/(1-p)");
        let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        let sigma = (p * (1.0 - p) / n as f64).sqrt();
        assert!((dropped - p).abs() < 5.0 * sigma, "p {p}: dropped {dropped} (sigma {sigma})");
        // The mean of the mask is 1: the expected activation is unchanged.
        let mean = m.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 5.0 * sigma / (1.0 - p), "p {p}: mean {mean}");
    }
    let base = keep_scales(0.5, KEY, Site::AttnResid(0), 4096)?;
    let others = [
        keep_scales(0.5, DropoutKey { seed: 8, ..KEY }, Site::AttnResid(0), 4096)?,
        keep_scales(0.5, DropoutKey { step: 4, ..KEY }, Site::AttnResid(0), 4096)?,
        keep_scales(0.5, KEY, Site::MlpResid(0), 4096)?,
        keep_scales(0.5, KEY, Site::AttnResid(1), 4096)?,
        keep_scales(0.5, KEY, Site::Embedding, 4096)?,
    ];
    for (i, o) in others.iter().enumerate() {
        let same = base.iter().zip(o).filter(|(a, b)| a == b).count();
        // Independent masks agree on about half the positions at p = 0.5.
        assert!((1800..2300).contains(&same), "mask {i} agrees with the base on {same} of 4096");
    }
    // A shorter mask is the start of the longer one (the mask does not depend on the size asked).
    assert_eq!(keep_scales(0.5, KEY, Site::AttnResid(0), 100)?, base[..100]);
    assert!(Dropout::new(1.0, KEY).is_err() && Dropout::new(-0.1, KEY).is_err());
    assert!(Dropout::new(f64::NAN, KEY).is_err());
    assert!(Dropout::new(0.0, KEY)?.is_none(), "p = 0: no dropout at all");
    Ok(())
}

#[test]
fn dropout_zero_in_training_is_bit_identical_to_the_forward_without_dropout() -> Result<()> {
    // `None` is the path every run took before dropout existed; `Some(0.0)` in training mode
    // must take it too, bit for bit, on the fused route and on the composed one.
    for metric in [MetricKind::Dot, MetricKind::Idw, MetricKind::Cosine] {
        for kernels in ["all", "none"] {
            let bits_of = |cfg: &GptConfig, key| -> Result<Vec<Vec<u32>>> {
                let out = fused::with_enabled(fused::parse_kernels(kernels)?, || logits_and_grads(cfg, key))?;
                out.iter().map(bits).collect()
            };
            let today = bits_of(&tiny(metric, None), None)?;
            assert_eq!(today, bits_of(&tiny(metric, Some(0.0)), Some(KEY))?, "{metric} {kernels}: p = 0");
            assert_eq!(today, bits_of(&tiny(metric, None), Some(KEY))?, "{metric} {kernels}: unset");
            // Evaluation of a model with dropout is the model without it (same weights).
            assert_eq!(today, bits_of(&tiny(metric, Some(0.3)), None)?, "{metric} {kernels}: eval");
            assert_ne!(
                today[0],
                bits_of(&tiny(metric, Some(0.3)), Some(KEY))?[0],
                "{metric}: p = 0.3 trains"
            );
        }
    }
    Ok(())
}

#[test]
fn training_forward_is_seeded_by_the_step() -> Result<()> {
    let cfg = tiny(MetricKind::NegSqEuclid, Some(0.2));
    let a = logits_and_grads(&cfg, Some(KEY))?;
    let b = logits_and_grads(&cfg, Some(KEY))?;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(bits(x)?, bits(y)?, "same step: same masks, same numbers");
    }
    let c = logits_and_grads(&cfg, Some(DropoutKey { step: KEY.step + 1, ..KEY }))?;
    assert_ne!(bits(&a[0])?, bits(&c[0])?, "another step draws other masks");
    Ok(())
}

#[test]
fn fused_and_composed_gpts_agree_with_dropout_on() -> Result<()> {
    let mut configs: Vec<GptConfig> = MetricKind::ALL.iter().map(|&m| tiny(m, Some(0.3))).collect();
    for metric in [MetricKind::Dot, MetricKind::Idw] {
        // The modern recipe: RMS qk-norm, RoPE, learned score scale.
        let mut cfg = tiny(metric, Some(0.3));
        cfg.attention.learn_scale = true;
        cfg.qk.qk_norm = QkNorm::Rms;
        cfg.pos.pos = PosKind::Rope;
        configs.push(cfg);
    }
    for cfg in &configs {
        let run = |kernels: &str| -> Result<Vec<Tensor>> {
            fused::with_enabled(fused::parse_kernels(kernels)?, || logits_and_grads(cfg, Some(KEY)))
        };
        let (fused_out, composed_out) = (run("all")?, run("none")?);
        let metric = cfg.attention.metric;
        for (i, (a, r)) in fused_out.iter().zip(&composed_out).enumerate() {
            let d = max_abs_diff(a, r)?;
            let scale = max_abs(r)?;
            assert!(d < 1e-4 * (1.0 + scale), "{metric}: logits/gradient {i} differ by {d}");
        }
    }
    Ok(())
}

#[test]
fn gradient_through_dropped_attention_weights_matches_finite_differences() -> Result<()> {
    // y = dropout(softmax(s(q, k) + mask)) v in f64 (composed route), loss = sum(y * c):
    // autograd against central differences in every query entry.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (b, h, t, d) = (1, 2, 5, 4);
    let layer =
        MetricLayer::new(&MetricSpec::of(MetricKind::NegSqEuclid), h, d, &ParamStore::new(1, &DEV).root())?;
    let q = randn(&mut rng, &[b, h, t, d], 1.0)?.to_dtype(DType::F64)?;
    let k = randn(&mut rng, &[b, h, t, d], 1.0)?.to_dtype(DType::F64)?;
    let v = randn(&mut rng, &[b, h, t, d], 1.0)?.to_dtype(DType::F64)?;
    let c = randn(&mut rng, &[b, h, t, d], 1.0)?.to_dtype(DType::F64)?;
    let mask = causal_mask(t, &DEV)?.to_dtype(DType::F64)?;
    let drop = Dropout::new(0.4, KEY)?.expect("p > 0");
    let loss = |q: &Tensor| -> Result<Tensor> {
        let w = layer.weights_reference(q, &k, Some(&mask))?;
        (drop.apply(&w, Site::AttnWeights(0))?.matmul(&v)? * &c)?.sum_all()
    };
    let qv = Var::from_tensor(&q)?;
    let grad = loss(qv.as_tensor())?.backward()?.get(qv.as_tensor()).cloned().expect("gradient of q");
    let grad = grad.flatten_all()?.to_vec1::<f64>()?;
    let flat = q.flatten_all()?.to_vec1::<f64>()?;
    let eps = 1e-6;
    for i in 0..flat.len() {
        let at = |delta: f64| -> Result<f64> {
            let mut x = flat.clone();
            x[i] += delta;
            loss(&Tensor::from_vec(x, q.shape(), &DEV)?)?.to_scalar::<f64>()
        };
        let fd = (at(eps)? - at(-eps)?) / (2.0 * eps);
        assert!((fd - grad[i]).abs() < 1e-6 * (1.0 + fd.abs()), "q[{i}]: autograd {} vs fd {fd}", grad[i]);
    }
    // Some weights were dropped and the kept ones scaled: not the gradient without dropout.
    let plain =
        (layer.weights_reference(&q, &k, Some(&mask))?.matmul(&v)? * &c)?.sum_all()?.to_scalar::<f64>()?;
    assert!((plain - loss(&q)?.to_scalar::<f64>()?).abs() > 1e-6);
    Ok(())
}
