//! Set regressor and prototype network: shapes, gradients, masking, Shepard identity,
//! initialisation, low-impact augmentation, bad input.

use attnlab_model::{
    MetricKind, Model, ModelConfig, NormKind, ParamStore, PrototypeConfig, PrototypeNet, SetRegressorConfig,
};
use candle_core::{Device, IndexOp, Tensor};

type R = candle_core::Result<()>;

fn tiny_regressor(metric: MetricKind) -> SetRegressorConfig {
    let mut cfg = SetRegressorConfig::small(2);
    cfg.n_layer = 2;
    cfg.n_head = 2;
    cfg.n_embd = 8;
    cfg.attention.metric = metric;
    cfg
}

fn points(b: usize, n: usize, d: usize, salt: u64, dev: &Device) -> Tensor {
    let v: Vec<f32> =
        (0..b * n * d).map(|i| (((i as u64 * 7919 + salt * 104729) % 1000) as f32) / 1000.0).collect();
    Tensor::from_vec(v, (b, n, d), dev).expect("points")
}

#[test]
fn set_regressor_trains_every_variable_for_every_metric() -> R {
    let dev = Device::Cpu;
    for metric in MetricKind::ALL {
        let (model, params) = Model::init(&ModelConfig::SetRegressor(tiny_regressor(metric)), 1, &dev)?;
        let net = model.as_set_regressor().expect("set regressor");
        let y = net.forward(&points(3, 5, 3, 1, &dev), &points(3, 4, 2, 2, &dev))?;
        assert_eq!(y.dims(), &[3, 4]);
        let grads = y.sqr()?.mean_all()?.backward()?;
        for (name, var) in params.vars() {
            let g =
                grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{metric}: `{name}` got no gradient"));
            let g = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
            assert!(g.is_finite() && g > 0.0, "{metric}: `{name}` gradient norm^2 {g}");
        }
    }
    Ok(())
}

#[test]
fn a_query_sees_only_the_context() -> R {
    let dev = Device::Cpu;
    let (model, _) = Model::init(&ModelConfig::SetRegressor(tiny_regressor(MetricKind::Idw)), 2, &dev)?;
    let net = model.as_set_regressor().expect("set regressor");
    let ctx = points(1, 6, 3, 3, &dev);
    let q = points(1, 3, 2, 4, &dev);
    let full: Vec<f32> = net.forward(&ctx, &q)?.flatten_all()?.to_vec1()?;
    // The same queries one at a time give the same predictions.
    for (j, together) in full.iter().enumerate() {
        let one = net.forward(&ctx, &q.i((.., j..j + 1, ..))?)?.flatten_all()?.to_vec1::<f32>()?;
        assert!((one[0] - together).abs() < 1e-5, "query {j}: {} alone vs {together} together", one[0]);
    }
    // Changing a context value changes the predictions.
    let ctx2 = (ctx.clone() + 0.5)?;
    let moved: Vec<f32> = net.forward(&ctx2, &q)?.flatten_all()?.to_vec1()?;
    let change = full.iter().zip(&moved).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(change > 1e-6, "context change moved predictions by only {change}");
    Ok(())
}

#[test]
fn set_regressor_rejects_zero_context_points_and_wrong_dims() -> R {
    let dev = Device::Cpu;
    let (model, _) = Model::init(&ModelConfig::SetRegressor(tiny_regressor(MetricKind::Dot)), 2, &dev)?;
    let net = model.as_set_regressor().expect("set regressor");
    let empty = Tensor::zeros((1, 0, 3), candle_core::DType::F32, &dev)?;
    let err = net.forward(&empty, &points(1, 2, 2, 1, &dev)).expect_err("zero context").to_string();
    assert!(err.contains("at least one context point"), "{err}");
    let err =
        net.forward(&points(1, 2, 2, 1, &dev), &points(1, 2, 2, 1, &dev)).expect_err("dims").to_string();
    assert!(err.contains("expects context"), "{err}");
    let mut cfg = tiny_regressor(MetricKind::Dot);
    cfg.dim = 0;
    let err = Model::init(&ModelConfig::SetRegressor(cfg), 0, &dev).err().expect("dim 0").to_string();
    assert!(err.contains("model.dim"), "{err}");
    Ok(())
}

