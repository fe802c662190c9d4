//! The run directory's one owner: which folder holds the checkpoint, and the metrics log's
//! round trip (a cut-off last line is skipped, a malformed middle line is an error).

use attnlab_model::{Checkpoint, Model};
use attnlab_train::TaskEnv;
use attnlab_train::rundir::{MetricLine, MetricsWriter, RunDir, Split, read_metrics};
use candle_core::Device;

use crate::common;

#[test]
fn checkpoint_dir_is_last_then_best_and_only_a_complete_one() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let run = common::run_from_toml(&common::recall_toml("dot", 1), &[])?;
    let dir = RunDir::new(tmp.path().join("r"));
    assert_eq!(dir.checkpoint_dir(), None);
    let (run, _task) = run.build_task(&TaskEnv::on(&Device::Cpu))?;
    let (_model, params) = Model::init(&run.model, 0, &Device::Cpu)?;
    let config = run.to_value()?;
    Checkpoint::save(&dir.best_dir(), &config, &params, &[])?;
    assert_eq!(dir.checkpoint_dir(), Some(dir.best_dir()));
    assert!(!dir.can_resume());
    Checkpoint::save(&dir.last_dir(), &config, &params, &[])?;
    assert_eq!(dir.checkpoint_dir(), Some(dir.last_dir()));
    assert!(dir.can_resume() && dir.holds_run() && !dir.is_finished());
    // A checkpoint directory given directly is itself.
    assert_eq!(RunDir::new(dir.best_dir()).checkpoint_dir(), Some(dir.best_dir()));
    Ok(())
}

#[test]
fn metrics_lines_round_trip_and_a_cut_off_last_line_is_skipped() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let lines = [MetricLine::train(1, 2.5, 1e-3, 0.7, 1000.0, 0.1), MetricLine::val(1, 2.4, 0.2)];
    let mut w = MetricsWriter::open(tmp.path())?;
    for l in &lines {
        w.write(l)?;
    }
    let back = read_metrics(tmp.path())?;
    assert_eq!(back, lines);
    assert_eq!(back[1].split, Split::Val);
    let path = tmp.path().join("metrics.jsonl");
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, format!("{text}{{\"step\":2,\"spl"))?;
    assert_eq!(read_metrics(tmp.path())?.len(), 2);
    std::fs::write(&path, format!("not json\n{text}"))?;
    let err = format!("{:#}", read_metrics(tmp.path()).expect_err("bad line"));
    assert!(err.contains("line 1") && err.contains("metrics.jsonl"), "{err}");
    Ok(())
}
