//! One-batch overfit for every attention metric: after the first backward every variable has a
//! non-zero gradient (no silently dead path), and AdamW drives the loss on one batch down.

use crate::common;

use attnlab_model::{MetricKind, Model};
use attnlab_train::TaskEnv;
use attnlab_train::optim::{AdamW, AdamWParams, clip_grads, grad_norm};
use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn every_metric_overfits_one_batch() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let corpus = common::write_file(dir.path(), "c.txt", common::generated_text(3000).as_bytes());
    let device = Device::Cpu;
    for metric in MetricKind::ALL {
        let run = common::run_from_toml(&common::text_toml(&corpus, metric.name(), 1), &[])?;
        let (run, mut task) = run.build_task(&TaskEnv::on(&device))?;
        let (model, params) = Model::init(&run.model, 1, &device)?;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let batch = task.train_batch(0, &mut rng, 4)?;
        let adam = AdamWParams { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.0 };
        let mut opt = AdamW::new(&params, adam)?;
        let mut first = None;
        let mut last = f32::NAN;
        for step in 0..120 {
            let loss = task.loss(&model, &batch)?;
            last = loss.to_scalar::<f32>()?;
            let mut grads = loss.backward()?;
            if step == 0 {
                first = Some(last);
                for (name, var) in params.vars() {
                    let g = grads.get(var.as_tensor());
                    let g = g.unwrap_or_else(|| panic!("{metric}: `{name}` got no gradient"));
                    let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
                    assert!(norm > 0.0 && norm.is_finite(), "{metric}: `{name}` has gradient norm {norm}");
                }
            }
            let norm = grad_norm(&params, &grads)?;
            clip_grads(&params, &mut grads, norm, 1.0)?;
            opt.step(&grads, 1e-2)?;
        }
        let first = first.expect("at least one step");
        assert!(last < 0.5 * first, "{metric}: loss went from {first} to {last} on one batch");
    }
    Ok(())
}
