//! qk-norm, RoPE and the learned score scale: the identities they promise (keys of norm
//! `sqrt(d)`, `neg_sq_euclid` = `dot` at twice the scale, scores depending on content and
//! offset only, partial RoPE), f64 finite-difference gradients of the composed ops, the fused
//! kernel against them, and whole GPTs (causality, every variable trained, fused vs composed).

use attnlab_model::fused;
use attnlab_model::qk::{QkTransform, Rope};
use attnlab_model::{
    GptConfig, MetricKind, MetricLayer, MetricSpec, Model, ModelConfig, ParamStore, PosKind, QkNorm,
    causal_mask,
};
use candle_core::{D, DType, IndexOp, Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::util::{DEV, max_abs, max_abs_diff, randn};

const NORMS: [QkNorm; 4] = [QkNorm::None, QkNorm::Rms, QkNorm::RmsGain, QkNorm::L2];

fn rand64(seed: u64, shape: &[usize]) -> Result<Tensor> {
    randn(&mut ChaCha8Rng::seed_from_u64(seed), shape, 1.0)?.to_dtype(DType::F64)
}

fn transform(norm: QkNorm, rope: Option<Rope>, d: usize) -> Result<(QkTransform, ParamStore)> {
    let store = ParamStore::new(1, &DEV);
    Ok((QkTransform::new(norm, rope, d, &store.root())?, store))
}

fn max_abs_diff64(a: &Tensor, b: &Tensor) -> Result<f64> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()
}

/// A tiny GPT with the modern options (qk-norm `norm`, RoPE over `rope_fraction`, learned scale).
fn modern(metric: MetricKind, norm: QkNorm, rope_fraction: f64) -> GptConfig {
    let mut cfg = GptConfig::baby_char(11);
    (cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd) = (8, 2, 2, 16);
    cfg.attention = MetricSpec::of(metric);
    cfg.attention.learn_scale = true;
    cfg.qk.qk_norm = norm;
    cfg.pos.pos = PosKind::Rope;
    cfg.pos.rope_fraction = rope_fraction;
    cfg
}

fn tokens() -> Result<Tensor> {
    Tensor::new(&[[1u32, 4, 2, 7, 3, 3, 9, 0], [5, 5, 1, 2, 8, 6, 10, 4]], &DEV)
}

#[test]
fn rms_keys_have_norm_sqrt_d_and_neg_sq_euclid_is_dot_at_twice_the_scale() -> Result<()> {
    // Keys as the metric sees them in a GPT (f32): norm sqrt(d), dispersion 0. The norm is
    // `sqrt(d) sqrt(ms / (ms + eps))` for a row of mean square ms (torch's definition); at
    // initialisation (weights N(0, 0.02)) ms is about 1e-3 and eps = 1.2e-7 shows in the fifth
    // digit, so the projections are scaled up to trained sizes first.
    let (model, store) = Model::init(&ModelConfig::Gpt(modern(MetricKind::Dot, QkNorm::Rms, 1.0)), 2, &DEV)?;
    for (name, v) in store.vars() {
        if name.ends_with("k_proj.weight") {
            v.set(&(v.as_tensor() * 50.0)?)?;
        }
    }
    let (_, probes) = model.as_gpt().expect("gpt").forward_with_probes(&tokens()?)?;
    for (layer, p) in probes.iter().enumerate() {
        let norms: Vec<f32> = p.k.sqr()?.sum(D::Minus1)?.sqrt()?.flatten_all()?.to_vec1()?;
        let mean = norms.iter().sum::<f32>() / norms.len() as f32;
        let sd = (norms.iter().map(|n| (n - mean).powi(2)).sum::<f32>() / norms.len() as f32).sqrt();
        for n in &norms {
            assert!((n - 8f32.sqrt()).abs() < 2e-6, "layer {layer}: key norm {n}, expected sqrt(8)");
        }
        assert!(sd / mean < 1e-6, "layer {layer}: key-norm dispersion {}", sd / mean);
    }
    // In f64: neg_sq_euclid weights at scale s equal dot weights at scale 2s.
    let d = 8;
    let (qk, _) = transform(QkNorm::Rms, Some(Rope { rot: 8, base: 10_000.0 }), d)?;
    let (q, k) = qk.heads(&rand64(1, &[2, 3, 7, d])?, &rand64(2, &[2, 3, 7, d])?, 0)?;
    let norms = k.sqr()?.sum(D::Minus1)?.sqrt()?;
    let worst = (norms - (d as f64).sqrt())?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    assert!(worst < 1e-6, "f64 key norms off sqrt(d) by {worst}");
    let store = ParamStore::new(1, &DEV);
    let mask = causal_mask(7, &DEV)?.to_dtype(DType::F64)?;
    let nsq = MetricLayer::new(&MetricSpec::of(MetricKind::NegSqEuclid), 3, d, &store.root())?;
    let dot = MetricLayer::new(&MetricSpec::of(MetricKind::Dot), 3, d, &store.root())?
        .with_scale(2.0 * nsq.scale());
    let diff = max_abs_diff64(
        &nsq.weights_reference(&q, &k, Some(&mask))?,
        &dot.weights_reference(&q, &k, Some(&mask))?,
    )?;
    assert!(diff < 1e-6, "neg_sq_euclid vs dot at twice the scale: weights differ by {diff}");
    // Without qk-norm they differ (the identity is not vacuous).
    let (q0, k0) = (rand64(1, &[2, 3, 7, d])?, rand64(2, &[2, 3, 7, d])?);
    let diff0 = max_abs_diff64(
        &nsq.weights_reference(&q0, &k0, Some(&mask))?,
        &dot.weights_reference(&q0, &k0, Some(&mask))?,
    )?;
    assert!(diff0 > 1e-3, "without qk-norm the two should differ, got {diff0}");
    Ok(())
}

