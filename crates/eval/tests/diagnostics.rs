//! Attention diagnostics on hand-made attention with known answers: a planted sink, planted
//! unselectable keys, equal-norm keys, uniform entropy under a causal mask.

use attnlab_eval::diagnostics::{sink_mass, uniform_entropy, unselected_keys, visible};
use attnlab_eval::geometry::layer_geometry;
use attnlab_model::{MetricKind, MetricLayer, MetricSpec, ParamStore, causal_mask};
use candle_core::{Device, Tensor};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn uniform_entropy_under_a_causal_mask_is_mean_log_i_plus_1() -> anyhow::Result<()> {
    let t = 64;
    let seen = visible(Some(&causal_mask(t, &Device::Cpu)?), t, t)?;
    // ln(64!)/64 = lgamma(65)/64 = 3.205753116916269 (Python's math.lgamma), not ln 64 = 4.159.
    assert!(close(uniform_entropy(&seen, t, t), 3.205753116916269, 1e-9));
    assert!(close(uniform_entropy(&visible(None, 3, 5)?, 3, 5), 5f64.ln(), 1e-12));
    Ok(())
}

#[test]
fn a_planted_sink_is_found_and_self_attention_has_none() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let t = 4;
    // Head 0: every query that sees more than one key puts 0.7 on the first and spreads the rest;
    // head 1: every query attends to itself.
    let mut w = vec![0f32; 2 * t * t];
    for i in 0..t {
        if i == 0 {
            w[0] = 1.0;
        } else {
            w[i * t] = 0.7;
            for j in 1..=i {
                w[i * t + j] = 0.3 / i as f32;
            }
        }
        w[t * t + i * t + i] = 1.0;
    }
    let w = Tensor::from_vec(w, (1, 2, t, t), &dev)?;
    let seen = visible(Some(&causal_mask(t, &dev)?), t, t)?;
    let sink = sink_mass(&w, &seen)?;
    assert!(close(sink[0], 0.7, 1e-6) && close(sink[1], 0.0, 1e-12), "{sink:?}");
    // Head 0: every query ranks key 0 first, 3 of 4 keys unselected; head 1: none.
    let un = unselected_keys(&w)?;
    assert!(close(un[0], 0.75, 1e-12) && close(un[1], 0.0, 1e-12), "{un:?}");
    Ok(())
}

/// Keys on the corners of a square and one at its centre, queries equal to the keys, no mask.
fn square() -> anyhow::Result<(Tensor, Tensor)> {
    let k = Tensor::new(&[[[[1f32, 1.], [1., -1.], [-1., 1.], [-1., -1.], [0., 0.]]]], &Device::Cpu)?;
    Ok((k.clone(), k))
}

#[test]
fn a_key_inside_the_hull_never_wins_under_dot_but_does_under_a_distance() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let store = ParamStore::new(0, &dev);
    let (q, k) = square()?;
    // Dot: q.0 = 0 while some corner scores > 0 for every query (the centre query ties at 0 and
    // ranks the first key first): the centre key is never selected, 1 of 5.
    let dot = MetricLayer::new(&MetricSpec::of(MetricKind::Dot), 1, 2, &store.root())?;
    let g = layer_geometry(0, &dot, 2.0, &q, &k, None)?;
    assert!(close(g[0].unselected_keys, 0.2, 1e-12), "{g:?}");
    // Distance: the query equal to a key always selects it.
    let l2 = MetricLayer::new(&MetricSpec::of(MetricKind::NegSqEuclid), 1, 2, &store.root())?;
    let g = layer_geometry(0, &l2, 2.0, &q, &k, None)?;
    assert!(close(g[0].unselected_keys, 0.0, 1e-12), "{g:?}");
    // No mask: uniform entropy ln 5; one-query-sees-all means no row is excluded from the sink.
    assert!(close(g[0].entropy_uniform, 5f64.ln(), 1e-12));
    assert!(g[0].max_logit > 0.0 && close(g[0].max_logit, 8.0 / 2f64.sqrt(), 1e-5), "{g:?}");
    Ok(())
}

#[test]
fn equal_norm_keys_make_neg_sq_euclid_dot_at_twice_the_scale() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let store = ParamStore::new(0, &dev);
    let q = Tensor::new(&[[[[0.3f32, -0.4], [1.0, 0.5], [-0.7, 0.2]]]], &dev)?;
    let k_equal = Tensor::new(&[[[[1f32, 0.0], [0.0, 1.0], [-0.6, 0.8]]]], &dev)?;
    let k_unequal = Tensor::new(&[[[[1f32, 0.0], [0.0, 2.0], [-0.3, 0.4]]]], &dev)?;
    // At its default scale 1/sqrt(d), neg_sq_euclid is compared with dot at 2/sqrt(d).
    let l2 = MetricLayer::new(&MetricSpec::of(MetricKind::NegSqEuclid), 1, 2, &store.root())?;
    let same = layer_geometry(0, &l2, 2.0, &q, &k_equal, None)?;
    assert!(close(same[0].dot_scale, 2.0 / 2f64.sqrt(), 1e-12));
    assert!(same[0].key_norm_cv < 1e-6 && same[0].tv_to_dot < 1e-6, "{same:?}");
    assert!(close(same[0].entropy, same[0].entropy_dot, 1e-5));
    let differ = layer_geometry(0, &l2, 2.0, &q, &k_unequal, None)?;
    assert!(differ[0].key_norm_cv > 0.1 && differ[0].tv_to_dot > 1e-2, "{differ:?}");
    // Dot itself is compared at its own scale: TV 0.
    let dot = MetricLayer::new(&MetricSpec::of(MetricKind::Dot), 1, 2, &store.root())?;
    let g = layer_geometry(0, &dot, 2.0, &q, &k_unequal, None)?;
    assert!(close(g[0].dot_scale, 1.0 / 2f64.sqrt(), 1e-12) && g[0].tv_to_dot < 1e-7);
    Ok(())
}
