//! Dropout in the trainer: seeded and exactly resumable (masks from seed, step and site), `0`
//! the same run as no dropout at all, and validation without dropout.

use crate::common;

use std::path::Path;

use attnlab_train::rundir::{self, Split, read_metrics};
use attnlab_train::{Interrupted, TrainOptions, train};
use candle_core::Device;

fn losses(dir: &Path) -> Vec<(usize, Split, u64)> {
    read_metrics(dir).expect("metrics").into_iter().map(|l| (l.step, l.split, l.loss.to_bits())).collect()
}

fn weights(dir: &Path) -> Vec<(String, Vec<u32>)> {
    let t =
        candle_core::safetensors::load(dir.join("last/model.safetensors"), &Device::Cpu).expect("weights");
    let mut out: Vec<_> = t
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.flatten_all()
                    .and_then(|v| v.to_vec1::<f32>())
                    .expect("f32")
                    .iter()
                    .map(|x| x.to_bits())
                    .collect(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn dropout_runs_are_seeded_and_resume_exactly() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = common::write_file(tmp.path(), "c.txt", common::generated_text(4000).as_bytes());
    let toml = common::text_toml(&corpus, "idw", 10);
    let run = common::run_from_toml(&toml, &["model.dropout=0.2"])?;
    let opts = TrainOptions::new(&Device::Cpu);
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    train(&run, &a, &opts)?;
    train(&run, &c, &opts)?;
    assert_eq!(losses(&a), losses(&c), "same seed: same run");
    let stop = TrainOptions { stop_at: Some(5), ..opts.clone() };
    let err = train(&run, &b, &stop).expect_err("stop_at must interrupt");
    assert!(err.downcast_ref::<Interrupted>().is_some());
    train(&run, &b, &TrainOptions { resume: true, ..opts.clone() })?;
    assert_eq!(losses(&a), losses(&b), "resumed: the same masks at every step");
    assert_eq!(weights(&a), weights(&b));
    // Another seed draws other masks (and other weights).
    let other = common::run_from_toml(&toml, &["model.dropout=0.2", "seed=8"])?;
    train(&other, &tmp.path().join("d"), &opts)?;
    assert_ne!(losses(&a), losses(&tmp.path().join("d")));
    Ok(())
}

#[test]
fn dropout_zero_is_the_run_without_dropout_and_validation_drops_nothing() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = common::write_file(tmp.path(), "c.txt", common::generated_text(4000).as_bytes());
    let toml = common::text_toml(&corpus, "dot", 6);
    let opts = TrainOptions::new(&Device::Cpu);
    let (none, zero, some) = (tmp.path().join("none"), tmp.path().join("zero"), tmp.path().join("some"));
    train(&common::run_from_toml(&toml, &[])?, &none, &opts)?;
    train(&common::run_from_toml(&toml, &["model.dropout=0.0"])?, &zero, &opts)?;
    assert_eq!(losses(&none), losses(&zero));
    assert_eq!(weights(&none), weights(&zero));
    train(&common::run_from_toml(&toml, &["model.dropout=0.5"])?, &some, &opts)?;
    let (l0, l5) = (losses(&none), losses(&some));
    // Same initial weights: the validation loss at step 0 (before any update) is the same, so
    // validation runs without dropout; the first training loss differs (dropout is on).
    let first = |l: &[(usize, Split, u64)], split| l.iter().find(|x| x.1 == split).map(|x| x.2);
    assert_eq!(first(&l0, Split::Val), first(&l5, Split::Val));
    assert_ne!(first(&l0, Split::Train), first(&l5, Split::Train));
    assert!(rundir::is_finished(&some));
    Ok(())
}