#[test]
fn rope_scores_depend_on_content_and_offset_only_for_every_metric() -> Result<()> {
    let d = 8;
    let (q, k) = (rand64(3, &[1, 2, 6, d])?, rand64(4, &[1, 2, 6, d])?);
    for metric in MetricKind::ALL {
        for (norm, rot) in [(QkNorm::None, 8), (QkNorm::Rms, 4), (QkNorm::L2, 8)] {
            let (qk, _) = transform(norm, Some(Rope { rot, base: 10_000.0 }), d)?;
            let store = ParamStore::new(1, &DEV);
            let layer = MetricLayer::new(&MetricSpec::of(metric), 2, d, &store.root())?;
            let scores = |start: usize| -> Result<Tensor> {
                let (q, k) = qk.heads(&q, &k, start)?;
                layer.scores(&q, &k)?.to_dtype(DType::F64)
            };
            let s0 = scores(0)?;
            for shift in [1, 5, 37] {
                let diff = max_abs_diff64(&s0, &scores(shift)?)?;
                assert!(
                    diff < 1e-9,
                    "{metric}/{norm:?}/rot {rot}: shifting positions by {shift} moved scores by {diff}"
                );
            }
            let (qn, kn) = transform(norm, None, d)?.0.heads(&q, &k, 0)?;
            let plain = layer.scores(&qn, &kn)?.to_dtype(DType::F64)?;
            assert!(max_abs_diff64(&s0, &plain)? > 1e-4, "{metric}/{norm:?}: RoPE changed nothing");
        }
    }
    Ok(())
}

#[test]
fn partial_rope_leaves_the_unrotated_half_alone_and_keeps_norms() -> Result<()> {
    let x = rand64(5, &[1, 2, 5, 8])?;
    let y = Rope { rot: 4, base: 10_000.0 }.rotate(&x, 0)?;
    assert_eq!(
        y.narrow(3, 4, 4)?.flatten_all()?.to_vec1::<f64>()?,
        x.narrow(3, 4, 4)?.flatten_all()?.to_vec1::<f64>()?
    );
    assert!(
        max_abs_diff64(&y.i((.., .., 0, ..))?, &x.i((.., .., 0, ..))?)? < 1e-15,
        "position 0 is not rotated"
    );
    let rot = |t: &Tensor| t.narrow(3, 0, 4)?.sqr()?.sum(D::Minus1);
    assert!(max_abs_diff64(&rot(&x)?, &rot(&y)?)? < 1e-12, "rotated half keeps its norm");
    assert!(
        max_abs_diff64(&y.narrow(3, 0, 4)?.narrow(2, 1, 4)?, &x.narrow(3, 0, 4)?.narrow(2, 1, 4)?)? > 1e-3
    );
    // Pairs are (i, i + rot/2): at position 1, dim 0 turns by 1 radian with dim 2.
    let (a, b) = (x.i((0, 0, 1, 0))?.to_scalar::<f64>()?, x.i((0, 0, 1, 2))?.to_scalar::<f64>()?);
    let y0 = y.i((0, 0, 1, 0))?.to_scalar::<f64>()?;
    assert!((y0 - (a * 1f64.cos() - b * 1f64.sin())).abs() < 1e-12, "pair layout");
    Ok(())
}

