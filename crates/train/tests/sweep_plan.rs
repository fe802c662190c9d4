//! Planning a sweep (nothing trains): `"all"` metrics, identical configs refused, names safe and
//! distinct, shards a stable partition.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use attnlab_model::MetricKind;
use attnlab_train::sweep::naming::MAX_NAME;
use attnlab_train::sweep::{self, PlannedRun, Shard};

/// A tiny recall base config (no corpus needed) and a sweep over it with `grid`; base `i` has
/// `seed = i + 1`.
fn plan(dir: &Path, bases: &[&str], grid: &str) -> anyhow::Result<Vec<PlannedRun>> {
    let cfg = "seed = 1\n[model]\nkind = \"gpt\"\nmetric = \"dot\"\nn_layer = 1\nn_head = 2\nn_embd = 16\n\
               [task]\nkind = \"recall\"\nvocab_size = 16\nseq_len = 16\nn_pairs = 2\n\
               [train]\nsteps = 10\nbatch_size = 4\nlr = 0.001\n";
    fs::write(dir.join("recall.toml"), cfg)?;
    let mut text = String::new();
    for (i, b) in bases.iter().enumerate() {
        text.push_str(&format!(
            "[[base]]\nconfig = \"recall.toml\"\nname = \"{b}\"\nset = {{ \"train.steps\" = {} }}\n",
            10 + i
        ));
    }
    text.push_str(grid);
    let path = dir.join("sweep.toml");
    fs::write(&path, text)?;
    Ok(sweep::load(&path)?.1)
}

#[test]
fn metric_all_lists_every_metric() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let runs = plan(tmp.path(), &["r"], "[grid]\n\"model.metric\" = \"all\"\n")?;
    let metrics: Vec<String> = runs.iter().map(|r| r.config.model.metric().name().to_string()).collect();
    let all: Vec<String> = MetricKind::ALL.iter().map(|m| m.name().to_string()).collect();
    assert_eq!(metrics, all);
    let err = plan(tmp.path(), &["r"], "[grid]\n\"model.metric\" = \"most\"\n").expect_err("not all");
    assert!(format!("{err:#}").contains("\"all\""), "{err:#}");
    Ok(())
}

#[test]
fn identical_configs_are_refused_by_name() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let err = plan(
        tmp.path(),
        &["r"],
        "[grid]\n\"model.metric\" = [\"dot\", \"idw\", \"neglog\"]\nseed = [1, 2]\n",
    )
    .expect_err("idw and neglog are one metric");
    let msg = format!("{err:#}");
    assert!(msg.contains("r_metric-idw_seed-1") && msg.contains("r_metric-neglog_seed-1"), "{msg}");
    assert!(msg.contains("identical configurations"), "{msg}");
    Ok(())
}

#[test]
fn names_are_short_safe_and_distinct() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    // `a/b` and `a_b` sanitise to the same name; the long base name needs shortening.
    let long = "b".repeat(150);
    let runs = plan(tmp.path(), &["x", &long], "[grid]\n\"task.n_pairs\" = [2, 3]\n")?;
    assert!(runs.iter().all(|r| r.name.len() <= MAX_NAME && !r.name.contains('/')), "{runs:?}");
    let long_names: Vec<&str> = runs.iter().filter(|r| r.base == long).map(|r| r.name.as_str()).collect();
    assert_eq!(long_names.len(), 2);
    assert_ne!(long_names[0], long_names[1], "shortened names keep a hash of the full values");
    let colliding = plan(tmp.path(), &["a/b", "a_b"], "")?;
    let names: Vec<&str> = colliding.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0].to_lowercase(), names[1].to_lowercase(), "{names:?}");
    let cased = plan(tmp.path(), &["Run", "run"], "")?;
    assert_ne!(
        cased[0].name.to_lowercase(),
        cased[1].name.to_lowercase(),
        "names differing in case only collide on macOS"
    );
    Ok(())
}

#[test]
fn shards_partition_the_runs_whatever_the_grid_order() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let grid =
        "[grid]\n\"model.metric\" = [\"dot\", \"idw\", \"cosine\", \"rbf\"]\nseed = [1, 2, 3, 4, 5, 6]\n";
    let reordered =
        "[grid]\nseed = [3, 1, 2, 6, 5, 4]\n\"model.metric\" = [\"rbf\", \"cosine\", \"idw\", \"dot\"]\n";
    let a = plan(tmp.path(), &["p"], grid)?;
    let b = plan(tmp.path(), &["p"], reordered)?;
    assert_eq!(a.len(), 24);
    for n in 1..=5 {
        let assign = |runs: &[PlannedRun]| -> BTreeMap<String, Vec<usize>> {
            runs.iter()
                .map(|r| {
                    let shards = (1..=n).filter(|&i| Shard { index: i, count: n }.holds(&r.name)).collect();
                    (r.name.clone(), shards)
                })
                .collect()
        };
        let (sa, sb) = (assign(&a), assign(&b));
        assert!(sa.values().all(|s| s.len() == 1), "every run in exactly one of {n} shards");
        assert_eq!(sa, sb, "the same run lands in the same shard whatever the order");
        if n > 1 {
            let used: std::collections::BTreeSet<usize> = sa.values().map(|s| s[0]).collect();
            assert!(used.len() > 1, "24 runs spread over {n} shards: {sa:?}");
        }
    }
    for bad in ["0/2", "3/2", "1", "a/b", "1/0"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
    Ok(())
}

#[test]
fn a_base_grid_replaces_or_adds_axes_for_that_base_only() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let cfg = "seed = 1\n[model]\nkind = \"gpt\"\nmetric = \"dot\"\nn_layer = 1\nn_head = 2\nn_embd = 16\n\
               [task]\nkind = \"recall\"\nvocab_size = 16\nseq_len = 16\nn_pairs = 2\n\
               [train]\nsteps = 10\nbatch_size = 4\nlr = 0.001\n";
    fs::write(tmp.path().join("recall.toml"), cfg)?;
    let text = "[[base]]\nconfig = \"recall.toml\"\nname = \"slow\"\n\
                [[base]]\nconfig = \"recall.toml\"\nname = \"fast\"\n\
                grid = { \"train.lr\" = [0.01, 0.1, 1.0], \"task.n_pairs\" = [2, 3] }\n\
                [grid]\n\"train.lr\" = [0.0003, 0.001]\nseed = [1, 2]\n";
    let path = tmp.path().join("sweep.toml");
    fs::write(&path, text)?;
    let runs = sweep::load(&path)?.1;
    let lrs = |base: &str| {
        let mut v: Vec<f64> = runs.iter().filter(|r| r.base == base).map(|r| r.config.train.lr).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    assert_eq!(lrs("slow"), vec![0.0003, 0.001]);
    assert_eq!(lrs("fast"), vec![0.01, 0.1, 1.0]);
    assert_eq!(runs.iter().filter(|r| r.base == "slow").count(), 2 * 2);
    assert_eq!(runs.iter().filter(|r| r.base == "fast").count(), 3 * 2 * 2, "base axis added, seed kept");
    // A key in a base's `set` that is also a grid axis would be overridden silently: refused.
    let clash = text.replace("name = \"slow\"\n", "name = \"slow\"\nset = { \"train.lr\" = 0.5 }\n");
    fs::write(&path, clash)?;
    let err = format!("{:#}", sweep::load(&path).expect_err("set and grid name the same key"));
    assert!(err.contains("slow") && err.contains("train.lr") && err.contains("grid"), "{err}");
    Ok(())
}
