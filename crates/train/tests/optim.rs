//! AdamW, clipping and the schedule against hand-computed references.

use attnlab_model::{Init, ParamStore};
use attnlab_train::config::TrainConfig;
use attnlab_train::optim::{AdamW, AdamWParams, clip_grads, grad_norm, lr_at};
use candle_core::{Device, Tensor};

/// Scalar AdamW reference: returns the parameter after `grads.len()` updates.
fn reference(mut p: f64, grads: &[f64], lr: f64, o: AdamWParams, decay: bool) -> f64 {
    let (mut m, mut v) = (0.0, 0.0);
    for (i, g) in grads.iter().enumerate() {
        let t = (i + 1) as i32;
        m = o.beta1 * m + (1.0 - o.beta1) * g;
        v = o.beta2 * v + (1.0 - o.beta2) * g * g;
        let (mh, vh) = (m / (1.0 - o.beta1.powi(t)), v / (1.0 - o.beta2.powi(t)));
        if decay {
            p -= lr * o.weight_decay * p;
        }
        p -= lr * mh / (vh.sqrt() + o.eps);
    }
    p
}

#[test]
fn adamw_matches_the_scalar_reference_and_decays_matrices_only() -> anyhow::Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let pb = store.root();
    let w = pb.var("w", (2, 2), Init::Const(0.5))?; // a matrix: decayed
    let b = pb.var("b", 2, Init::Const(0.5))?; // a vector: not decayed
    let o = AdamWParams { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
    let mut opt = AdamW::new(&store, o)?;
    let gs = [0.3, -0.2, 0.7];
    for g in gs {
        // loss = g * (sum(w) + sum(b)) has gradient g everywhere.
        let loss = ((w.sum_all()? + b.sum_all()?)? * g)?;
        opt.step(&loss.backward()?, 0.01)?;
    }
    let (wv, bv) = (
        store.get("w").expect("w").flatten_all()?.to_vec1::<f32>()?,
        store.get("b").expect("b").to_vec1::<f32>()?,
    );
    let (want_w, want_b) = (reference(0.5, &gs, 0.01, o, true), reference(0.5, &gs, 0.01, o, false));
    assert!(wv.iter().all(|x| (*x as f64 - want_w).abs() < 1e-6), "{wv:?} vs {want_w}");
    assert!(bv.iter().all(|x| (*x as f64 - want_b).abs() < 1e-6), "{bv:?} vs {want_b}");
    assert!(want_w < want_b, "decay must pull the matrix further");
    Ok(())
}

#[test]
fn global_norm_clipping() -> anyhow::Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let a = store.root().var("a", 2, Init::Const(1.0))?;
    let c = store.root().var("c", 1, Init::Const(1.0))?;
    let k = Tensor::new(&[3f32, 0.0], &Device::Cpu)?;
    let loss = ((a * k)?.sum_all()? + (c * 4.0)?.sum_all()?)?; // gradients (3, 0) and (4)
    let mut grads = loss.backward()?;
    let norm = grad_norm(&store, &grads)?;
    assert!((norm - 5.0).abs() < 1e-6);
    clip_grads(&store, &mut grads, norm, 1.0)?;
    assert!((grad_norm(&store, &grads)? - 1.0).abs() < 1e-5);
    Ok(())
}

#[test]
fn warmup_then_cosine() -> anyhow::Result<()> {
    let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
        "steps": 110, "batch_size": 1, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 10
    }))?;
    // nanoGPT's warm-up: lr * (it + 1) / (warmup_iters + 1).
    assert!((lr_at(0, &cfg) - 1e-3 / 11.0).abs() < 1e-12);
    assert!((lr_at(9, &cfg) - 1e-3 * 10.0 / 11.0).abs() < 1e-12);
    assert!((lr_at(10, &cfg) - 1e-3).abs() < 1e-12);
    assert!((lr_at(60, &cfg) - 5.5e-4).abs() < 1e-12, "halfway is the mean of lr and min_lr");
    assert!((lr_at(110, &cfg) - 1e-4).abs() < 1e-12);
    Ok(())
}