/// `sum(probe_q * q' + probe_k * k')` of the composed transform, with its gradient by candle and
/// by central differences in f64.
#[test]
fn composed_qk_norm_and_rope_gradients_match_finite_differences() -> Result<()> {
    let d = 8;
    for norm in NORMS {
        for rope in [None, Some(Rope { rot: 4, base: 100.0 }), Some(Rope { rot: 8, base: 10_000.0 })] {
            let (qk, _) = transform(norm, rope, d)?;
            let (q, k) = (
                Var::from_tensor(&rand64(6, &[1, 2, 5, d])?)?,
                Var::from_tensor(&rand64(7, &[1, 2, 5, d])?)?,
            );
            let (pq, pk) = (rand64(8, &[1, 2, 5, d])?, rand64(9, &[1, 2, 5, d])?);
            let loss = |q: &Tensor, k: &Tensor| -> Result<Tensor> {
                let (q, k) = qk.heads(q, k, 3)?;
                (q * &pq)?.sum_all()? + (k * &pk)?.sum_all()?
            };
            let grads = loss(q.as_tensor(), k.as_tensor())?.backward()?;
            let (gq, gk) = (grads.get(q.as_tensor()).expect("dq"), grads.get(k.as_tensor()).expect("dk"));
            let (dq, dk) = (rand64(10, q.dims())?, rand64(11, k.dims())?);
            let analytic = ((gq * &dq)?.sum_all()? + (gk * &dk)?.sum_all()?)?.to_scalar::<f64>()?;
            let h = 1e-5;
            let at = |s: f64| -> Result<f64> {
                loss(&(q.as_tensor() + (&dq * (s * h))?)?, &(k.as_tensor() + (&dk * (s * h))?)?)?
                    .to_scalar::<f64>()
            };
            let numeric = (at(1.0)? - at(-1.0)?) / (2.0 * h);
            let err = (numeric - analytic).abs();
            assert!(
                err < 1e-6 * (1.0 + analytic.abs()),
                "{norm:?}/{rope:?}: finite difference {numeric} vs {analytic}"
            );
        }
    }
    Ok(())
}

/// A GPT of `cfg` with the fused kernels `kernels` on: its logits on `idx` and the gradient of
/// every variable of the cross-entropy loss, by name; with `gains_off_one`, the qk-norm gains
/// are first set away from 1 (so that a wrong gain gradient shows).
fn logits_and_grads(
    cfg: &GptConfig,
    idx: &Tensor,
    kernels: &str,
    gains_off_one: bool,
) -> Result<Vec<(String, Tensor)>> {
    fused::with_enabled(fused::parse_kernels(kernels)?, || {
        let store = ParamStore::new(3, &DEV);
        let model = Model::new(&ModelConfig::Gpt(cfg.clone()), &store)?;
        for (n, v) in store.vars() {
            if gains_off_one && (n.ends_with("q_norm.weight") || n.ends_with("k_norm.weight")) {
                let g = randn(&mut ChaCha8Rng::seed_from_u64(4), v.dims(), 1.0)?;
                v.set(&g.affine(0.3, 1.0)?)?;
            }
        }
        let logits = model.as_gpt().expect("gpt").forward(idx)?;
        let loss = candle_nn::loss::cross_entropy(&logits.flatten_to(1)?, &idx.flatten_all()?)?;
        let grads = loss.backward()?;
        let mut out = vec![("logits".to_string(), logits)];
        for (n, v) in store.vars() {
            let g = grads.get(v.as_tensor()).cloned();
            out.push((n.clone(), g.ok_or_else(|| candle_core::Error::Msg(format!("no gradient for {n}")))?));
        }
        Ok(out)
    })
}