/// Sets variable `name` of `params` to `data` (shape of the variable).
fn set(params: &ParamStore, name: &str, data: Vec<f32>) -> R {
    let var = params.get(name).unwrap_or_else(|| panic!("no variable `{name}`"));
    let t = Tensor::from_vec(data, var.shape(), var.device())?;
    var.set(&t)
}

/// Naive Shepard interpolation `sum_i w_i y_i / sum_i w_i`, `w_i = 1 / (eps + |x - x_i|^2)`, in f64.
fn shepard2(nodes: &[[f64; 3]], x: [f64; 2], eps: f64) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for [a, b, y] in nodes {
        let w = 1.0 / (eps + (x[0] - a).powi(2) + (x[1] - b).powi(2));
        num += w * y;
        den += w;
    }
    num / den
}

#[test]
fn one_layer_idw_regressor_with_identity_projections_is_shepard_p2() -> R {
    let dev = Device::Cpu;
    let mut cfg = SetRegressorConfig::small(2);
    (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.norm) = (1, 1, 4, NormKind::None);
    cfg.attention.metric = MetricKind::Idw;
    cfg.attention.delta = 0.0;
    let (model, params) = Model::init(&ModelConfig::SetRegressor(cfg), 5, &dev)?;
    // Channels (x1, x2, y, 0): projections copy coordinates and values, attention compares
    // coordinates only (W_q = W_k = diag(1,1,0,0)) and carries y (W_v = e2 e2^T).
    let z = |n: usize| vec![0f32; n];
    set(&params, "ctx_proj.weight", vec![1., 0., 0., 0., 1., 0., 0., 0., 1., 0., 0., 0.])?;
    set(&params, "ctx_proj.bias", z(4))?;
    set(&params, "query_proj.weight", vec![1., 0., 0., 1., 0., 0., 0., 0.])?;
    set(&params, "query_proj.bias", z(4))?;
    let diag = |d: [f32; 4]| (0..16).map(|i| if i % 5 == 0 { d[i / 5] } else { 0.0 }).collect::<Vec<_>>();
    set(&params, "blocks.0.attn.q_proj.weight", diag([1., 1., 0., 0.]))?;
    set(&params, "blocks.0.attn.k_proj.weight", diag([1., 1., 0., 0.]))?;
    set(&params, "blocks.0.attn.v_proj.weight", diag([0., 0., 1., 0.]))?;
    set(&params, "blocks.0.attn.o_proj.weight", diag([1., 1., 1., 1.]))?;
    set(&params, "blocks.0.mlp.proj.weight", z(64))?;
    set(&params, "head.weight", vec![0., 0., 1., 0.])?;
    set(&params, "head.bias", z(1))?;
    let net = model.as_set_regressor().expect("set regressor");
    let nodes = [[0.1, 0.2, 1.0], [0.9, 0.1, -0.5], [0.5, 0.8, 2.0], [0.3, 0.6, 0.25], [0.7, 0.5, -1.0]];
    let queries = [[0.0, 0.0], [0.5, 0.5], [0.95, 0.95], [0.3, 0.61], [0.12, 0.2]];
    let ctx: Vec<f32> = nodes.iter().flatten().map(|v| *v as f32).collect();
    let qs: Vec<f32> = queries.iter().flatten().map(|v| *v as f32).collect();
    let y: Vec<f32> = net
        .forward(&Tensor::from_vec(ctx, (1, 5, 3), &dev)?, &Tensor::from_vec(qs, (1, 5, 2), &dev)?)?
        .flatten_all()?
        .to_vec1()?;
    for (q, got) in queries.iter().zip(&y) {
        let want = shepard2(&nodes, *q, 1e-3);
        assert!((*got as f64 - want).abs() < 1e-5, "query {q:?}: model {got}, Shepard {want}");
    }
    Ok(())
}

