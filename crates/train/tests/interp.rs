//! Interpolation and prototype tasks: classical baselines against hand-computed values, the
//! Shepard identity of `idw` attention, generators, batches, scores, augmentation, bad input.

use attnlab_model::{
    MetricKind, MetricLayer, MetricSpec, Model, ModelConfig, ParamStore, PrototypeConfig, SetRegressorConfig,
};
use attnlab_train::Task;
use attnlab_train::tasks::franke::{Errors, FRANKE_NODES, franke_f1, grid, parse_nodes};
use attnlab_train::tasks::moons::two_moons;
use attnlab_train::tasks::prototype::{PrototypeTask, PrototypeTaskConfig};
use attnlab_train::tasks::scattered::{Problem, ScatteredConfig, ScatteredTask};
use attnlab_train::tasks::shepard::{Baseline, nearest, shepard};
use candle_core::{DType, Device, Tensor};
use candle_nn::Optimizer;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type R = anyhow::Result<()>;

#[test]
fn shepard_and_nearest_match_hand_computed_values() -> R {
    let nodes = [[0.0, 0.0], [1.0, 0.0]];
    let vals = [0.0, 1.0];
    // d = 0.25 and 0.75: p = 1 weights 4 and 4/3 -> 0.25; p = 2 weights 16 and 16/9 -> 0.1.
    assert!((shepard(&nodes, &vals, &[0.25, 0.0], 1.0, 0.0)? - 0.25).abs() < 1e-12);
    assert!((shepard(&nodes, &vals, &[0.25, 0.0], 2.0, 0.0)? - 0.1).abs() < 1e-12);
    // p = 2, eps = 1: weights 1/1.0625 and 1/1.5625 -> (1/1.5625) / (1/1.0625 + 1/1.5625) = 0.405...
    let want = (1.0 / 1.5625) / (1.0 / 1.0625 + 1.0 / 1.5625);
    assert!((shepard(&nodes, &vals, &[0.25, 0.0], 2.0, 1.0)? - want).abs() < 1e-12);
    // Classical Shepard interpolates: the value at a node is the node's value.
    assert_eq!(shepard(&nodes, &vals, &[1.0, 0.0], 3.0, 0.0)?, 1.0);
    // Equidistant nodes give the mean for every p.
    let tri = [[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]];
    for p in 1..=4 {
        assert!((shepard(&tri, &[1.0, 4.0, 7.0], &[1.0, 1.0], p as f64, 0.0)? - 4.0).abs() < 1e-12);
    }
    assert_eq!(nearest(&nodes, &vals, &[0.4, 0.3])?, 0.0);
    assert_eq!(nearest(&nodes, &vals, &[0.6, -0.3])?, 1.0);
    let pred = Baseline::Shepard(1).predict(&nodes, &vals, &[[0.25, 0.0], [0.75, 0.0]])?;
    assert!((pred[0] - 0.25).abs() < 1e-12 && (pred[1] - 0.75).abs() < 1e-12);
    Ok(())
}

#[test]
fn baselines_reject_bad_input() {
    let none: [[f64; 2]; 0] = [];
    let err = shepard(&none, &[], &[0.0, 0.0], 2.0, 0.0).expect_err("empty").to_string();
    assert!(err.contains("at least one node"), "{err}");
    let err = nearest(&[[0.0, f64::NAN]], &[1.0], &[0.0, 0.0]).expect_err("nan").to_string();
    assert!(err.contains("node 0") && err.contains("non-finite"), "{err}");
    let err = shepard(&[[0.0, 0.0]], &[1.0], &[f64::INFINITY, 0.0], 2.0, 0.0).expect_err("inf").to_string();
    assert!(err.contains("non-finite"), "{err}");
}

