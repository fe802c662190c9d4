//! The attention-metric layer against a naive pairwise-difference reference, finite
//! differences (also at distance zero), and the identities between metrics.

use attnlab_model::{MetricKind, MetricLayer, MetricSpec, ParamStore};
use candle_core::{D, DType, Device, Tensor, Var};

const B: usize = 2;
const H: usize = 2;
const T: usize = 4;
const DH: usize = 3;

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn qk(seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut q = values(B * H * T * DH, seed);
    let k = values(B * H * T * DH, seed + 1);
    // Query 1 of batch 0, head 0 sits exactly on key 2: distance zero.
    let (qi, ki) = (DH, 2 * DH);
    q[qi..qi + DH].copy_from_slice(&k[ki..ki + DH]);
    (q, k)
}

fn tensor(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), (B, H, T, DH), &Device::Cpu).expect("tensor")
}

fn spec(metric: MetricKind, power: f64) -> MetricSpec {
    let mut s = MetricSpec::of(metric);
    s.power = Some(power);
    s.temperature = 3.0;
    s.learn_power = metric == MetricKind::Idw;
    s
}

fn layer(spec: &MetricSpec) -> (MetricLayer, ParamStore) {
    let params = ParamStore::new(0, &Device::Cpu);
    let layer = MetricLayer::new(spec, H, DH, &params.root()).expect("layer");
    (layer, params)
}

/// Every (metric, power) pair the tests cover.
fn cases() -> Vec<(MetricKind, f64)> {
    let mut c: Vec<(MetricKind, f64)> = MetricKind::ALL.iter().map(|&m| (m, 2.0)).collect();
    for m in [MetricKind::NegEuclid, MetricKind::Idw, MetricKind::InvDist, MetricKind::Rbf] {
        c.push((m, 1.0));
        c.push((m, 3.0));
    }
    c
}

/// Naive score from explicit differences, as the metric table in DESIGN.md writes it.
fn naive_score(s: &MetricSpec, q: &[f64], k: &[f64]) -> f64 {
    let d2: f64 = q.iter().zip(k).map(|(a, b)| (a - b) * (a - b)).sum();
    let dot: f64 = q.iter().zip(k).map(|(a, b)| a * b).sum();
    let norm = |x: &[f64]| (x.iter().map(|a| a * a).sum::<f64>() + 1e-12).sqrt();
    let distp = (d2 + s.delta).powf(s.power() / 2.0);
    let scale = 1.0 / (DH as f64).sqrt();
    match s.metric {
        MetricKind::Dot => dot * scale,
        MetricKind::Cosine => s.temperature * dot / (norm(q) * norm(k)),
        MetricKind::NegSqEuclid => -d2 * scale,
        MetricKind::NegEuclid => -distp * scale,
        MetricKind::Idw => -(s.eps + distp).ln(),
        MetricKind::InvDist => 1.0 / (s.eps + distp),
        MetricKind::Rbf => (-distp / 2.0).exp(),
    }
}

/// Naive causal softmax weights `(b, h, t, t)`, flattened.
fn naive_weights(s: &MetricSpec, q: &[f64], k: &[f64], causal: bool) -> Vec<f64> {
    let mut out = Vec::new();
    for bh in 0..B * H {
        for i in 0..T {
            let qi = &q[(bh * T + i) * DH..][..DH];
            let row: Vec<f64> = (0..T)
                .map(|j| {
                    if causal && j > i {
                        f64::NEG_INFINITY
                    } else {
                        naive_score(s, qi, &k[(bh * T + j) * DH..][..DH])
                    }
                })
                .collect();
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            out.extend(e.iter().map(|x| x / z));
        }
    }
    out
}

fn causal_mask_f64() -> Tensor {
    attnlab_model::causal_mask(T, &Device::Cpu).and_then(|m| m.to_dtype(DType::F64)).expect("mask")
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all().and_then(|t| t.to_dtype(DType::F64)).and_then(|t| t.to_vec1()).expect("vec")
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}: element {i}: {x} vs {y}");
    }
}

#[test]
fn scores_and_weights_match_naive_pairwise_reference() {
    let (q, k) = qk(1);
    for (metric, power) in cases() {
        let s = spec(metric, power);
        let (layer, _) = layer(&s);
        let scores = flat(&layer.scores(&tensor(&q), &tensor(&k)).expect("scores"));
        let mut naive = Vec::new();
        for bh in 0..B * H {
            for i in 0..T {
                for j in 0..T {
                    naive.push(naive_score(&s, &q[(bh * T + i) * DH..][..DH], &k[(bh * T + j) * DH..][..DH]));
                }
            }
        }
        assert_close(&scores, &naive, 1e-9, &format!("{metric} p={power} scores"));
        for causal in [false, true] {
            let mask = causal.then(causal_mask_f64);
            let w = layer.weights(&tensor(&q), &tensor(&k), mask.as_ref()).expect("weights");
            let what = format!("{metric} p={power} causal={causal} weights");
            assert_close(&flat(&w), &naive_weights(&s, &q, &k, causal), 1e-9, &what);
        }
    }
}