fn proto_cfg(metric: MetricKind, p: usize) -> PrototypeConfig {
    PrototypeConfig::new(2, 3, p, metric)
}

#[test]
fn prototype_net_trains_keys_and_values_for_every_score() -> R {
    let dev = Device::Cpu;
    let x = Tensor::new(&[[0.1f32, 0.3], [1.0, -0.5], [0.4, 0.4], [-1.0, 0.2]], &dev)?;
    let mut cfgs: Vec<_> = MetricKind::ALL.iter().map(|m| proto_cfg(*m, 5)).collect();
    let mut fc = proto_cfg(MetricKind::Dot, 5);
    fc.fc_relu = true;
    cfgs.push(fc);
    for mut cfg in cfgs {
        cfg.data_mean = Some(vec![0.1, 0.1]);
        cfg.data_std = Some(vec![0.5, 0.5]);
        let (model, params) = Model::init(&ModelConfig::Prototype(cfg.clone()), 3, &dev)?;
        let net = model.as_prototype().expect("prototype");
        // Distance metrics start with zero values (no gradient to keys yet): move them first.
        set(&params, "values", (0..15).map(|i| (i % 4) as f32 - 1.5).collect())?;
        let logits = net.forward(&x)?;
        assert_eq!(logits.dims(), &[4, 3]);
        let target = Tensor::new(&[0u32, 1, 2, 1], &dev)?;
        let grads = candle_nn::loss::cross_entropy(&logits, &target)?.backward()?;
        let name = cfg.score_name();
        for (var_name, var) in params.vars() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: `{var_name}` no gradient"));
            let g = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
            assert!(g.is_finite() && g > 0.0, "{name}: `{var_name}` gradient norm^2 {g}");
        }
    }
    Ok(())
}

