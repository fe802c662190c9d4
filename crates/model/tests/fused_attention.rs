//! Fused attention routes against the composed (unfused) candle path and finite differences:
//! forward values and every gradient, for every metric, with and without masks, with learned
//! power and temperature; the weights kernel, the tiles kernel and packed self-attention.

use attnlab_model::{MetricKind, MetricLayer, MetricSpec, ParamStore, causal_mask, context_mask, fused};
use candle_core::{D, IndexOp, Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::util::{DEV, max_abs, max_abs_diff, randn};

/// Specs covering every metric, fractional and learned powers, fixed temperature.
pub fn specs() -> Vec<(String, MetricSpec)> {
    let mut out: Vec<(String, MetricSpec)> =
        MetricKind::ALL.iter().map(|&m| (m.name().to_string(), MetricSpec::of(m))).collect();
    for (m, p) in [
        (MetricKind::NegEuclid, 1.0),
        (MetricKind::Idw, 3.0),
        (MetricKind::Rbf, 1.5),
        (MetricKind::InvDist, 1.0),
    ] {
        let mut s = MetricSpec::of(m);
        s.power = Some(p);
        out.push((format!("{m} p={p}"), s));
    }
    let mut s = MetricSpec::of(MetricKind::Idw);
    s.learn_power = true;
    s.power = Some(1.7);
    out.push(("idw learned p".into(), s));
    let mut s = MetricSpec::of(MetricKind::Cosine);
    s.learn_temperature = false;
    out.push(("cosine fixed tau".into(), s));
    for m in [MetricKind::Dot, MetricKind::NegSqEuclid, MetricKind::NegEuclid] {
        let mut s = MetricSpec::of(m);
        s.learn_scale = true;
        s.attn_scale = Some(0.7);
        out.push((format!("{m} learned scale"), s));
    }
    let mut s = MetricSpec::of(MetricKind::NegSqEuclid);
    s.attn_scale = Some(1.3);
    out.push(("neg_sq_euclid attn_scale=1.3".into(), s));
    out
}

/// A mask with an irregular (non-prefix) pattern, every row seeing at least one key.
pub fn dense_mask(t: usize) -> Result<Tensor> {
    let data: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..t).map(move |j| if j == i || (i * 7 + j * 3) % 4 == 0 { 0.0 } else { f32::NEG_INFINITY })
        })
        .collect();
    Tensor::from_vec(data, (t, t), &DEV)
}

fn masks(t: usize) -> Result<Vec<(&'static str, Option<Tensor>)>> {
    Ok(vec![
        ("none", None),
        ("causal", Some(causal_mask(t, &DEV)?)),
        ("context", Some(context_mask(t - 2, 2, &DEV)?)),
        ("dense", Some(dense_mask(t)?)),
    ])
}

struct Setup {
    layer: MetricLayer,
    store: ParamStore,
    q: Var,
    k: Var,
    probe: Tensor,
}

fn setup(spec: &MetricSpec, seed: u64, dup: bool) -> Result<Setup> {
    let (b, h, t, d) = (2, 3, 6, 4);
    let store = ParamStore::new(seed, &DEV);
    let layer = MetricLayer::new(spec, h, d, &store.root())?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let q = randn(&mut rng, &[b, h, t, d], 0.8)?;
    // With `dup`, query 1 equals key 1 (distance zero) in every head.
    let k = randn(&mut rng, &[b, h, t, d], 0.8)?;
    let k = if dup { k.slice_assign(&[0..b, 0..h, 1..2, 0..d], &q.narrow(2, 1, 1)?)? } else { k };
    let probe = randn(&mut rng, &[b, h, t, t], 1.0)?;
    Ok(Setup { layer, store, q: Var::from_tensor(&q)?, k: Var::from_tensor(&k)?, probe })
}

