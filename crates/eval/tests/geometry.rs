//! Geometry measures on hand-made inputs with known answers.

use attnlab_eval::geometry::{
    attention_entropy, key_norm_cv, layer_geometry, mean_attention_distance, tv_distance,
};
use attnlab_model::{MetricKind, MetricLayer, MetricSpec, ParamStore};
use candle_core::{Device, Tensor};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn equal_norm_keys_have_zero_dispersion_and_unequal_ones_do_not() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    // (b=1, h=2, t=4, d=2): head 0 keys on the circle of radius 2, head 1 norms 1, 1, 3, 3.
    let k = Tensor::new(
        &[[[[2f32, 0.], [0., 2.], [-1.2, 1.6], [1.6, -1.2]], [[1f32, 0.], [0., 1.], [3., 0.], [0., -3.]]]],
        &dev,
    )?;
    let cv = key_norm_cv(&k)?;
    assert!(close(cv[0], 0.0, 1e-7), "{cv:?}");
    // norms 1,1,3,3: mean 2, population std 1, CV 0.5.
    assert!(close(cv[1], 0.5, 1e-7), "{cv:?}");
    Ok(())
}

#[test]
fn uniform_attention_has_entropy_log_t_and_one_hot_has_zero() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let t = 5;
    let uniform = Tensor::full(1.0f32 / t as f32, (2, 1, t, t), &dev)?;
    let e = attention_entropy(&uniform)?;
    assert!(close(e[0], (t as f64).ln(), 1e-6), "{e:?}");
    let eye = Tensor::eye(t, candle_core::DType::F32, &dev)?.reshape((1, 1, t, t))?;
    assert!(close(attention_entropy(&eye)?[0], 0.0, 1e-12));
    // Attending to oneself is distance 0; uniform over 5 keys from query i: mean |i - j|.
    assert!(close(mean_attention_distance(&eye)?[0], 0.0, 1e-12));
    let want: f64 =
        (0..t).map(|i| (0..t).map(|j| i.abs_diff(j) as f64).sum::<f64>() / t as f64).sum::<f64>() / t as f64;
    assert!(close(mean_attention_distance(&uniform)?[0], want, 1e-6));
    Ok(())
}

#[test]
fn total_variation_is_zero_for_identical_and_one_for_disjoint_attention() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let w = Tensor::new(&[[[[0.2f32, 0.3, 0.5], [0.6, 0.4, 0.0]]]], &dev)?;
    assert_eq!(tv_distance(&w, &w)?, vec![0.0]);
    let a = Tensor::new(&[[[[1f32, 0.0], [0.0, 1.0]]]], &dev)?;
    let b = Tensor::new(&[[[[0f32, 1.0], [1.0, 0.0]]]], &dev)?;
    assert!(close(tv_distance(&a, &b)?[0], 1.0, 1e-12));
    assert!(tv_distance(&a, &w).is_err(), "shape mismatch must be an error");
    Ok(())
}

#[test]
fn dot_layer_agrees_with_itself_and_neg_sq_euclid_agrees_only_with_equal_norm_keys() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let store = ParamStore::new(0, &dev);
    let q = Tensor::new(&[[[[0.3f32, -0.4], [1.0, 0.5], [-0.7, 0.2]]]], &dev)?;
    let k_equal = Tensor::new(&[[[[1f32, 0.0], [0.0, 1.0], [-0.6, 0.8]]]], &dev)?;
    let k_unequal = Tensor::new(&[[[[1f32, 0.0], [0.0, 2.0], [-0.3, 0.4]]]], &dev)?;
    let dot = MetricLayer::new(&MetricSpec::of(MetricKind::Dot), 1, 2, &store.root())?;
    let g = layer_geometry(0, &dot, 2.0, &q, &k_equal, None)?;
    assert_eq!(g[0].tv_to_dot, 0.0);
    // neg_sq_euclid with scale s equals dot with scale 2s for equal-norm keys, and the geometry
    // compares it with dot at that effective scale, whatever s is.
    let l2 = MetricLayer::new(&MetricSpec::of(MetricKind::NegSqEuclid), 1, 2, &store.root())?
        .with_scale(0.5 / 2f64.sqrt());
    let same = layer_geometry(0, &l2, 2.0, &q, &k_equal, None)?;
    assert!(same[0].tv_to_dot < 1e-6, "{same:?}");
    assert!(same[0].key_norm_cv < 1e-6);
    let differ = layer_geometry(0, &l2, 2.0, &q, &k_unequal, None)?;
    assert!(differ[0].tv_to_dot > 1e-2, "{differ:?}");
    assert!(differ[0].key_norm_cv > 0.1);
    Ok(())
}

#[test]
fn learned_scales_are_the_reference_dot_attentions_scales_head_by_head() -> anyhow::Result<()> {
    // Two heads whose learned scales moved apart from the configured one (as after training with
    // `learn_scale`): dot must agree with itself and neg_sq_euclid (equal-norm keys) with dot at
    // twice each head's learned scale, not at the configured scale.
    let dev = Device::Cpu;
    let q = Tensor::new(
        &[[[[0.3f32, -0.4], [1.0, 0.5], [-0.7, 0.2]], [[0.9f32, 0.1], [-0.2, 0.6], [0.4, 0.4]]]],
        &dev,
    )?;
    let k = Tensor::new(
        &[[[[1f32, 0.0], [0.0, 1.0], [-0.6, 0.8]], [[0.6f32, 0.8], [-1.0, 0.0], [0.0, -1.0]]]],
        &dev,
    )?;
    for kind in [MetricKind::Dot, MetricKind::NegSqEuclid] {
        let store = ParamStore::new(0, &dev);
        let spec = MetricSpec { learn_scale: true, ..MetricSpec::of(kind) };
        let layer = MetricLayer::new(&spec, 2, 2, &store.root())?;
        let learned = Tensor::new(&[3f32.ln(), 0.25f32.ln()], &dev)?;
        store.assign_from([("log_scale".to_string(), learned)].into())?;
        let g = layer_geometry(0, &layer, 2.0, &q, &k, None)?;
        let factor = if kind == MetricKind::Dot { 1.0 } else { 2.0 };
        for (head, s) in [(0, 3.0), (1, 0.25)] {
            assert!(close(g[head].dot_scale, factor * s, 1e-6), "{kind}: {g:?}");
            assert!(g[head].tv_to_dot < 1e-6, "{kind} head {head}: {g:?}");
        }
    }
    Ok(())
}
