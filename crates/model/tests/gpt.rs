//! GPT: shapes, every variable gets a gradient for every metric, causality, determinism.

use attnlab_model::{GptConfig, MetricKind, Model, ModelConfig, NormKind};
use candle_core::{D, Device, IndexOp, Tensor};

fn tiny(metric: MetricKind) -> GptConfig {
    let mut cfg = GptConfig::baby_char(11);
    cfg.block_size = 8;
    cfg.n_layer = 2;
    cfg.n_head = 2;
    cfg.n_embd = 16;
    cfg.attention.metric = metric;
    cfg.attention.learn_power = metric == MetricKind::Idw;
    cfg
}

fn tokens(device: &Device) -> Tensor {
    Tensor::new(&[[1u32, 4, 2, 7, 3, 3, 9, 0], [5, 5, 1, 2, 8, 6, 10, 4]], device).expect("tokens")
}

#[test]
fn every_variable_gets_a_gradient_for_every_metric_and_norm() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for metric in MetricKind::ALL {
        for norm in [NormKind::Layernorm, NormKind::Rmsnorm, NormKind::None] {
            let mut cfg = tiny(metric);
            cfg.norm = norm;
            cfg.bias = norm == NormKind::Layernorm;
            cfg.tied_embeddings = norm != NormKind::Rmsnorm;
            let (model, params) = Model::init(&ModelConfig::Gpt(cfg), 7, &dev)?;
            let gpt = model.as_gpt().expect("gpt");
            let logits = gpt.forward(&tokens(&dev))?;
            assert_eq!(logits.dims(), &[2, 8, 11]);
            let targets = tokens(&dev).flatten_all()?;
            let loss = candle_nn::loss::cross_entropy(&logits.flatten_to(1)?, &targets)?;
            let grads = loss.backward()?;
            for (name, var) in params.vars() {
                let g = grads.get(var.as_tensor());
                assert!(g.is_some(), "{metric}/{norm:?}: `{name}` got no gradient");
                let g = g.expect("checked").sqr()?.sum_all()?.to_scalar::<f32>()?;
                assert!(g.is_finite() && g > 0.0, "{metric}/{norm:?}: `{name}` gradient norm^2 {g}");
            }
        }
    }
    Ok(())
}

#[test]
fn changing_a_token_changes_no_earlier_output() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for metric in MetricKind::ALL {
        let (model, _) = Model::init(&ModelConfig::Gpt(tiny(metric)), 3, &dev)?;
        let gpt = model.as_gpt().expect("gpt");
        let a = tokens(&dev);
        let mut row: Vec<u32> = a.i(0)?.to_vec1()?;
        let j = 5;
        row[j] = (row[j] + 1) % 11;
        let b = Tensor::new(row.as_slice(), &dev)?.unsqueeze(0)?;
        let la = gpt.forward(&a.i(0..1)?)?;
        let lb = gpt.forward(&b)?;
        let diff = (la - lb)?.abs()?.max(D::Minus1)?.squeeze(0)?.to_vec1::<f32>()?;
        for (i, d) in diff.iter().enumerate() {
            if i < j {
                assert_eq!(*d, 0.0, "{metric}: position {i} changed when token {j} changed");
            } else if i == j {
                assert!(*d > 0.0, "{metric}: position {j} did not change");
            }
        }
    }
    Ok(())
}

#[test]
fn same_seed_gives_same_weights() -> candle_core::Result<()> {
    let cfg = ModelConfig::Gpt(tiny(MetricKind::Dot));
    let (_, a) = Model::init(&cfg, 42, &Device::Cpu)?;
    let (_, b) = Model::init(&cfg, 42, &Device::Cpu)?;
    let (_, c) = Model::init(&cfg, 43, &Device::Cpu)?;
    let w = |p: &attnlab_model::ParamStore| -> Vec<f32> {
        p.get("blocks.1.attn.q_proj.weight")
            .expect("var")
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("vec")
    };
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
    Ok(())
}

#[test]
fn nonsense_configs_are_rejected_naming_the_field() {
    let check = |f: &dyn Fn(&mut GptConfig), field: &str| {
        let mut cfg = tiny(MetricKind::Dot);
        f(&mut cfg);
        let err = cfg.validate().expect_err("should be rejected").to_string();
        assert!(err.contains(field), "error `{err}` does not name `{field}`");
    };
    check(&|c| c.n_embd = 15, "n_embd");
    check(&|c| c.n_layer = 0, "n_layer");
    check(&|c| c.n_head = 0, "n_head");
    check(&|c| c.attention.eps = 0.0, "eps");
    check(&|c| c.attention.power = Some(-1.0), "power");
    check(&|c| c.norm_eps = f64::NAN, "norm_eps");
    let err = serde_json::from_str::<ModelConfig>(r#"{"kind":"gpt","vocab_size":3,"block_size":4,"n_layer":1,"n_head":1,"n_embd":4,"metric":"euclidish"}"#)
        .expect_err("unknown metric");
    assert!(err.to_string().contains("euclidish"), "{err}");
}