/// `L = sum(weights(q, k, causal) * r)`: checks d L / d q, d k and the metric's own variables
/// against central differences in f64, with a query exactly on a key (distance zero).
#[test]
fn gradients_match_finite_differences_including_distance_zero() -> candle_core::Result<()> {
    let (q0, k0) = qk(5);
    let r = Tensor::from_vec(values(B * H * T * T, 9), (B, H, T, T), &Device::Cpu)?;
    let mask = causal_mask_f64();
    for (metric, power) in cases() {
        let s = spec(metric, power);
        let (layer, params) = layer(&s);
        let loss = |q: &Tensor, k: &Tensor| -> candle_core::Result<Tensor> {
            (layer.weights(q, k, Some(&mask))? * &r)?.sum_all()
        };
        let (q, k) = (Var::from_tensor(&tensor(&q0))?, Var::from_tensor(&tensor(&k0))?);
        let grads = loss(q.as_tensor(), k.as_tensor())?.backward()?;
        let what = format!("{metric} p={power}");
        for (var, base, name) in [(&q, &q0, "q"), (&k, &k0, "k")] {
            let g = grads.get(var.as_tensor()).expect("gradient");
            let g = flat(g);
            assert!(g.iter().all(|x| x.is_finite()), "{what}: non-finite d/d{name}");
            let h = 1e-6;
            for i in 0..base.len() {
                let mut plus = base.clone();
                plus[i] += h;
                let mut minus = base.clone();
                minus[i] -= h;
                let (lp, lm) = if name == "q" {
                    (loss(&tensor(&plus), &tensor(&k0))?, loss(&tensor(&minus), &tensor(&k0))?)
                } else {
                    (loss(&tensor(&q0), &tensor(&plus))?, loss(&tensor(&q0), &tensor(&minus))?)
                };
                let fd = (lp.to_scalar::<f64>()? - lm.to_scalar::<f64>()?) / (2.0 * h);
                assert!(
                    (g[i] - fd).abs() <= 1e-4 * (1.0 + fd.abs()),
                    "{what}: d/d{name}[{i}] {} vs {fd}",
                    g[i]
                );
            }
        }
        for (name, var) in params.vars() {
            let g = grads.get(var.as_tensor()).expect("metric variable gradient");
            let g = flat(g);
            let base = flat(var.as_tensor());
            for i in 0..base.len() {
                let eval = |delta: f64| -> candle_core::Result<f64> {
                    let mut v = base.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_vec(
                        v.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                        base.len(),
                        &Device::Cpu,
                    )?)?;
                    loss(&tensor(&q0), &tensor(&k0))?.to_scalar::<f64>()
                };
                let h = 1e-2; // the variable is f32: a larger step, a looser tolerance
                let fd = (eval(h)? - eval(-h)?) / (2.0 * h);
                eval(0.0)?;
                assert!(
                    (g[i] - fd).abs() <= 2e-3 * (1.0 + fd.abs()),
                    "{what}: d/d{name}[{i}] {} vs {fd}",
                    g[i]
                );
            }
        }
    }
    Ok(())
}

fn softmax(t: &Tensor) -> Tensor {
    candle_nn::ops::softmax(t, D::Minus1).expect("softmax")
}

#[test]
fn neg_sq_euclid_is_dot_of_scale_two_plus_key_bias() -> candle_core::Result<()> {
    let (q, k) = (tensor(&qk(2).0), tensor(&qk(2).1));
    let scale = 1.0 / (DH as f64).sqrt();
    let (l2, _) = layer(&MetricSpec::of(MetricKind::NegSqEuclid));
    let (dot, _) = layer(&MetricSpec::of(MetricKind::Dot));
    let dot2 = dot.with_scale(2.0 * scale);
    let key_bias = (k.sqr()?.sum_keepdim(D::Minus1)?.t()? * -scale)?; // (b, h, 1, t)
    let via_dot = softmax(&dot2.scores(&q, &k)?.broadcast_add(&key_bias)?);
    assert_close(&flat(&l2.weights(&q, &k, None)?), &flat(&via_dot), 1e-12, "l2 = 2 dot + key bias");
    // Keys of one common norm: the key bias is constant per row, so the weights coincide.
    let k_unit = k.broadcast_div(&k.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)?;
    let k_equal = (k_unit * 1.7)?;
    assert_close(
        &flat(&l2.weights(&q, &k_equal, None)?),
        &flat(&dot2.weights(&q, &k_equal, None)?),
        1e-12,
        "equal-norm keys",
    );
    // And with keys of different norms they differ: the identity is not trivially true.
    let diff = (l2.weights(&q, &k, None)? - dot2.weights(&q, &k, None)?)?.abs()?.max_all()?;
    assert!(diff.to_scalar::<f64>()? > 1e-3);
    Ok(())
}