/// `sum(w * probe)` and the gradients of q, k and every store variable.
fn loss_and_grads(s: &Setup, mask: Option<&Tensor>, fused_path: bool) -> Result<(Tensor, Vec<Tensor>)> {
    let (q, k) = (s.q.as_tensor(), s.k.as_tensor());
    let w = if fused_path { s.layer.weights(q, k, mask)? } else { s.layer.weights_reference(q, k, mask)? };
    let loss = (&w * &s.probe)?.sum_all()?;
    let grads = loss.backward()?;
    let mut vars: Vec<Tensor> = vec![q.clone(), k.clone()];
    vars.extend(s.store.vars().into_iter().map(|(_, v)| v.as_tensor().clone()));
    let g = vars
        .iter()
        .map(|v| grads.get(v).cloned().ok_or_else(|| candle_core::Error::Msg("no gradient".into())))
        .collect::<Result<Vec<_>>>()?;
    Ok((w, g))
}

#[test]
fn fused_weights_and_gradients_match_the_composed_path() -> Result<()> {
    fused::set_enabled(fused::parse_kernels("all")?);
    for (name, spec) in specs() {
        for (mname, mask) in masks(6)? {
            for dup in [false, true] {
                let s = setup(&spec, 11, dup)?;
                let (wf, gf) = loss_and_grads(&s, mask.as_ref(), true)?;
                let (wr, gr) = loss_and_grads(&s, mask.as_ref(), false)?;
                let dw = max_abs_diff(&wf, &wr)?;
                assert!(dw < 2e-5, "{name}/{mname}/dup={dup}: weights differ by {dw}");
                let rows = wf.sum(D::Minus1)?;
                assert!(max_abs_diff(&rows, &rows.ones_like()?)? < 1e-5, "{name}/{mname}: rows sum to 1");
                assert_eq!(gf.len(), gr.len());
                for (i, (a, b)) in gf.iter().zip(&gr).enumerate() {
                    let tol = 1e-4 * (1.0 + max_abs(b)?);
                    let d = max_abs_diff(a, b)?;
                    assert!(d < tol, "{name}/{mname}/dup={dup}: gradient {i} differs by {d} (tol {tol})");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn fused_path_is_taken_on_the_cpu() -> Result<()> {
    // The fused kernel never reads masked keys: a NaN in the last key stays out of every earlier
    // query's weights under the causal mask, while the composed path (NaN + -inf = NaN) spreads it.
    let spec = MetricSpec::of(MetricKind::Dot);
    let s = setup(&spec, 5, false)?;
    let mut kv: Vec<f32> = s.k.as_tensor().flatten_all()?.to_vec1()?;
    kv[5 * 4] = f32::NAN; // batch 0, head 0, key 5, dim 0
    let k = Tensor::from_vec(kv, s.k.dims(), &DEV)?;
    let mask = causal_mask(6, &DEV)?;
    let q = s.q.as_tensor();
    let early = |w: Tensor| -> Result<Vec<f32>> { w.narrow(2, 0, 5)?.flatten_all()?.to_vec1::<f32>() };
    let fused_w = early(s.layer.weights(q, &k, Some(&mask))?)?;
    assert!(fused_w.iter().all(|v| v.is_finite()), "fused weights of queries 0..5 stay finite");
    let reference = early(s.layer.weights_reference(q, &k, Some(&mask))?)?;
    assert!(reference.iter().any(|v| v.is_nan()), "the composed path spreads the NaN");
    Ok(())
}

/// Central finite differences of `sum(weights * probe)` along a random direction, against the
/// fused gradient (f32, so a loose tolerance).
#[test]
fn fused_gradients_match_finite_differences() -> Result<()> {
    for (name, spec) in specs() {
        let s = setup(&spec, 23, true)?;
        let mask = causal_mask(6, &DEV)?;
        let (_, g) = loss_and_grads(&s, Some(&mask), true)?;
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let dq = randn(&mut rng, s.q.dims(), 1.0)?;
        let dk = randn(&mut rng, s.k.dims(), 1.0)?;
        let analytic = ((&g[0] * &dq)?.sum_all()? + (&g[1] * &dk)?.sum_all()?)?.to_scalar::<f32>()?;
        let h = 1e-2f64;
        let f = |sign: f64| -> Result<f32> {
            let q = (s.q.as_tensor() + (&dq * (sign * h))?)?;
            let k = (s.k.as_tensor() + (&dk * (sign * h))?)?;
            (s.layer.weights(&q, &k, Some(&mask))? * &s.probe)?.sum_all()?.to_scalar::<f32>()
        };
        let numeric = (f(1.0)? - f(-1.0)?) / (2.0 * h as f32);
        let tol = 2e-2 * (1.0 + analytic.abs());
        assert!(
            (numeric - analytic).abs() < tol,
            "{name}: finite difference {numeric} vs gradient {analytic}"
        );
    }
    Ok(())
}

#[test]
fn learned_parameters_get_finite_difference_gradients() -> Result<()> {
    let learned = [
        "idw learned p",
        "cosine",
        "dot learned scale",
        "neg_sq_euclid learned scale",
        "neg_euclid learned scale",
    ];
    for (name, spec) in specs().into_iter().filter(|(n, _)| learned.contains(&n.as_str())) {
        let s = setup(&spec, 31, false)?;
        let mask = causal_mask(6, &DEV)?;
        let (_, g) = loss_and_grads(&s, Some(&mask), true)?;
        let (_, var) =
            s.store.vars().into_iter().next().ok_or_else(|| candle_core::Error::Msg("var".into()))?;
        let g_param = g[2].to_vec1::<f32>()?;
        let orig = var.as_tensor().copy()?;
        for head in 0..3 {
            let h = 1e-2f32;
            let at = |delta: f32| -> Result<f32> {
                let mut v = orig.to_vec1::<f32>()?;
                v[head] += delta;
                var.set(&Tensor::from_vec(v, 3, &DEV)?)?;
                let w = s.layer.weights(s.q.as_tensor(), s.k.as_tensor(), Some(&mask))?;
                (w * &s.probe)?.sum_all()?.to_scalar::<f32>()
            };
            let numeric = (at(h)? - at(-h)?) / (2.0 * h);
            var.set(&orig)?;
            let tol = 2e-2 * (1.0 + g_param[head].abs());
            assert!(
                (numeric - g_param[head]).abs() < tol,
                "{name} head {head}: {numeric} vs {}",
                g_param[head]
            );
        }
    }
    Ok(())
}

/// `attend(q, k, v)` against `weights_reference(q, k) v`: output and gradients of q, k, v and the
/// metric's variables, for every spec and mask, also with tq != tk.
#[test]
fn fused_attention_matches_the_composed_path() -> Result<()> {
    for (name, spec) in specs() {
        for (mname, mask) in masks(6)? {
            for dup in [false, true] {
                let s = setup(&spec, 17, dup)?;
                let mut rng = ChaCha8Rng::seed_from_u64(4);
                let v = Var::from_tensor(&randn(&mut rng, &[2, 3, 6, 5], 1.0)?)?;
                let probe = randn(&mut rng, &[2, 3, 6, 5], 1.0)?;
                let run = |fused_path: bool| -> Result<(Tensor, Vec<Tensor>)> {
                    let (q, k) = (s.q.as_tensor(), s.k.as_tensor());
                    let y = if fused_path {
                        s.layer.attend(q, k, v.as_tensor(), mask.as_ref())?
                    } else {
                        s.layer.weights_reference(q, k, mask.as_ref())?.matmul(v.as_tensor())?
                    };
                    let grads = (&y * &probe)?.sum_all()?.backward()?;
                    let mut vars = vec![q.clone(), k.clone(), v.as_tensor().clone()];
                    vars.extend(s.store.vars().into_iter().map(|(_, v)| v.as_tensor().clone()));
                    let g = vars
                        .iter()
                        .map(|t| {
                            grads.get(t).cloned().ok_or_else(|| candle_core::Error::Msg("no gradient".into()))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Ok((y, g))
                };
                let (yf, gf) = run(true)?;
                let (yr, gr) = run(false)?;
                let dy = max_abs_diff(&yf, &yr)?;
                assert!(dy < 2e-5, "{name}/{mname}/dup={dup}: outputs differ by {dy}");
                for (i, (a, b)) in gf.iter().zip(&gr).enumerate() {
                    let tol = 1e-4 * (1.0 + max_abs(b)?);
                    let d = max_abs_diff(a, b)?;
                    assert!(d < tol, "{name}/{mname}/dup={dup}: gradient {i} differs by {d} (tol {tol})");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn fused_attention_handles_more_keys_than_queries() -> Result<()> {
    let store = ParamStore::new(1, &DEV);
    let layer = MetricLayer::new(&MetricSpec::of(MetricKind::Idw), 2, 4, &store.root())?;
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let q = Var::from_tensor(&randn(&mut rng, &[1, 2, 3, 4], 1.0)?)?;
    let k = Var::from_tensor(&randn(&mut rng, &[1, 2, 7, 4], 1.0)?)?;
    let v = randn(&mut rng, &[1, 2, 7, 3], 1.0)?;
    let yf = layer.attend(q.as_tensor(), k.as_tensor(), &v, None)?;
    let yr = layer.weights_reference(q.as_tensor(), k.as_tensor(), None)?.matmul(&v)?;
    assert_eq!(yf.dims(), &[1, 2, 3, 3]);
    let f = fused::MetricFn { kind: MetricKind::Idw, scale: 0.5, eps: 1e-3, delta: 1e-6, power: 2.0 };
    let direct = fused::attention(f, q.as_tensor(), k.as_tensor(), &v, None, None)?.expect("kernel applies");
    assert!(max_abs_diff(&direct, &yf)? == 0.0, "attend runs the fused kernel");
    assert!(max_abs_diff(&yf, &yr)? < 2e-5);
    let gf = yf.sum_all()?.backward()?;
    let gr = yr.sum_all()?.backward()?;
    for t in [q.as_tensor(), k.as_tensor()] {
        let (a, b) = (gf.get(t).expect("fused grad"), gr.get(t).expect("reference grad"));
        assert!(max_abs_diff(a, b)? < 1e-4);
    }
    Ok(())
}

/// Long sequences run in several row blocks (causal blocks skip later keys): fused attention
/// still equals the composed path, forward and backward, for each mask kind.
#[test]
fn fused_attention_matches_over_several_row_blocks() -> Result<()> {
    let t = 70;
    for metric in [MetricKind::Dot, MetricKind::Idw, MetricKind::NegEuclid] {
        let store = ParamStore::new(2, &DEV);
        let layer = MetricLayer::new(&MetricSpec::of(metric), 2, 8, &store.root())?;
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let q = Var::from_tensor(&randn(&mut rng, &[1, 2, t, 8], 0.7)?)?;
        let k = Var::from_tensor(&randn(&mut rng, &[1, 2, t, 8], 0.7)?)?;
        let v = Var::from_tensor(&randn(&mut rng, &[1, 2, t, 3], 1.0)?)?;
        let probe = randn(&mut rng, &[1, 2, t, 3], 1.0)?;
        for (mname, mask) in [
            ("causal", Some(causal_mask(t, &DEV)?)),
            ("context", Some(context_mask(50, t - 50, &DEV)?)),
            ("dense", Some(dense_mask(t)?)),
        ] {
            let run = |fused_path: bool| -> Result<Vec<Tensor>> {
                let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
                let y = if fused_path {
                    layer.attend(qt, kt, vt, mask.as_ref())?
                } else {
                    layer.weights_reference(qt, kt, mask.as_ref())?.matmul(vt)?
                };
                let grads = (&y * &probe)?.sum_all()?.backward()?;
                let mut out = vec![y];
                for t in [qt, kt, vt] {
                    out.push(
                        grads.get(t).cloned().ok_or_else(|| candle_core::Error::Msg("no gradient".into()))?,
                    );
                }
                Ok(out)
            };
            for (i, (a, b)) in run(true)?.iter().zip(&run(false)?).enumerate() {
                let d = max_abs_diff(a, b)?;
                assert!(
                    d < 1e-4 * (1.0 + max_abs(b)?),
                    "{metric}/{mname}: output/gradient {i} differs by {d}"
                );
            }
        }
    }
    Ok(())
}

/// Splits packed `(b, t, 3c)` projections into per-head `q`, `k`, `v` `(b, h, t, d)`.
fn split_heads(qkv: &Tensor, h: usize) -> Result<[Tensor; 3]> {
    let (b, t, c3) = qkv.dims3()?;
    let c = c3 / 3;
    let part = |i: usize| qkv.narrow(2, i * c, c)?.reshape((b, t, h, c / h))?.transpose(1, 2)?.contiguous();
    Ok([part(0)?, part(1)?, part(2)?])
}

/// Packed self-attention against heads split by hand and the composed path: output and the
/// gradients of `qkv` and of the metric's variables, for every spec and mask, with a query
/// exactly on a key, in one row block (t = 6) and several (t = 70).
#[test]
fn packed_self_attention_matches_the_composed_path() -> Result<()> {
    let (b, h, d) = (2, 3, 4);
    let c = h * d;
    for t in [6, 70] {
        let cases: Vec<(String, MetricSpec)> = if t == 6 {
            specs()
        } else {
            [MetricKind::Dot, MetricKind::Idw, MetricKind::Cosine]
                .iter()
                .map(|&m| (m.name().to_string(), MetricSpec::of(m)))
                .collect()
        };
        for (name, spec) in cases {
            for (mname, mask) in masks(t)? {
                let store = ParamStore::new(5, &DEV);
                let layer = MetricLayer::new(&spec, h, d, &store.root())?;
                let mut rng = ChaCha8Rng::seed_from_u64(9);
                let x = randn(&mut rng, &[b, t, 3 * c], 0.8)?;
                // Key 1 equals query 1 in every head: distance exactly zero.
                let x = x.slice_assign(&[0..b, 1..2, c..2 * c], &x.i((.., 1..2, 0..c))?)?;
                let qkv = Var::from_tensor(&x)?;
                let probe = randn(&mut rng, &[b, t, c], 1.0)?;
                let run = |fused_path: bool| -> Result<Vec<Tensor>> {
                    let y = if fused_path {
                        layer
                            .self_attention_packed(qkv.as_tensor(), h, mask.as_ref())?
                            .expect("kernel applies")
                    } else {
                        let [q, k, v] = split_heads(qkv.as_tensor(), h)?;
                        let y = layer.weights_reference(&q, &k, mask.as_ref())?.matmul(&v)?;
                        y.transpose(1, 2)?.reshape((b, t, c))?
                    };
                    let grads = (&y * &probe)?.sum_all()?.backward()?;
                    let mut out = vec![y, grads.get(qkv.as_tensor()).cloned().expect("qkv gradient")];
                    for (vname, v) in store.vars() {
                        let g = grads.get(v.as_tensor()).cloned();
                        out.push(
                            g.ok_or_else(|| candle_core::Error::Msg(format!("no gradient for {vname}")))?,
                        );
                    }
                    Ok(out)
                };
                for (i, (a, r)) in run(true)?.iter().zip(&run(false)?).enumerate() {
                    let dd = max_abs_diff(a, r)?;
                    let tol = 1e-4 * (1.0 + max_abs(r)?);
                    assert!(
                        dd < tol,
                        "{name}/{mname}/t={t}: output/gradient {i} differs by {dd} (tol {tol})"
                    );
                }
            }
        }
    }
    Ok(())
}