#[test]
fn franke_function_grid_and_errors() -> R {
    // F1(0,0) by hand: 0.75 e^-2 + 0.75 e^(-1/49 - 1/10) + 0.5 e^-14.5 - 0.2 e^-65.
    let want = 0.75 * (-2f64).exp() + 0.75 * (-1.0 / 49.0 - 0.1f64).exp() + 0.5 * (-14.5f64).exp();
    assert!((franke_f1(0.0, 0.0) - want).abs() < 1e-12);
    assert!((franke_f1(0.0, 0.0) - 0.76642).abs() < 1e-4);
    let g = grid(33);
    assert_eq!(g.len(), 1089);
    assert_eq!((g[0], g[32], g[1088]), ([0.0, 0.0], [1.0, 0.0], [1.0, 1.0]));
    assert!((g[1][0] - 1.0 / 32.0).abs() < 1e-15);
    let e = Errors::of(&[1.0, 2.0, 3.0, 4.0], &[1.0, 1.0, 3.0, 1.0])?;
    assert_eq!((e.max_abs, e.mean_abs), (3.0, 1.0));
    assert!((e.rms - (10f64 / 4.0).sqrt()).abs() < 1e-12);
    Ok(())
}

#[test]
fn node_files_parse_and_malformed_lines_are_named() -> R {
    let text: String = std::iter::once("# Franke nodes\n\n".to_string())
        .chain(FRANKE_NODES.iter().map(|[x, y]| format!("{x} {y}\n")))
        .collect();
    assert_eq!(parse_nodes(&text, "nodes.txt")?, FRANKE_NODES.to_vec());
    assert_eq!(parse_nodes("0.5, 0.25\n", "csv")?, vec![[0.5, 0.25]]);
    let err = parse_nodes("0 0\n0.5 oops\n", "nodes.txt").expect_err("bad").to_string();
    assert!(err.contains("nodes.txt line 2") && err.contains("0.5 oops"), "{err}");
    let err = parse_nodes("0 0\n1 2 3\n", "nodes.txt").expect_err("three").to_string();
    assert!(err.contains("line 2") && err.contains("two numbers"), "{err}");
    let err = parse_nodes("0 NaN\n", "nodes.txt").expect_err("nan").to_string();
    assert!(err.contains("line 1") && err.contains("finite"), "{err}");
    let err = parse_nodes("# nothing\n", "empty.txt").expect_err("empty").to_string();
    assert!(err.contains("no nodes"), "{err}");
    Ok(())
}

/// The identity the project is built on: idw attention with identity projections (queries the
/// grid points, keys the nodes, values the node values) is Shepard's method, for every power.
/// In f64 (the composed path) it holds to rounding; in f32 (the fused CPU kernel training uses)
/// the one-matmul distance `|q|^2 + |k|^2 - 2 q.k` loses digits to cancellation next to a node
/// (the grid point (0.40625, 1) lies 0.004 from one: d2 = 1.7e-5 against |q|^2 = 1.2).
#[test]
fn idw_metric_layer_reproduces_shepard_on_franke_data() -> R {
    let dev = Device::Cpu;
    let values: Vec<f64> = FRANKE_NODES.iter().map(|[x, y]| franke_f1(*x, *y)).collect();
    let pts = grid(33);
    for (dtype, tol) in [(DType::F64, 1e-9), (DType::F32, 1e-3)] {
        let t = |rows: &[[f64; 2]]| {
            Tensor::from_vec(rows.iter().flatten().copied().collect::<Vec<_>>(), (1, 1, rows.len(), 2), &dev)?
                .to_dtype(dtype)
        };
        let (q, k) = (t(&pts)?, t(&FRANKE_NODES)?);
        let v = Tensor::from_vec(values.clone(), (1, 1, 100, 1), &dev)?.to_dtype(dtype)?;
        for p in [1.0, 2.0, 3.0, 4.0] {
            let mut spec = MetricSpec::of(MetricKind::Idw);
            (spec.power, spec.delta) = (Some(p), 0.0);
            let layer = MetricLayer::new(&spec, 1, 2, &ParamStore::new(0, &dev).root())?;
            let got: Vec<f64> =
                layer.weights(&q, &k, None)?.matmul(&v)?.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
            for (x, g) in pts.iter().zip(&got) {
                let want = shepard(&FRANKE_NODES, &values, x, p, spec.eps)?;
                assert!((g - want).abs() < tol, "{dtype:?} p {p} at {x:?}: attention {g}, Shepard {want}");
            }
        }
    }
    Ok(())
}

