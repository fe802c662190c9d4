//! Issue 13 in the trainer: divergence stops before the optimizer step and never saves
//! non-finite weights (case 10); a run that failed before its first checkpoint starts again
//! (case 12); one writer per run directory; resume is exact or says why not (case 14); a torn
//! last metrics line never blocks a resume (case 25); outputs never overlap inputs (case 19).

use crate::common;

use std::path::Path;

use attnlab_train::guard::{Diverged, checkpoint_is_finite};
use attnlab_train::rundir::{self, MetricLine, Split, read_metrics};
use attnlab_train::{RunLock, TrainOptions, Writer, check_output, train};
use candle_core::Device;

fn opts() -> TrainOptions {
    TrainOptions::new(&Device::Cpu)
}

/// Every metrics line without its timing fields (tokens/s, wall time).
fn untimed(dir: &Path) -> Vec<MetricLine> {
    read_metrics(dir)
        .expect("metrics")
        .into_iter()
        .map(|mut l| {
            l.tokens_per_s = None;
            l.wall_s = None;
            l
        })
        .collect()
}

fn same_files(a: &Path, b: &Path) {
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let (x, y) = (std::fs::read(a.join("last").join(file)), std::fs::read(b.join("last").join(file)));
        assert!(
            x.expect("read") == y.expect("read"),
            "{file} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn divergence_stops_before_the_step_and_never_saves_non_finite_weights() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let over = [
        "train.lr=1e8",
        "train.warmup_steps=0",
        "train.min_lr=0",
        "train.ckpt_interval=1",
        "train.eval_interval=1000",
        "train.grad_clip=0",
    ];
    let run = common::run_from_toml(&common::recall_toml("dot", 20), &over)?;
    let dir = tmp.path().join("run");
    let err = train(&run, &dir, &opts()).expect_err("lr 1e8 must diverge");
    let d = err.downcast_ref::<Diverged>().unwrap_or_else(|| panic!("not a Diverged error: {err:#}")).clone();
    let msg = format!("{err:#}");
    // Nothing of the diverged step was logged: the run stopped before its optimizer update.
    let last_logged = read_metrics(&dir)?.iter().filter(|l| l.split == Split::Train).map(|l| l.step).max();
    assert_eq!(last_logged.unwrap_or(0), d.step - 1, "{msg}");
    // Every checkpoint left is finite, and the one named exists and is good.
    for ckpt in [rundir::last_dir(&dir), rundir::best_dir(&dir)] {
        if ckpt.exists() {
            assert!(checkpoint_is_finite(&ckpt), "{} holds non-finite weights", ckpt.display());
        }
    }
    match &d.last_good {
        Some(good) => {
            assert!(checkpoint_is_finite(good) && msg.contains(&good.display().to_string()), "{msg}");
        }
        None => assert!(msg.contains("no checkpoint"), "{msg}"),
    }
    // The one named is the best-validation checkpoint (step 0's sane weights); `last/`, saved
    // after the weights blew up, is never called good.
    assert_eq!(d.last_good.as_deref(), Some(rundir::best_dir(&dir).as_path()), "{msg}");
    assert!(msg.contains("the checkpoint with the best validation loss is"), "{msg}");
    assert_eq!(d.also_good, None, "{msg}");
    assert!(!msg.contains(&format!("{} is good", rundir::last_dir(&dir).display())), "{msg}");
    Ok(())
}

#[test]
fn a_run_that_failed_before_its_first_checkpoint_starts_again() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("run");
    let bad = [
        "train.lr=1e8",
        "train.warmup_steps=0",
        "train.grad_clip=0",
        "train.ckpt_interval=1000",
        "train.eval_interval=1000",
    ];
    let run = common::run_from_toml(&common::recall_toml("dot", 10), &bad)?;
    let err = train(&run, &dir, &opts()).expect_err("diverges");
    let d = err.downcast_ref::<Diverged>().expect("Diverged").clone();
    assert!(!rundir::can_resume(&dir));
    if let Some(p) = &d.last_good {
        assert!(p.exists(), "the error names {}, which does not exist", p.display());
    }
    let good = common::run_from_toml(&common::recall_toml("dot", 10), &[])?;
    // Resuming a run without a checkpoint starts it from step 0 ...
    let resume = TrainOptions { resume: true, ..opts() };
    let resumed = train(&good, &dir, &resume)?;
    // ... and gives what a fresh run in a fresh directory gives.
    let fresh = tmp.path().join("fresh");
    let straight = train(&good, &fresh, &opts())?;
    assert_eq!(resumed.final_val_loss, straight.final_val_loss);
    assert_eq!(untimed(&dir), untimed(&fresh));
    // Failing again, then starting afresh (no --resume) in the same directory works too.
    let dir2 = tmp.path().join("run2");
    train(&run, &dir2, &opts()).expect_err("diverges");
    train(&good, &dir2, &opts())?;
    same_files(&dir2, &fresh);
    Ok(())
}

#[test]
fn a_second_writer_is_refused_and_the_lock_is_released() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("run");
    let lock = RunLock::try_acquire(&dir)?;
    let run = common::run_from_toml(&common::recall_toml("dot", 4), &[])?;
    let err = format!("{:#}", train(&run, &dir, &opts()).expect_err("locked"));
    assert!(err.contains("in use by another attnlab process") && err.contains("run"), "{err}");
    let again = format!("{:#}", RunLock::try_acquire(&dir).expect_err("locked twice"));
    assert!(again.contains(&dir.display().to_string()), "{again}");
    drop(lock);
    train(&run, &dir, &opts())?;
    Ok(())
}