#[test]
fn idw_weights_are_shepard_weights() -> candle_core::Result<()> {
    let (q, k) = qk(3);
    for power in [1.0, 2.0, 3.0] {
        let mut s = MetricSpec::of(MetricKind::Idw);
        s.power = Some(power);
        s.delta = 0.0;
        let (layer, _) = layer(&s);
        let w = flat(&layer.weights(&tensor(&q), &tensor(&k), None)?);
        let mut shepard = Vec::new();
        for bh in 0..B * H {
            for i in 0..T {
                let inv: Vec<f64> = (0..T)
                    .map(|j| {
                        let (a, b) = (&q[(bh * T + i) * DH..][..DH], &k[(bh * T + j) * DH..][..DH]);
                        let d = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
                        1.0 / (s.eps + d.powf(power))
                    })
                    .collect();
                let z: f64 = inv.iter().sum();
                shepard.extend(inv.iter().map(|x| x / z));
            }
        }
        assert_close(&w, &shepard, 1e-9, &format!("idw p={power} vs Shepard"));
    }
    Ok(())
}

#[test]
fn masked_keys_get_zero_weight_for_every_metric() -> candle_core::Result<()> {
    let (q, k) = qk(4);
    let mask = attnlab_model::context_mask(2, 2, &Device::Cpu)?.to_dtype(DType::F64)?;
    for metric in MetricKind::ALL {
        let (layer, _) = layer(&MetricSpec::of(metric));
        let w = layer.weights(&tensor(&q), &tensor(&k), Some(&mask))?;
        let w = flat(&w);
        for (n, x) in w.iter().enumerate() {
            let j = n % T;
            if j >= 2 {
                assert_eq!(*x, 0.0, "{metric}: context point sees query {j}");
            }
        }
        let rows = w.chunks(T).map(|r| r.iter().sum::<f64>());
        rows.for_each(|z| assert!((z - 1.0).abs() < 1e-12, "{metric}: row sums to {z}"));
    }
    Ok(())
}

#[test]
fn unknown_metric_names_the_metric_and_alias_parses() {
    assert_eq!(MetricKind::parse("neglog").expect("alias"), MetricKind::Idw);
    let err = MetricKind::parse("manhattan").expect_err("unknown").to_string();
    assert!(err.contains("manhattan") && err.contains("idw"), "{err}");
    let s: MetricSpec = serde_json::from_str(r#"{"metric": "neglog"}"#).expect("alias in config");
    assert_eq!(s.metric, MetricKind::Idw);
}

#[test]
fn neg_euclid_defaults_to_the_euclidean_distance_and_differs_from_neg_sq_euclid() -> candle_core::Result<()> {
    let s: MetricSpec = serde_json::from_str(r#"{"metric": "neg_euclid"}"#).expect("spec");
    assert_eq!((s.power, s.power()), (None, 1.0), "neg_euclid takes p = 1 unless told");
    assert_eq!(MetricSpec::of(MetricKind::Idw).power(), 2.0, "the others keep p = 2");
    let back = serde_json::to_value(&s).expect("serialise");
    assert!(back.get("power").is_none(), "an unset power is not written: {back}");
    let (q, k) = qk(6);
    let (l1, _) = layer(&s);
    let scores = flat(&l1.scores(&tensor(&q), &tensor(&k))?);
    let scale = 1.0 / (DH as f64).sqrt();
    let (q0, k1) = (&q[..DH], &k[DH..2 * DH]);
    let d = q0.iter().zip(k1).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
    assert_close(&scores[1..2], &[-scale * (d + s.delta).sqrt()], 1e-9, "-|q - k| / sqrt(d)");
    let (l2, _) = layer(&MetricSpec::of(MetricKind::NegSqEuclid));
    let diff = (l1.weights(&tensor(&q), &tensor(&k), None)? - l2.weights(&tensor(&q), &tensor(&k), None)?)?;
    assert!(diff.abs()?.max_all()?.to_scalar::<f64>()? > 1e-3, "neg_euclid no longer equals neg_sq_euclid");
    Ok(())
}