#[test]
fn distance_metrics_start_around_the_data_and_dot_uses_the_paper_scale() -> R {
    let dev = Device::Cpu;
    let mut cfg = proto_cfg(MetricKind::Idw, 400);
    cfg.data_mean = Some(vec![3.0, -2.0]);
    cfg.data_std = Some(vec![10.0, 1.0]);
    let (model, _) = Model::init(&ModelConfig::Prototype(cfg), 9, &dev)?;
    let net = model.as_prototype().expect("prototype");
    let keys: Vec<Vec<f32>> = net.keys().to_vec2()?;
    for (j, (mean, std)) in [(3.0, 1.0), (-2.0, 0.1)].into_iter().enumerate() {
        let col: Vec<f64> = keys.iter().map(|k| k[j] as f64).collect();
        let m = col.iter().sum::<f64>() / 400.0;
        let s = (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 399.0).sqrt();
        assert!((m - mean).abs() < 4.0 * std / 20.0, "feature {j}: mean {m}, want {mean}");
        assert!((s / std - 1.0).abs() < 0.15, "feature {j}: std {s}, want {std}");
    }
    assert_eq!(net.values().abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
    let (dot, _) = Model::init(&ModelConfig::Prototype(proto_cfg(MetricKind::Dot, 16)), 9, &dev)?;
    assert!((dot.as_prototype().expect("prototype").metric().scale() - 0.25).abs() < 1e-12);
    Ok(())
}

#[test]
fn prototype_bad_configs_name_the_field() {
    let dev = Device::Cpu;
    let err = Model::init(&ModelConfig::Prototype(proto_cfg(MetricKind::Idw, 0)), 0, &dev)
        .err()
        .expect("n_protos 0")
        .to_string();
    assert!(err.contains("model.n_protos"), "{err}");
    let mut cfg = proto_cfg(MetricKind::Idw, 2);
    cfg.data_mean = Some(vec![0.0, f64::NAN]);
    let err = Model::init(&ModelConfig::Prototype(cfg), 0, &dev).err().expect("nan").to_string();
    assert!(err.contains("model.data_mean"), "{err}");
}

/// Two prototypes: class 0 at (0, 0), class 1 at (2, 0).
fn two_protos(metric: MetricKind) -> candle_core::Result<(PrototypeNet, ParamStore)> {
    let mut cfg = PrototypeConfig::new(2, 2, 2, metric);
    cfg.attention.delta = 0.0;
    let (model, params) = Model::init(&ModelConfig::Prototype(cfg), 0, &Device::Cpu)?;
    set(&params, "keys", vec![0., 0., 2., 0.])?;
    set(&params, "values", vec![1., 0., 0., 1.])?;
    Ok((model.as_prototype().expect("prototype").clone(), params))
}

fn logits(net: &PrototypeNet, pts: &[[f32; 2]]) -> candle_core::Result<Vec<Vec<f32>>> {
    let x: Vec<f32> = pts.iter().flatten().copied().collect();
    net.forward(&Tensor::from_vec(x, (pts.len(), 2), &Device::Cpu)?)?.to_vec2()
}

#[test]
fn augmentation_flips_the_point_and_leaves_far_points_alone() -> R {
    let (net, params) = two_protos(MetricKind::Idw)?;
    let point = [0.3f32, 0.5];
    let before = logits(&net, &[point])?;
    assert!(before[0][0] > before[0][1], "the point starts in class 0: {before:?}");
    // Points on the data (near the other prototypes) keep their class and nearly their logits.
    let far = [[2.0f32, 0.05], [1.95, -0.05], [0.0, -0.05], [-0.05, 0.0]];
    let far_before = logits(&net, &far)?;
    for replace in [None, Some(1)] {
        let aug = net.augment(&params, &[0.3, 0.5], 1, replace)?;
        assert!(aug.eta > 0.0);
        let after = logits(&aug.model, &[point])?;
        assert!(after[0][1] > after[0][0], "replace {replace:?}: not flipped: {after:?}");
        if replace.is_none() {
            assert_eq!(aug.config.n_protos, 3);
            let far_after = logits(&aug.model, &far)?;
            for (i, (a, b)) in far_before.iter().zip(&far_after).enumerate() {
                assert_eq!(a[0] > a[1], b[0] > b[1], "far point {i} changed class: {a:?} -> {b:?}");
                let change = (a[0] - b[0]).abs().max((a[1] - b[1]).abs());
                assert!(change < 0.01, "far point {i} moved by {change}");
            }
        }
    }
    // Already of the class: nothing changes.
    let same = net.augment(&params, &[0.3, 0.5], 0, None)?;
    assert!(same.eta <= 0.0);
    assert_eq!(same.config.n_protos, 2);
    Ok(())
}

#[test]
fn augmentation_rejects_bad_requests() -> R {
    let (net, params) = two_protos(MetricKind::Idw)?;
    let err = net.augment(&params, &[0.0, 0.0], 2, None).err().expect("class").to_string();
    assert!(err.contains("class 2 is out of range"), "{err}");
    let err = net.augment(&params, &[0.0, f64::INFINITY], 1, None).err().expect("inf").to_string();
    assert!(err.contains("finite"), "{err}");
    let err = net.augment(&params, &[0.0, 0.0], 1, Some(7)).err().expect("replace").to_string();
    assert!(err.contains("cannot replace prototype 7"), "{err}");
    let (dot, dparams) = two_protos(MetricKind::Dot)?;
    let err = dot.augment(&dparams, &[0.0, 0.0], 1, None).err().expect("dot").to_string();
    assert!(err.contains("needs the `idw` metric") && err.contains("`dot`"), "{err}");
    Ok(())
}