#[test]
fn generators_are_deterministic_per_seed() -> R {
    let draw = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Problem::sample(2, 10, 5, &mut rng)
    };
    assert_eq!(draw(3), draw(3));
    assert_ne!(draw(3), draw(4));
    let p = draw(5);
    assert!(p.ctx_x.iter().flatten().all(|v| (0.0..1.0).contains(v)));
    assert!(p.ctx_y.iter().all(|v| v.is_finite() && v.abs() < 6.0));
    assert_eq!(two_moons(20, 0.1, 7, 1)?, two_moons(20, 0.1, 7, 1)?);
    assert_ne!(two_moons(20, 0.1, 7, 1)?, two_moons(20, 0.1, 8, 1)?);
    assert_ne!(two_moons(20, 0.1, 7, 1)?, two_moons(20, 0.1, 7, 2)?);
    // Noise-free moons lie on the unit circles.
    let clean = two_moons(5, 0.0, 0, 1)?;
    for (x, l) in clean.x.iter().zip(&clean.label) {
        let c = if *l == 0 { [0.0, 0.0] } else { [1.0, 0.5] };
        assert!(((x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2) - 1.0).abs() < 1e-12);
    }
    Ok(())
}

fn tiny_regressor(metric: MetricKind) -> ModelConfig {
    let mut cfg = SetRegressorConfig::small(2);
    (cfg.n_layer, cfg.n_head, cfg.n_embd) = (1, 2, 8);
    cfg.attention.metric = metric;
    ModelConfig::SetRegressor(cfg)
}

#[test]
fn scattered_task_batches_loss_and_franke_scores() -> R {
    let dev = Device::Cpu;
    let cfg = ScatteredConfig { dim: 2, n_context: 12, n_query: 5, val_functions: 40 };
    let mut task = ScatteredTask::new(&cfg, 1, &dev)?;
    assert_eq!(task.val_batches().len(), 2);
    let again = ScatteredTask::new(&cfg, 1, &dev)?;
    let v0: Vec<f32> = task.val_batches()[0].targets.flatten_all()?.to_vec1()?;
    assert_eq!(v0, again.val_batches()[0].targets.flatten_all()?.to_vec1::<f32>()?);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let b = task.train_batch(0, &mut rng, 3)?;
    assert_eq!(
        (b.inputs[0].dims(), b.inputs[1].dims(), b.targets.dims()),
        (&[3, 12, 3][..], &[3, 5, 2][..], &[3, 5][..])
    );
    let (model, _) = Model::init(&tiny_regressor(MetricKind::Idw), 0, &dev)?;
    let loss = task.loss(&model, &b)?.to_scalar::<f32>()?;
    assert!(loss.is_finite() && loss > 0.0);
    let scores = serde_json::to_value(task.scores(&model)?)?;
    let franke = &scores["franke"];
    for key in ["model", "shepard_p1", "shepard_p2", "shepard_p3", "shepard_p4", "nearest"] {
        for e in ["max_abs", "mean_abs", "rms"] {
            assert!(
                franke[key][e].as_f64().is_some_and(|v| v.is_finite() && v >= 0.0),
                "{key}.{e}: {franke}"
            );
        }
    }
    // Global Shepard improves with the power on F1 (p = 1 flattens everything towards the mean).
    let rms = |k: &str| franke[k]["rms"].as_f64().unwrap_or(f64::NAN);
    assert!(rms("shepard_p1") > rms("shepard_p2") && rms("shepard_p2") > rms("shepard_p4"), "{franke}");
    assert!(scores["val_shepard_p2_mse"].as_f64().is_some_and(|v| v > 0.0));
    // The wrong model kind is named.
    let proto = ModelConfig::Prototype(PrototypeConfig::new(2, 2, 2, MetricKind::Idw));
    let (wrong, _) = Model::init(&proto, 0, &dev)?;
    let err = task.loss(&wrong, &b).expect_err("wrong model").to_string();
    assert!(err.contains("set_regressor") && err.contains("prototype"), "{err}");
    Ok(())
}

