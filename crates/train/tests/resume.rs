//! Exact resume: N steps straight and N/2 + resume + N/2 give identical losses, weights and
//! optimizer state; a resume drops metrics lines written after its checkpoint; a NaN loss stops
//! the run and keeps the last good checkpoint.

use crate::common;

use std::collections::HashMap;
use std::path::Path;

use attnlab_model::Model;
use attnlab_train::rundir::{self, Split, read_metrics};
use attnlab_train::task::{Batch, Task};
use attnlab_train::{AnyTask, Interrupted, TaskScores, TrainOptions, train, train_task};
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

fn tensors(path: &Path) -> HashMap<String, Vec<f32>> {
    let t = candle_core::safetensors::load(path, &Device::Cpu).expect("loading safetensors");
    t.into_iter()
        .map(|(k, v)| {
            let v =
                v.flatten_all().and_then(|v| v.to_dtype(candle_core::DType::F32)).and_then(|v| v.to_vec1());
            (k, v.expect("tensor to vec"))
        })
        .collect()
}

fn train_losses(dir: &Path) -> Vec<(usize, Split, f64)> {
    read_metrics(dir).expect("metrics").into_iter().map(|l| (l.step, l.split, l.loss)).collect()
}

#[test]
fn stopped_and_resumed_run_equals_straight_run() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = common::write_file(tmp.path(), "c.txt", common::generated_text(4000).as_bytes());
    let run = common::run_from_toml(&common::text_toml(&corpus, "idw", 10), &[])?;
    let opts = TrainOptions::new(&Device::Cpu);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let straight = train(&run, &a, &opts)?;

    let stop = TrainOptions { stop_at: Some(5), ..opts.clone() };
    let err = train(&run, &b, &stop).expect_err("stop_at must interrupt");
    assert_eq!(err.downcast_ref::<Interrupted>().map(|i| i.step), Some(5));
    assert!(!b.join(rundir::SUMMARY_FILE).exists());
    // A line from after the checkpoint (as a crash would leave) must be dropped on resume.
    let mut text = std::fs::read_to_string(b.join(rundir::METRICS_FILE))?;
    text.push_str("{\"step\":6,\"split\":\"train\",\"loss\":99.0,\"wall_s\":1.0}\n");
    std::fs::write(b.join(rundir::METRICS_FILE), text)?;

    let resume = TrainOptions { resume: true, ..opts.clone() };
    let resumed = train(&run, &b, &resume)?;
    assert_eq!(train_losses(&a), train_losses(&b));
    assert_eq!(straight.final_val_loss, resumed.final_val_loss);
    assert_eq!(straight.best_val_loss, resumed.best_val_loss);
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let (ta, tb) = (tensors(&a.join("last").join(file)), tensors(&b.join("last").join(file)));
        assert_eq!(ta.len(), tb.len());
        for (k, v) in &ta {
            assert!(v == &tb[k], "{file}: `{k}` differs after resume");
        }
    }
    assert!(rundir::is_finished(&a) && rundir::is_finished(&b));
    Ok(())
}

#[test]
fn resume_refuses_a_different_model_and_a_fresh_run_refuses_an_existing_dir() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let run = common::run_from_toml(&common::recall_toml("dot", 4), &[])?;
    let opts = TrainOptions::new(&Device::Cpu);
    let dir = tmp.path().join("r");
    train(&run, &dir, &opts)?;
    let again = train(&run, &dir, &opts).expect_err("existing run dir");
    assert!(format!("{again:#}").contains("--resume"), "{again:#}");
    let wider = common::run_from_toml(&common::recall_toml("dot", 8), &["model.n_embd=32"])?;
    let resume = TrainOptions { resume: true, ..opts.clone() };
    let err = train(&wider, &dir, &resume).expect_err("model differs");
    assert!(format!("{err:#}").contains("model config differs"), "{err:#}");
    let missing = train(&run, &tmp.path().join("none"), &resume).expect_err("nothing to resume");
    assert!(format!("{missing:#}").contains("no such directory"), "{missing:#}");
    Ok(())
}

/// Wraps a task and makes its loss NaN from step `at` on.
struct Diverging {
    inner: Box<AnyTask>,
    at: usize,
    step: usize,
}

impl Task for Diverging {
    type Scores = TaskScores;

    fn train_batch(&mut self, step: usize, rng: &mut ChaCha8Rng, b: usize) -> anyhow::Result<Batch> {
        self.step = step;
        self.inner.train_batch(step, rng, b)
    }
    fn val_batches(&self) -> &[Batch] {
        self.inner.val_batches()
    }
    fn loss(&self, model: &Model, batch: &Batch) -> anyhow::Result<Tensor> {
        let loss = self.inner.loss(model, batch)?;
        if self.step >= self.at { Ok((loss * f64::NAN)?) } else { Ok(loss) }
    }
    fn scores(&self, model: &Model) -> anyhow::Result<TaskScores> {
        self.inner.scores(model)
    }
}

#[test]
fn nan_loss_stops_and_keeps_the_last_good_checkpoint() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let run = common::run_from_toml(&common::recall_toml("dot", 20), &[])?;
    let opts = TrainOptions::new(&Device::Cpu);
    let (run, task) = run.build_task(&opts.env)?;
    let task = Box::new(Diverging { inner: task, at: 7, step: 0 });
    let dir = tmp.path().join("nan");
    let err = train_task(run, task, &dir, &opts).expect_err("NaN must stop the run");
    let msg = format!("{err:#}");
    assert!(msg.contains("NaN") && msg.contains("step 8") && msg.contains("best validation loss"), "{msg}");
    let state: rundir::TrainerState = rundir::read_json(&dir.join("last").join(rundir::STATE_FILE))?;
    assert_eq!(state.step, 5, "the checkpoint of step 5 (ckpt_interval 5) stays");
    attnlab_model::Checkpoint::load(dir.join("last"), &Device::Cpu)?;
    Ok(())
}
