//! In-context regression: each baseline on a case with a known answer, the generator's
//! statistics, the error curve, config errors and a short training run.

use std::collections::BTreeMap;

use attnlab_model::{MetricKind, Model, ModelConfig, SetRegressorConfig};
use attnlab_train::tasks::icl_baselines::{
    KnnWeights, context_mean, knn, least_squares, least_squares_weights, nadaraya_watson, shepard_p2,
};
use attnlab_train::tasks::icl_curve::{IclBaseline, choose_bandwidths, error_curve, nearest_baseline};
use attnlab_train::tasks::regression::{
    Function, FunctionFamily, RegressionConfig, RegressionTask, sample_prompt, sample_prompt_of,
};
use attnlab_train::{Task, TaskScores, TrainOptions, train};
use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::common;

type R = anyhow::Result<()>;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn least_squares_is_exact_on_noiseless_linear_prompts_and_minimum_norm_below_d() -> R {
    let cfg = RegressionConfig::new(FunctionFamily::Linear, 5, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for n in [5, 7, 10] {
        let f = Function::sample(&cfg, &mut rng);
        let Function::Linear(w) = &f else { panic!("a linear function") };
        let p = sample_prompt_of(&f, &cfg, n, &mut rng);
        let got = least_squares_weights(&p.ctx_x, &p.ctx_y)?;
        assert!(got.iter().zip(w).all(|(a, b)| close(*a, *b, 1e-9)), "n = {n}: {got:?} vs {w:?}");
        let pred = least_squares(&p.ctx_x, &p.ctx_y, &p.query_x)?;
        assert!(pred.iter().zip(&p.query_y).all(|(a, b)| close(*a, *b, 1e-9)), "n = {n}");
    }
    // One point: the minimum-norm solution is w = y x / |x|^2.
    let (x, y) = (vec![vec![1.0, 2.0, 2.0]], [3.0]);
    let w = least_squares_weights(&x, &y)?;
    let want = [3.0 / 9.0, 6.0 / 9.0, 6.0 / 9.0];
    assert!(w.iter().zip(want).all(|(a, b)| close(*a, b, 1e-12)), "{w:?}");
    // Two equal points (rank 1 of 2 rows): the same answer, not a blow-up.
    let w2 = least_squares_weights(&[x[0].clone(), x[0].clone()], &[3.0, 3.0])?;
    assert!(w2.iter().zip(want).all(|(a, b)| close(*a, b, 1e-12)), "{w2:?}");
    Ok(())
}

#[test]
fn nearest_neighbours_shepard_and_kernel_match_hand_computed_values() -> R {
    // 1-D points 0, 1, 2, 10 with values 0, 1, 2, 10; query 0.4: the 3 nearest are 0, 1, 2.
    let xs: Vec<Vec<f64>> = [0.0, 1.0, 2.0, 10.0].iter().map(|v| vec![*v]).collect();
    let ys = [0.0, 1.0, 2.0, 10.0];
    let q = [0.4];
    assert!(close(knn(&xs, &ys, &q, 3, KnnWeights::Uniform)?, 1.0, 1e-12));
    // Weights 1/0.4, 1/0.6, 1/1.6 = 2.5, 5/3, 0.625.
    let want = (5.0 / 3.0 + 2.0 * 0.625) / (2.5 + 5.0 / 3.0 + 0.625);
    assert!(close(knn(&xs, &ys, &q, 3, KnnWeights::InverseDistance)?, want, 1e-12));
    // At a context point, 1/distance weighting returns its value; k beyond n uses every point.
    assert_eq!(knn(&xs, &ys, &[2.0], 3, KnnWeights::InverseDistance)?, 2.0);
    assert!(close(knn(&xs[..2], &ys[..2], &q, 3, KnnWeights::Uniform)?, 0.5, 1e-12));
    // Shepard p = 2 at 0.4 over all four: weights 1/d^2.
    let w: Vec<f64> = [0.4f64, 0.6, 1.6, 9.6].iter().map(|d| 1.0 / (d * d)).collect();
    let want = w.iter().zip(ys).map(|(a, b)| a * b).sum::<f64>() / w.iter().sum::<f64>();
    assert!(close(shepard_p2(&xs, &ys, &q)?, want, 1e-12));
    // Nadaraya-Watson, h = 1: weights exp(-d^2 / 2).
    let k: Vec<f64> = [0.4f64, 0.6, 1.6, 9.6].iter().map(|d| (-d * d / 2.0).exp()).collect();
    let want = k.iter().zip(ys).map(|(a, b)| a * b).sum::<f64>() / k.iter().sum::<f64>();
    assert!(close(nadaraya_watson(&xs, &ys, &q, 1.0)?, want, 1e-12));
    // A tiny bandwidth tends to the nearest neighbour, a huge one to the mean.
    assert!(close(nadaraya_watson(&xs, &ys, &q, 1e-3)?, 0.0, 1e-12));
    assert!(close(nadaraya_watson(&xs, &ys, &q, 1e6)?, context_mean(&ys)?, 1e-6));
    assert!(close(context_mean(&ys)?, 3.25, 1e-12));
    // Bad input is an error naming the problem.
    let err = knn(&xs, &ys, &q, 0, KnnWeights::Uniform).expect_err("k = 0").to_string();
    assert!(err.contains("k >= 1"), "{err}");
    let err = nadaraya_watson(&xs, &ys, &q, 0.0).expect_err("h = 0").to_string();
    assert!(err.contains("bandwidth"), "{err}");
    let err = least_squares(&[], &[], &[vec![1.0]]).expect_err("empty").to_string();
    assert!(err.contains("at least one context point"), "{err}");
    Ok(())
}

/// Mean and covariance of `samples` (rows of equal length).
fn moments(samples: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (n, d) = (samples.len() as f64, samples[0].len());
    let mean: Vec<f64> = (0..d).map(|j| samples.iter().map(|s| s[j]).sum::<f64>() / n).collect();
    let cov = (0..d)
        .map(|a| {
            (0..d)
                .map(|b| samples.iter().map(|s| (s[a] - mean[a]) * (s[b] - mean[b])).sum::<f64>() / n)
                .collect()
        })
        .collect();
    (mean, cov)
}

#[test]
fn generator_statistics_match_the_documented_distributions() -> R {
    let d = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let draws = 20_000;
    // linear: w ~ N(0, I / d).
    let cfg = RegressionConfig::new(FunctionFamily::Linear, d, 2 * d);
    let ws: Vec<Vec<f64>> = (0..draws)
        .map(|_| match Function::sample(&cfg, &mut rng) {
            Function::Linear(w) => w,
            other => panic!("linear family drew {other:?}"),
        })
        .collect();
    let (mean, cov) = moments(&ws);
    assert!(mean.iter().all(|m| m.abs() < 0.02), "mean {mean:?}");
    for (a, row) in cov.iter().enumerate() {
        for (b, c) in row.iter().enumerate() {
            let want = if a == b { 1.0 / d as f64 } else { 0.0 };
            assert!(close(*c, want, 0.01), "cov[{a}][{b}] = {c} (want {want})");
        }
    }
    // sparse_linear: exactly `sparsity` non-zero coordinates, |w|^2 of mean 1.
    let mut sparse = RegressionConfig::new(FunctionFamily::SparseLinear, 6, 12);
    sparse.sparsity = Some(2);
    let mut norm2 = 0.0;
    for _ in 0..4000 {
        let Function::Linear(w) = Function::sample(&sparse, &mut rng) else { panic!("sparse linear") };
        assert_eq!(w.iter().filter(|v| **v != 0.0).count(), 2, "{w:?}");
        norm2 += w.iter().map(|v| v * v).sum::<f64>() / 4000.0;
    }
    assert!(close(norm2, 1.0, 0.06), "E|w|^2 = {norm2}");
    // relu_net, linear, sparse_linear: E[f(x)^2] = 1 at the queries (the error scale).
    let relu = RegressionConfig::new(FunctionFamily::ReluNet, d, 2 * d);
    for c in [&cfg, &sparse, &relu] {
        let ys: Vec<f64> = (0..3000).flat_map(|_| sample_prompt(c, 1, &mut rng).query_y).collect();
        let m2 = ys.iter().map(|y| y * y).sum::<f64>() / ys.len() as f64;
        assert!(close(m2, 1.0, 0.08), "{:?}: E[y^2] = {m2}", c.function);
    }
    // Noise: context values minus f are N(0, noise^2); the queries' targets are noiseless.
    let mut noisy = cfg.clone();
    noisy.noise = 0.5;
    let mut res = Vec::new();
    for _ in 0..2000 {
        let f = Function::sample(&noisy, &mut rng);
        let p = sample_prompt_of(&f, &noisy, 5, &mut rng);
        res.extend(p.ctx_x.iter().zip(&p.ctx_y).map(|(x, y)| y - f.eval(x)));
        assert!(p.query_x.iter().zip(&p.query_y).all(|(x, y)| *y == f.eval(x)));
    }
    let var = res.iter().map(|r| r * r).sum::<f64>() / res.len() as f64;
    assert!(close(var, 0.25, 0.01), "noise variance {var}");
    // Inputs: N(0, I) for linear, uniform in [0, 1]^d for bumps.
    let bumps = RegressionConfig::new(FunctionFamily::Bumps, 3, 6);
    let p = sample_prompt(&bumps, 200, &mut rng);
    assert!(p.ctx_x.iter().flatten().all(|v| (0.0..1.0).contains(v)));
    let xs: Vec<Vec<f64>> = (0..2000).flat_map(|_| sample_prompt(&cfg, 4, &mut rng).ctx_x).collect();
    let (m, c) = moments(&xs);
    assert!(m.iter().all(|v| v.abs() < 0.03) && (0..d).all(|j| close(c[j][j], 1.0, 0.04)), "{m:?} {c:?}");
    Ok(())
}

#[test]
fn error_curve_of_the_baselines_on_linear_prompts() -> R {
    let d = 3;
    let cfg = RegressionConfig::new(FunctionFamily::Linear, d, 3 * d);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let val: Vec<_> = (0..40).map(|_| sample_prompt(&cfg, 3 * d, &mut rng)).collect();
    let tune: Vec<_> = (0..20).map(|_| sample_prompt(&cfg, 3 * d, &mut rng)).collect();
    let curve = error_curve(None, &val, &tune, &Device::Cpu)?;
    assert_eq!(curve.counts, (1..=3 * d).collect::<Vec<_>>());
    assert!(curve.model.is_empty());
    let ls = &curve.baselines["least_squares"];
    // Noiseless: least squares is exact from n = d on, and better than the kernel smoothers.
    assert!(ls[d - 1..].iter().all(|e| *e < 1e-12), "{ls:?}");
    for b in IclBaseline::ALL.iter().filter(|b| **b != IclBaseline::LeastSquares) {
        let e = curve.baselines[b.name()][2 * d - 1];
        assert!(e > 1e-3, "{}: {e}", b.name());
    }
    // Below d, minimum-norm LS recovers the projection of w: error about (1 - n/d).
    assert!(close(ls[0], 1.0 - 1.0 / d as f64, 0.3), "{ls:?}");
    // The chosen bandwidth is one of the grid's and positive at every count.
    assert_eq!(curve.bandwidths.len(), 3 * d);
    assert!(curve.bandwidths.iter().all(|h| h.is_finite() && *h > 0.0));
    // The bandwidth at a count depends on the tuning prompts only, and it fits them better
    // than one 8 times smaller or larger.
    let hs = choose_bandwidths(&tune, &[2 * d])?;
    assert_eq!(hs, [curve.bandwidths[2 * d - 1]]);
    let tune_mse = |h: f64| -> anyhow::Result<f64> {
        let mut se = 0.0;
        for p in &tune {
            for (q, y) in p.query_x.iter().zip(&p.query_y) {
                se += (nadaraya_watson(&p.ctx_x[..2 * d], &p.ctx_y[..2 * d], q, h)? - y).powi(2);
            }
        }
        Ok(se)
    };
    let best = tune_mse(hs[0])?;
    assert!(best <= tune_mse(hs[0] * 8.0)? && best <= tune_mse(hs[0] / 8.0)?, "h = {}", hs[0]);
    // nearest_baseline picks the curve with the smallest mean gap.
    let bases: BTreeMap<String, Vec<f64>> =
        [("a".to_string(), vec![1.0, 1.0]), ("b".to_string(), vec![0.5, 0.1])].into();
    assert_eq!(nearest_baseline(&[0.4, 0.2], &bases).map(|(n, _)| n), Some("b".into()));
    assert_eq!(nearest_baseline(&[], &bases), None);
    Ok(())
}

#[test]
fn regression_config_errors_name_the_field() {
    let dev = Device::Cpu;
    let base = RegressionConfig::new(FunctionFamily::Linear, 5, 10);
    let mut cases = Vec::new();
    let mut c = base.clone();
    c.n_context = 9;
    cases.push((c, "task.n_context"));
    let mut c = base.clone();
    c.dim = 0;
    cases.push((c, "task.dim"));
    let mut c = base.clone();
    c.noise = -1.0;
    cases.push((c, "task.noise"));
    let mut c = base.clone();
    c.sparsity = Some(2);
    cases.push((c, "task.sparsity applies only"));
    let mut c = base.clone();
    c.function = FunctionFamily::SparseLinear;
    c.sparsity = Some(6);
    cases.push((c, "task.sparsity must be in"));
    let mut c = base.clone();
    c.hidden = Some(10);
    cases.push((c, "task.hidden applies only"));
    for (cfg, field) in cases {
        let err = RegressionTask::new(&cfg, 0, &dev).err().expect("bad config").to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}

#[test]
fn batches_vary_the_context_size_and_the_scores_hold_every_curve() -> R {
    let dev = Device::Cpu;
    let mut cfg = RegressionConfig::new(FunctionFamily::ReluNet, 3, 6);
    (cfg.n_query, cfg.val_functions) = (4, 8);
    let mut task = RegressionTask::new(&cfg, 2, &dev)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut sizes = std::collections::BTreeSet::new();
    for step in 0..40 {
        let b = task.train_batch(step, &mut rng, 2)?;
        let (bs, n, w) = b.inputs[0].dims3()?;
        assert_eq!((bs, w, b.inputs[1].dims3()?, b.targets.dims2()?), (2, 4, (2, 4, 3), (2, 4)));
        sizes.insert(n);
    }
    assert_eq!(sizes, (1..=6).collect(), "every context size from 1 to n_context is trained");
    let mut m = SetRegressorConfig::small(3);
    (m.n_layer, m.n_head, m.n_embd, m.attention.metric) = (1, 2, 8, MetricKind::NegSqEuclid);
    let (model, _) = Model::init(&ModelConfig::SetRegressor(m.clone()), 0, &dev)?;
    let s = task.scores(&model)?;
    assert_eq!(s.curve.counts, (1..=6).collect::<Vec<_>>());
    assert_eq!(s.curve.model.len(), 6);
    for b in IclBaseline::ALL {
        assert!(s.curve.baselines[b.name()].iter().all(|e| e.is_finite() && *e >= 0.0), "{}", b.name());
        assert!(s.at_d.contains_key(b.name()) && s.at_2d.contains_key(b.name()));
    }
    assert_eq!(
        (s.at_d["model"], s.at_2d["model"], s.val_mse),
        (s.curve.model[2], s.curve.model[5], s.curve.model[5])
    );
    // The validation loss is the model's error with all n_context examples.
    let loss = task.loss(&model, &task.val_batches()[0])?.to_scalar::<f32>()? as f64;
    assert!(close(loss, s.val_mse, 1e-5 * s.val_mse.max(1.0)), "{loss} vs {}", s.val_mse);
    // A model of another dimension is refused, naming both fields.
    m.dim = 2;
    let err = task.configure_model(&mut ModelConfig::SetRegressor(m)).expect_err("dim").to_string();
    assert!(err.contains("model.dim") && err.contains("task.dim"), "{err}");
    Ok(())
}

#[test]
fn a_short_regression_run_trains_and_records_the_curve() -> R {
    let toml = r#"
        seed = 4
        [model]
        kind = "set_regressor"
        metric = "idw"
        dim = 2
        n_layer = 1
        n_head = 2
        n_embd = 16
        [task]
        kind = "regression"
        function = "linear"
        dim = 2
        n_context = 6
        n_query = 8
        val_functions = 16
        [train]
        steps = 60
        batch_size = 16
        lr = 3e-3
        warmup_steps = 5
        weight_decay = 0.0
        eval_interval = 60
        eval_batches = 1
        ckpt_interval = 60
    "#;
    let run = common::run_from_toml(toml, &[])?;
    let tmp = tempfile::tempdir()?;
    let summary = train(&run, &tmp.path().join("run"), &TrainOptions::new(&Device::Cpu))?;
    let TaskScores::Regression(s) = &summary.scores else { panic!("regression scores") };
    assert_eq!(s.curve.model.len(), 6);
    assert!(s.curve.model.iter().all(|e| e.is_finite()));
    // 60 steps already beat predicting 0 (E[y^2] = 1) with all six examples.
    assert!(s.val_mse < 0.9, "val mse {} after 60 steps", s.val_mse);
    let text = std::fs::read_to_string(tmp.path().join("run/summary.json"))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(json["task"], "regression");
    assert!(json["at_2d"]["least_squares"].as_f64().is_some_and(|v| v < 1e-9), "{json}");
    Ok(())
}