/// The packed self-attention kernel, which applies qk-norm and RoPE to the rows it gathers,
/// against the composed ops on split heads: logits and the gradients of every variable (gains
/// set away from 1 so that a wrong gain gradient shows), every qk-norm x RoPE variant, for a
/// scaled, a unit-row and a distance metric.
#[test]
fn packed_kernel_qk_transform_matches_the_composed_ops() -> Result<()> {
    let idx = tokens()?;
    let ropes = [(PosKind::Learned, 1.0), (PosKind::Rope, 0.5), (PosKind::Rope, 1.0)];
    for metric in [MetricKind::Dot, MetricKind::Cosine, MetricKind::NegSqEuclid] {
        for norm in NORMS {
            for (pos, fraction) in ropes {
                let mut cfg = modern(metric, norm, fraction);
                cfg.pos.pos = pos;
                let name = format!("{metric}/{norm:?}/{pos:?} {fraction}");
                let run = |kernels: &str| logits_and_grads(&cfg, &idx, kernels, true);
                let (f, r) = (run("all")?, run("none")?);
                assert_eq!(f.len(), r.len(), "{name}");
                for ((n, a), (_, b)) in f.iter().zip(&r) {
                    let diff = max_abs_diff(a, b)?;
                    assert!(diff < 2e-5 * (1.0 + max_abs(b)?), "{name}: {n} differs by {diff}");
                }
            }
        }
    }
    Ok(())
}

/// Fused and composed GPTs with the modern options: logits and every gradient, every metric;
/// and the learned scale gets a gradient.
#[test]
fn modern_gpt_fused_matches_composed_and_trains_every_variable() -> Result<()> {
    let idx = tokens()?;
    let mut cfgs: Vec<GptConfig> = MetricKind::ALL.iter().map(|&m| modern(m, QkNorm::Rms, 0.5)).collect();
    let mut c = modern(MetricKind::Dot, QkNorm::RmsGain, 1.0);
    c.qk.attn_norm = false;
    cfgs.push(c);
    let mut c = modern(MetricKind::NegEuclid, QkNorm::L2, 1.0);
    c.pos.pos = PosKind::None;
    cfgs.push(c);
    for cfg in cfgs {
        let name = format!("{}/{:?}/{:?}", cfg.attention.metric, cfg.qk.qk_norm, cfg.pos.pos);
        let run = |kernels: &str| logits_and_grads(&cfg, &idx, kernels, false);
        let (f, r) = (run("all")?, run("none")?);
        for ((n, a), (_, b)) in f.iter().zip(&r) {
            let d = max_abs_diff(a, b)?;
            assert!(d < 1e-4 * (1.0 + max_abs(b)?), "{name}: {n} differs by {d}");
            let g = max_abs(a)?;
            assert!(g.is_finite() && g > 0.0, "{name}: {n} is zero or not finite");
        }
        let has_scale = f.iter().any(|(n, _)| n.ends_with("metric.log_scale"));
        let scaled =
            matches!(cfg.attention.metric, MetricKind::Dot | MetricKind::NegSqEuclid | MetricKind::NegEuclid);
        assert_eq!(has_scale, scaled, "{name}: log_scale variable present iff the metric has a scale");
        assert!(!f.iter().any(|(n, _)| n.starts_with("wpe")), "{name}: no learned positions");
        let gains =
            f.iter().filter(|(n, _)| n.ends_with("q_norm.weight") || n.ends_with("k_norm.weight")).count();
        assert_eq!(gains, if cfg.qk.qk_norm == QkNorm::RmsGain { 4 } else { 0 }, "{name}: gains");
        let ln1 = f.iter().any(|(n, _)| n.contains("ln_1"));
        assert_eq!(ln1, cfg.qk.attn_norm, "{name}: ln_1 present iff attn_norm");
    }
    Ok(())
}

#[test]
fn rope_keeps_attention_causal_on_every_route() -> Result<()> {
    for metric in MetricKind::ALL {
        let (model, _) = Model::init(&ModelConfig::Gpt(modern(metric, QkNorm::Rms, 0.5)), 3, &DEV)?;
        let gpt = model.as_gpt().expect("gpt");
        let a = tokens()?.i(0..1)?;
        let mut row: Vec<u32> = a.i(0)?.to_vec1()?;
        row[5] = (row[5] + 1) % 11;
        let b = Tensor::new(row.as_slice(), &DEV)?.unsqueeze(0)?;
        for kernels in ["all", "none"] {
            let diff = fused::with_enabled(fused::parse_kernels(kernels)?, || -> Result<Vec<f32>> {
                (gpt.forward(&a)? - gpt.forward(&b)?)?.abs()?.max(D::Minus1)?.squeeze(0)?.to_vec1::<f32>()
            })?;
            assert!(
                diff[..5].iter().all(|d| *d == 0.0),
                "{metric}/{kernels}: earlier outputs changed: {diff:?}"
            );
            assert!(diff[5] > 0.0, "{metric}/{kernels}: position 5 did not change");
        }
    }
    Ok(())
}