#[test]
fn scattered_config_errors_name_the_field() {
    let dev = Device::Cpu;
    for (cfg, field) in [
        (ScatteredConfig { dim: 3, n_context: 5, n_query: 5, val_functions: 4 }, "task.dim"),
        (ScatteredConfig { dim: 2, n_context: 0, n_query: 5, val_functions: 4 }, "task.n_context"),
        (ScatteredConfig { dim: 1, n_context: 5, n_query: 0, val_functions: 4 }, "task.n_query"),
    ] {
        let err = ScatteredTask::new(&cfg, 0, &dev).err().expect("bad config").to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}

#[test]
fn prototype_batches_follow_epochs_and_resume_exactly() -> R {
    let dev = Device::Cpu;
    let mut task = PrototypeTask::new(&PrototypeTaskConfig::default(), 4, &dev)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut seen = Vec::new();
    for step in 0..20 {
        let b = task.train_batch(step, &mut rng, 10)?;
        seen.extend(b.inputs[0].to_vec2::<f32>()?);
    }
    // One epoch (20 steps of 10) visits every training point exactly once.
    let mut all: Vec<Vec<f32>> =
        task.train_points().x.iter().map(|p| p.iter().map(|v| *v as f32).collect()).collect();
    let key = |v: &Vec<f32>| (v[0].to_bits(), v[1].to_bits());
    seen.sort_by_key(key);
    all.sort_by_key(key);
    assert_eq!(seen, all);
    // A batch depends on the step only (a resumed run sees the same batches), epochs differ.
    let a = task.train_batch(37, &mut rng, 10)?.inputs[0].to_vec2::<f32>()?;
    let b = task.train_batch(37, &mut ChaCha8Rng::seed_from_u64(9), 10)?.inputs[0].to_vec2::<f32>()?;
    assert_eq!(a, b);
    assert_ne!(
        task.train_batch(3, &mut rng, 10)?.inputs[0].to_vec2::<f32>()?,
        task.train_batch(23, &mut rng, 10)?.inputs[0].to_vec2::<f32>()?
    );
    Ok(())
}

#[test]
fn prototype_task_checks_the_model() -> R {
    let dev = Device::Cpu;
    let task = PrototypeTask::new(&PrototypeTaskConfig::default(), 4, &dev)?;
    let mut cfg = PrototypeConfig::new(3, 2, 4, MetricKind::Idw);
    let err = task.prepare_model(&mut cfg).expect_err("3 features").to_string();
    assert!(err.contains("model.n_features = 3"), "{err}");
    let mut cfg = PrototypeConfig::new(2, 2, 4, MetricKind::Idw);
    task.prepare_model(&mut cfg)?;
    let (mean, std) = (cfg.data_mean.clone().unwrap_or_default(), cfg.data_std.clone().unwrap_or_default());
    assert!((mean[0] - 0.5).abs() < 0.1 && (mean[1] - 0.25).abs() < 0.1, "{mean:?}");
    assert!(std.iter().all(|s| (0.3..1.0).contains(s)), "{std:?}");
    let err =
        PrototypeTask::new(&PrototypeTaskConfig { dataset: "circles".into(), ..Default::default() }, 0, &dev)
            .err()
            .expect("dataset")
            .to_string();
    assert!(err.contains("task.dataset"), "{err}");
    Ok(())
}

/// Trains a prototype network with the paper's recipe (Adam, lr 0.01, cosine, 25 epochs, batch 10).
fn train_moons(task: &mut PrototypeTask, cfg: PrototypeConfig) -> anyhow::Result<(Model, ParamStore)> {
    let (model, params) = Model::init(&ModelConfig::Prototype(cfg), 1, &Device::Cpu)?;
    let vars: Vec<_> = params.vars().into_iter().map(|(_, v)| v).collect();
    let adam = candle_nn::ParamsAdamW { lr: 0.01, weight_decay: 0.0, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(vars, adam)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for step in 0..500 {
        opt.set_learning_rate(0.005 * (1.0 + (std::f64::consts::PI * step as f64 / 500.0).cos()));
        let b = task.train_batch(step, &mut rng, 10)?;
        opt.backward_step(&task.loss(&model, &b)?)?;
    }
    Ok((model, params))
}

#[test]
fn trained_idw_prototypes_sit_on_the_data_and_augmentation_is_local() -> R {
    let mut task = PrototypeTask::new(&PrototypeTaskConfig::default(), 2, &Device::Cpu)?;
    let mut cfg = PrototypeConfig::new(2, 2, 16, MetricKind::Idw);
    task.prepare_model(&mut cfg)?;
    let (model, params) = train_moons(&mut task, cfg)?;
    let scores = serde_json::to_value(task.scores(&model)?)?;
    let train_acc = scores["train_accuracy"].as_f64().unwrap_or(0.0);
    assert!(train_acc > 0.95, "idw train accuracy {train_acc}");
    let median = scores["key_distances"]["median"].as_f64().unwrap_or(f64::NAN);
    assert!(median < 0.3, "idw keys should end near the data: median distance {median}");
    // Flip one training point; training points farther than 0.3 keep their predictions.
    let net = model.as_prototype().expect("prototype");
    let pts = task.train_points();
    let pred = |n: &attnlab_model::PrototypeNet| -> candle_core::Result<Vec<u32>> {
        let x: Vec<f32> = pts.x.iter().flatten().map(|v| *v as f32).collect();
        n.forward(&Tensor::from_vec(x, (pts.x.len(), 2), &Device::Cpu)?)?.argmax(1)?.to_vec1()
    };
    let before = pred(net)?;
    let (i, target) = (17, 1 - before[17]);
    let aug = net.augment(&params, &pts.x[i], target as usize, None)?;
    assert!(aug.eta > 0.0);
    let after = pred(&aug.model)?;
    assert_eq!(after[i], target, "the chosen point was not flipped");
    let far =
        |j: usize| ((pts.x[j][0] - pts.x[i][0]).powi(2) + (pts.x[j][1] - pts.x[i][1]).powi(2)).sqrt() > 0.3;
    let changed: Vec<usize> = (0..pts.x.len()).filter(|j| far(*j) && before[*j] != after[*j]).collect();
    assert!(changed.is_empty(), "far training points changed class: {changed:?}");
    // Augmenting a non-idw network is refused.
    let mut dot = PrototypeConfig::new(2, 2, 4, MetricKind::Dot);
    task.prepare_model(&mut dot)?;
    let (dm, dp) = Model::init(&ModelConfig::Prototype(dot), 0, &Device::Cpu)?;
    let err = dm.as_prototype().expect("prototype").augment(&dp, &[0.0, 0.0], 0, None).err().expect("dot");
    assert!(err.to_string().contains("idw"), "{err}");
    Ok(())
}

/// A short moons run (100 steps) of `metric` written to `dir`.
fn moons_run(metric: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/moons.toml"))?;
    let mut value = attnlab_train::config::toml_to_value(&text)?;
    let sets = [format!("model.metric={metric}"), "train.steps=100".into(), "seed=3".into()];
    attnlab_train::config::apply_overrides(&mut value, &sets)?;
    let run = attnlab_train::RunConfig::from_value(value)?;
    attnlab_train::train(&run, dir, &attnlab_train::TrainOptions::new(&Device::Cpu))?;
    Ok(())
}

#[test]
fn augment_run_writes_a_checkpoint_that_flips_the_point() -> anyhow::Result<()> {
    use attnlab_train::augment::augment_run;
    let tmp = tempfile::tempdir()?;
    let run = tmp.path().join("idw");
    moons_run("idw", &run)?;
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("summary.json"))?)?;
    for key in ["train_accuracy", "val_accuracy"] {
        assert!(summary[key].as_f64().is_some_and(|a| a > 0.5), "{key}: {summary}");
    }
    assert!(summary["key_distances"]["per_key"].as_array().is_some_and(|k| k.len() == 16), "{summary}");
    // The middle of the inner moon, asked to be class 0.
    let out = tmp.path().join("aug");
    let report = augment_run(&run, &[1.0, -0.5], 0, None, &out)?;
    assert_eq!((report.predicted_before, report.predicted_after, report.n_protos), (1, 0, 17), "{report:?}");
    let back = attnlab_model::Checkpoint::load(&out, &Device::Cpu)?;
    let net = back.model.as_prototype().expect("prototype");
    let logits: Vec<f32> =
        net.forward(&Tensor::new(&[[1.0f32, -0.5]], &Device::Cpu)?)?.flatten_all()?.to_vec1()?;
    assert!(logits[0] > logits[1], "the saved checkpoint does not flip the point: {logits:?}");
    let err = augment_run(&run, &[1.0, -0.5], 2, None, &tmp.path().join("bad")).expect_err("class 2");
    assert!(format!("{err:#}").contains("class 2 is out of range"), "{err:#}");
    let dot = tmp.path().join("dot");
    moons_run("dot", &dot)?;
    let err = augment_run(&dot, &[1.0, -0.5], 0, None, &tmp.path().join("bad")).expect_err("dot run");
    assert!(format!("{err:#}").contains("needs the `idw` metric"), "{err:#}");
    Ok(())
}

