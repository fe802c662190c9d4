//! A tuned sweep axis (`[tune] "train.lr" = [...]`): the selection runs train every rate at the
//! first seed, the planted best rate (the only one that learns in 20 steps) is chosen on
//! validation loss per configuration, and the other seeds run only at it.

use crate::common;

use std::fs;

use attnlab_train::sweep::jobs::{Executor, SweepOptions};
use attnlab_train::sweep::one::RetryPolicy;
use attnlab_train::sweep::{self, Shard, tune};
use attnlab_train::{TrainOptions, rundir};
use candle_core::Device;

#[test]
fn tuning_picks_the_planted_best_rate_and_runs_the_other_seeds_only_there() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = common::write_file(tmp.path(), "c.txt", common::generated_text(3000).as_bytes());
    fs::write(tmp.path().join("text.toml"), common::text_toml(&corpus, "dot", 20))?;
    // 1e-2 learns in 20 steps; 1e-6 and 1e-5 barely move from the initial loss. The best is
    // listed in the middle, so neither the first nor the last value is a default.
    let sweep_text = "[[base]]\nconfig = \"text.toml\"\nname = \"t\"\n\
                      [grid]\n\"model.metric\" = [\"dot\", \"idw\"]\nseed = [5, 6, 7]\n\
                      [tune]\n\"train.lr\" = [1e-6, 1e-2, 1e-5]\n";
    let path = tmp.path().join("sweep.toml");
    fs::write(&path, sweep_text)?;
    let (file, runs) = sweep::load(&path)?;
    assert_eq!(runs.len(), 2 * 3 * 3, "the plan holds every combination");
    let key = tune::tuned_key(&file)?.expect("a tuned key");
    assert_eq!(key, "train.lr");
    let out = tmp.path().join("out");
    assert_eq!(tune::decided_runs(&runs, &key, &out).len(), 6, "before training: the selection runs");

    let opts = SweepOptions {
        executor: Executor::InProcess(TrainOptions::new(&Device::Cpu)),
        shard: Shard::ALL,
        retry: RetryPolicy::default(),
        keep_stale: false,
    };
    let result = tune::run_tuned_sweep(&runs, &key, &out, &opts)?;
    assert_eq!(result.outcomes.len(), 2 * (3 + 2), "3 rates at seed 5, then seeds 6 and 7");
    let trained: Vec<_> = runs.iter().filter(|r| rundir::is_finished(&r.dir(&out))).collect();
    assert_eq!(trained.len(), 10);
    for r in &runs {
        let lr = r.config.train.lr;
        let selection = r.config.seed == 5;
        let should = selection || lr == 1e-2;
        assert_eq!(rundir::is_finished(&r.dir(&out)), should, "{}: trained = {should}", r.name);
        assert_eq!(r.dir(&out).exists(), should, "{}: no directory for a rate not chosen", r.name);
    }
    let choices: serde_json::Value = serde_json::from_str(&fs::read_to_string(out.join(tune::TUNE_FILE))?)?;
    let choices = choices.as_array().expect("a list of choices");
    assert_eq!(choices.len(), 2, "one choice per metric");
    for c in choices {
        assert_eq!(c["chosen"].as_f64(), Some(1e-2), "{c}");
        assert_eq!(c["seed"].as_i64(), Some(5));
        assert_eq!(c["losses"].as_array().map(Vec::len), Some(3));
    }
    assert_eq!(tune::decided_runs(&runs, &key, &out).len(), 10, "after: selection and confirmation");
    // Again: everything is finished, nothing trains.
    let again = tune::run_tuned_sweep(&runs, &key, &out, &opts)?;
    assert!(again.outcomes.iter().all(|(_, o)| *o == sweep::Outcome::Skipped));
    Ok(())
}

#[test]
fn a_tuned_key_that_is_also_a_grid_axis_or_the_seed_is_refused() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = common::write_file(tmp.path(), "c.txt", b"abc abc abc");
    fs::write(tmp.path().join("text.toml"), common::text_toml(&corpus, "dot", 2))?;
    let path = tmp.path().join("sweep.toml");
    for (tail, want) in [
        (
            "[grid]\n\"train.lr\" = [1e-3]\n[tune]\n\"train.lr\" = [1e-3, 1e-2]\n",
            "both tuned and a grid axis",
        ),
        ("[tune]\nseed = [1, 2]\n", "cannot tune `seed`"),
        ("[tune]\n\"train.lr\" = 1e-3\n", "must list its values"),
        ("[tune]\n\"train.lr\" = [1e-3]\n\"train.warmup_steps\" = [1]\n", "one tuned key"),
    ] {
        fs::write(&path, format!("[[base]]\nconfig = \"text.toml\"\n{tail}"))?;
        let err = format!("{:#}", sweep::load(&path).expect_err(want));
        assert!(err.contains(want), "{err}");
    }
    Ok(())
}