#[test]
fn bad_qk_and_position_options_are_rejected_naming_the_key() {
    let check = |f: &dyn Fn(&mut GptConfig), key: &str| {
        let mut cfg = modern(MetricKind::Dot, QkNorm::Rms, 1.0);
        f(&mut cfg);
        let err = cfg.validate().expect_err("should be rejected").to_string();
        assert!(err.contains(key), "error `{err}` does not name `{key}`");
    };
    check(&|c| c.pos.rope_fraction = 0.0, "rope_fraction");
    check(&|c| c.pos.rope_fraction = 1.5, "rope_fraction");
    check(&|c| c.pos.rope_fraction = 0.375, "rope_fraction"); // 3 of 8 dimensions: odd
    check(&|c| c.pos.rope_fraction = 0.3, "rope_fraction"); // 2.4 dimensions
    check(&|c| c.pos.rope_base = -1.0, "rope_base");
    check(&|c| c.attention.attn_scale = Some(0.0), "attn_scale");
    // RoPE options without RoPE would do nothing.
    check(&|c| (c.pos.pos, c.pos.rope_fraction) = (PosKind::Learned, 0.5), "rope_fraction");
    check(&|c| (c.pos.pos, c.pos.rope_base) = (PosKind::None, 500.0), "rope_base");
    let bad = r#"{"kind":"set_regressor","dim":2,"n_layer":1,"n_head":1,"n_embd":4,"pos":"rope"}"#;
    let err = attnlab_model::config::from_value_strict::<ModelConfig>(
        serde_json::from_str(bad).expect("json"),
        "model",
    )
    .expect_err("a set has no positions");
    assert!(err.contains("model.pos"), "{err}");
    let bad =
        r#"{"kind":"gpt","vocab_size":3,"block_size":4,"n_layer":1,"n_head":1,"n_embd":4,"qk_norm":"layer"}"#;
    let err = serde_json::from_str::<ModelConfig>(bad).expect_err("unknown qk_norm").to_string();
    assert!(err.contains("layer") && err.contains("rms_gain"), "{err}");
}

/// The set regressor takes qk-norm, the learned scale and `attn_norm` too: fused and composed
/// agree and every variable is trained.
#[test]
fn set_regressor_takes_the_qk_options() -> Result<()> {
    use attnlab_model::SetRegressorConfig;
    let mut cfg = SetRegressorConfig::small(2);
    (cfg.n_layer, cfg.n_head, cfg.n_embd) = (2, 2, 8);
    cfg.attention = MetricSpec::of(MetricKind::NegSqEuclid);
    cfg.attention.learn_scale = true;
    cfg.qk.qk_norm = QkNorm::RmsGain;
    cfg.qk.attn_norm = false;
    let ctx = randn(&mut ChaCha8Rng::seed_from_u64(20), &[2, 6, 3], 1.0)?;
    let queries = randn(&mut ChaCha8Rng::seed_from_u64(21), &[2, 3, 2], 1.0)?;
    let run = |kernels: &str| -> Result<Vec<(String, Tensor)>> {
        fused::with_enabled(fused::parse_kernels(kernels)?, || {
            let store = ParamStore::new(3, &DEV);
            let model = Model::new(&ModelConfig::SetRegressor(cfg.clone()), &store)?;
            let y = model.as_set_regressor().expect("set regressor").forward(&ctx, &queries)?;
            let grads = y.sqr()?.sum_all()?.backward()?;
            let mut out = vec![("y".to_string(), y)];
            for (n, v) in store.vars() {
                let g = grads.get(v.as_tensor()).cloned();
                out.push((
                    n.clone(),
                    g.ok_or_else(|| candle_core::Error::Msg(format!("no gradient for {n}")))?,
                ));
            }
            Ok(out)
        })
    };
    let (f, r) = (run("all")?, run("none")?);
    assert!(
        f.iter().any(|(n, _)| n.ends_with("metric.log_scale"))
            && f.iter().any(|(n, _)| n.ends_with("k_norm.weight"))
    );
    assert!(!f.iter().any(|(n, _)| n.contains("ln_1")), "attn_norm = false removes ln_1");
    for ((n, a), (_, b)) in f.iter().zip(&r) {
        let d = max_abs_diff(a, b)?;
        assert!(d < 1e-4 * (1.0 + max_abs(b)?), "{n} differs by {d}");
        assert!(max_abs(a)? > 0.0, "{n} is zero");
    }
    Ok(())
}