#[test]
fn misspelt_keys_are_rejected_for_the_interpolation_variants() -> anyhow::Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/");
    for (file, key) in [
        ("moons.toml", "model.n_protoss"),
        ("moons.toml", "task.noize"),
        ("scattered2d.toml", "model.n_layers"),
        ("scattered1d.toml", "task.n_contexts"),
    ] {
        let path = std::path::Path::new(dir).join(file);
        let err = attnlab_train::RunConfig::load(&path, &[format!("{key}=3")]).expect_err(key);
        let (msg, field) = (format!("{err:#}"), key.rsplit('.').next().unwrap_or(key));
        assert!(msg.contains("unknown") && msg.contains(field), "{file} {key}: {msg}");
        // The unmodified config loads, and the overrides of the brief work.
        attnlab_train::RunConfig::load(&path, &["seed=7".into()])?;
    }
    let moons = std::path::Path::new(dir).join("moons.toml");
    let sets = ["model.metric=dot".into(), "model.n_protos=128".into(), "seed=5".into()];
    let run = attnlab_train::RunConfig::load(&moons, &sets)?;
    assert_eq!((run.model.metric(), run.seed), (MetricKind::Dot, 5));
    let err = attnlab_train::RunConfig::load(&moons, &["model.n_protos=0".into()]);
    let err = match err {
        Err(e) => format!("{e:#}"),
        Ok(run) => {
            let built = run.build_task(&attnlab_train::TaskEnv::on(&Device::Cpu));
            format!("{:#}", built.err().expect("n_protos = 0 must be rejected"))
        }
    };
    assert!(err.contains("model.n_protos must be at least 1"), "{err}");
    Ok(())
}