#[test]
fn resume_refuses_changes_to_the_past_and_extends_with_a_fixed_schedule() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ten = common::run_from_toml(&common::recall_toml("dot", 10), &["train.warmup_steps=2"])?;
    let dir = tmp.path().join("run");
    train(&ten, &dir, &opts())?;
    let resume = TrainOptions { resume: true, ..opts() };
    for (set, needle) in [
        (&["train.steps=20"][..], "train.lr_decay_steps=10"),
        (&["train.lr=1e-2"][..], "train.lr"),
        (&["train.batch_size=8"][..], "train.batch_size 4 -> 8"),
        (&["seed=4"][..], "seed 3 -> 4"),
    ] {
        let changed = common::run_from_toml(
            &common::recall_toml("dot", 10),
            &[&["train.warmup_steps=2"][..], set].concat(),
        )?;
        let err = format!("{:#}", train(&changed, &dir, &resume).expect_err("a change to the past"));
        assert!(err.contains(needle) && err.contains("--allow-changes"), "{set:?}: {err}");
    }
    // Extending with the schedule's length kept: exactly a straight 20-step run of that schedule.
    let longer = ["train.warmup_steps=2", "train.steps=20", "train.lr_decay_steps=10"];
    let twenty = common::run_from_toml(&common::recall_toml("dot", 10), &longer)?;
    train(&twenty, &dir, &resume)?;
    let straight = tmp.path().join("straight");
    train(&twenty, &straight, &opts())?;
    same_files(&dir, &straight);
    assert_eq!(untimed(&dir), untimed(&straight));
    let lrs: Vec<f64> = untimed(&dir).iter().filter_map(|l| l.lr).collect();
    let min_lr = twenty.train.min_lr();
    assert!(lrs[10..].iter().all(|&lr| lr == min_lr), "{lrs:?}");
    // --allow-changes accepts a changed rate.
    let faster = common::run_from_toml(
        &common::recall_toml("dot", 10),
        &["train.warmup_steps=2", "train.steps=20", "train.lr_decay_steps=10", "train.lr=1e-2"],
    )?;
    let allow = TrainOptions { resume: true, allow_changes: true, ..opts() };
    let other = tmp.path().join("other");
    train(&ten, &other, &opts())?;
    train(&faster, &other, &allow)?;
    assert!(rundir::is_finished(&other));
    Ok(())
}

#[test]
fn interrupted_and_resumed_equals_straight_even_after_a_torn_metrics_line() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = common::write_file(tmp.path(), "c.txt", common::generated_text(4000).as_bytes());
    let run = common::run_from_toml(&common::text_toml(&corpus, "idw", 10), &[])?;
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    train(&run, &a, &opts())?;
    let stop = TrainOptions { stop_at: Some(6), ..opts() };
    train(&run, &b, &stop).expect_err("stopped");
    // A crash mid-write leaves a cut-off last line (case 25).
    let mut text = std::fs::read_to_string(b.join(rundir::METRICS_FILE))?;
    text.push_str("{\"step\":7,\"split\":\"tr");
    std::fs::write(b.join(rundir::METRICS_FILE), text)?;
    train(&run, &b, &TrainOptions { resume: true, ..opts() })?;
    same_files(&a, &b);
    assert_eq!(untimed(&a), untimed(&b));
    Ok(())
}

#[test]
fn outputs_never_overlap_inputs_or_foreign_runs() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let run = tmp.path().join("run");
    train(&common::run_from_toml(&common::recall_toml("dot", 2), &[])?, &run, &opts())?;
    for writer in [Writer::Augment, Writer::Report, Writer::Sweep, Writer::Train] {
        for out in [run.clone(), run.join("last"), run.join("sub/dir"), tmp.path().join("x/../run")] {
            let err = format!("{:#}", check_output(&out, &[&run], writer).expect_err("overlap"));
            assert!(err.contains(&out.display().to_string()), "{writer:?} {}: {err}", out.display());
        }
    }
    // Replacing a directory that contains the input is refused; a report beside runs is fine.
    check_output(tmp.path(), &[&run], Writer::Augment).expect_err("contains the input");
    check_output(&tmp.path().join("report"), &[&run], Writer::Report)?;
    // A sweep directory (marked by its plan): only the sweep's own report may be written in it;
    // `eval --out` into it, its `runs/` or its `report/` is refused.
    let sweep = tmp.path().join("sweep");
    std::fs::create_dir_all(sweep.join("runs"))?;
    std::fs::write(sweep.join(attnlab_train::SWEEP_FILE), "{}")?;
    for out in [sweep.clone(), sweep.join("runs"), sweep.join("report")] {
        let err = format!("{:#}", check_output(&out, &[&run], Writer::Report).expect_err("sweep dir"));
        assert!(err.contains("sweep directory"), "{}: {err}", out.display());
    }
    check_output(&sweep.join("report"), &[&run], Writer::SweepReport)?;
    // A directory holding a run the command did not make.
    let other = tmp.path().join("other");
    train(&common::run_from_toml(&common::recall_toml("dot", 2), &[])?, &other, &opts())?;
    for writer in [Writer::Augment, Writer::Report, Writer::Sweep] {
        check_output(&other, &[&run], writer).expect_err("foreign run");
    }
    check_output(&other.join("last"), &[], Writer::Train).expect_err("a checkpoint is not a run");
    // An earlier augmentation may be replaced by augment.
    let aug = tmp.path().join("aug");
    std::fs::create_dir_all(&aug)?;
    for f in ["config.json", "model.safetensors", "augment.json"] {
        std::fs::write(aug.join(f), "{}")?;
    }
    check_output(&aug, &[&run], Writer::Augment)?;
    Ok(())
}
