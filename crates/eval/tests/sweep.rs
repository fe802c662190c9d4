//! A sweep (train crate, in-process) then its report (this crate) on the smoke sweep:
//! expansion, names, an interrupted run resumed, finished runs skipped, every report file
//! present; and sweep-file errors.

use std::fs;
use std::path::{Path, PathBuf};

use attnlab_train::sweep::jobs::{Executor, SweepOptions};
use attnlab_train::sweep::one::RetryPolicy;
use attnlab_train::sweep::{self, Outcome, PlannedRun, Shard, SweepFile};
use attnlab_train::{Interrupted, TrainOptions};
use candle_core::Device;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed smoke sweep with paths made absolute (tests run in the crate directory).
fn smoke_sweep() -> anyhow::Result<SweepFile> {
    let text = fs::read_to_string(repo().join("configs/sweeps/smoke.toml"))?;
    let mut sweep: SweepFile = toml::from_str(&text)?;
    for base in &mut sweep.base {
        base.config = repo().join(&base.config);
        if base.config.ends_with("smoke.toml") {
            let corpus = repo().join("data/smoke.txt").to_string_lossy().into_owned();
            base.set.insert("task.corpus".into(), toml::Value::String(corpus));
        }
    }
    Ok(sweep)
}

fn in_process(opts: &TrainOptions) -> SweepOptions {
    SweepOptions {
        executor: Executor::InProcess(opts.clone()),
        shard: Shard::ALL,
        retry: RetryPolicy::default(),
        keep_stale: false,
    }
}

/// Trains the sweep in this process, then writes the report of every run to `out/report`.
fn run_sweep(runs: &[PlannedRun], out: &Path, opts: &TrainOptions) -> anyhow::Result<Vec<Outcome>> {
    let result = sweep::run_sweep(runs, out, &in_process(opts))?;
    let dirs: Vec<PathBuf> = runs.iter().map(|r| r.dir(out)).collect();
    let options = attnlab_eval::ReportOptions { sweep_report: true, ..Default::default() };
    attnlab_eval::write_report_with(&dirs, &sweep::report_dir(out), &options)?;
    Ok(result.outcomes.into_iter().map(|(_, o)| o).collect())
}

#[test]
fn smoke_sweep_trains_resumes_skips_and_reports() -> anyhow::Result<()> {
    let runs = sweep::expand(&smoke_sweep()?, &repo())?;
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 8);
    assert_eq!(names[0], "smoke_metric-dot_seed-1");
    assert_eq!(names[7], "recall_tiny_metric-idw_seed-2");

    let tmp = tempfile::tempdir()?;
    let out = tmp.path();
    let mut opts = TrainOptions::new(&Device::Cpu);
    // Interrupt the first run half-way, as Ctrl-C would.
    opts.stop_at = Some(6);
    let err = run_sweep(&runs, out, &opts).expect_err("interrupted");
    assert!(err.chain().any(|e| e.downcast_ref::<Interrupted>().is_some()), "{err:#}");
    opts.stop_at = None;
    let outcomes = run_sweep(&runs, out, &opts)?;
    assert_eq!(outcomes[0], Outcome::Resumed);
    assert!(outcomes[1..].iter().all(|o| *o == Outcome::Trained), "{outcomes:?}");
    let again = run_sweep(&runs, out, &opts)?;
    assert!(again.iter().all(|o| *o == Outcome::Skipped), "{again:?}");

    let report = out.join("report");
    for f in ["report.md", "report.json"] {
        assert!(report.join(f).is_file(), "{f}");
    }
    for id in ["text", "recall"] {
        for stem in ["loss_step", "loss_wall", "geometry"] {
            for ext in ["png", "svg"] {
                let f = report.join(format!("{id}_{stem}.{ext}"));
                assert!(fs::metadata(&f).map(|m| m.len() > 1000).unwrap_or(false), "{} missing", f.display());
            }
        }
    }
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(report.join("report.json"))?)?;
    let groups = json["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2);
    for g in groups {
        let sgs = g["seed_groups"].as_array().expect("seed groups");
        assert_eq!(sgs.len(), 2, "dot and idw");
        assert!(sgs.iter().all(|s| s["runs"].as_array().map(Vec::len) == Some(2)));
        for r in g["runs"].as_array().expect("runs") {
            assert_eq!(r["numbers"]["steps"], 12.0);
            let inputs = r["geometry"]["inputs"].as_str().expect("geometry inputs");
            assert!(inputs.contains("validation sequences"), "{inputs}");
        }
    }

    // Editing the sweep (here: more steps for one base) must not silently reuse the old runs.
    let mut edited = smoke_sweep()?;
    edited.base[0].set.insert("train.steps".into(), toml::Value::Integer(14));
    let err = run_sweep(&sweep::expand(&edited, &repo())?, out, &opts).expect_err("stale runs");
    let msg = format!("{err:#}");
    assert!(msg.contains("different config") && msg.contains("smoke_metric-dot_seed-1"), "{msg}");
    Ok(())
}

#[test]
fn unknown_grid_key_and_bad_sweep_files_are_clear_errors() -> anyhow::Result<()> {
    let mut s = smoke_sweep()?;
    s.grid.insert("model.metrik".into(), toml::Value::Array(vec![toml::Value::String("dot".into())]));
    let err = format!("{:#}", sweep::expand(&s, &repo()).expect_err("unknown key"));
    assert!(err.contains("model.metrik") && err.contains("smoke"), "{err}");

    let mut s = smoke_sweep()?;
    s.grid.insert("seed".into(), toml::Value::Integer(3));
    let err = format!("{:#}", sweep::expand(&s, &repo()).expect_err("not a list"));
    assert!(err.contains("`seed` must list its values"), "{err}");

    let mut s = smoke_sweep()?;
    s.grid.insert("model.metric".into(), toml::Value::Array(vec![toml::Value::String("manhattan".into())]));
    let err = format!("{:#}", sweep::expand(&s, &repo()).expect_err("bad metric"));
    assert!(err.contains("manhattan"), "{err}");

    let tmp = tempfile::tempdir()?;
    let f = tmp.path().join("s.toml");
    fs::write(&f, "out = \"x\"\nbases = []\n")?;
    let err = format!("{:#}", sweep::load(&f).expect_err("unknown field"));
    assert!(err.contains("bases"), "{err}");
    fs::write(&f, "[[base]]\nconfig = \"nowhere.toml\"\n")?;
    let err = format!("{:#}", sweep::load(&f).expect_err("missing base"));
    assert!(err.contains("nowhere.toml"), "{err}");
    Ok(())
}

#[test]
fn prototype_and_scattered_runs_get_their_pictures() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let moons = tmp.path().join("moons.toml");
    fs::write(
        &moons,
        "seed = 1\n[model]\nkind = \"prototype\"\nmetric = \"idw\"\nn_protos = 4\nn_features = 2\nn_classes = 2\n\
         [task]\nkind = \"prototype\"\ndataset = \"moons\"\nnoise = 0.1\ntrain_per_class = 20\nval_per_class = 5\n\
         [train]\nsteps = 10\nbatch_size = 10\nlr = 0.01\nwarmup_steps = 0\neval_interval = 5\neval_batches = 1\nckpt_interval = 10\n",
    )?;
    let scattered = tmp.path().join("scattered.toml");
    fs::write(
        &scattered,
        "seed = 1\n[model]\nkind = \"set_regressor\"\nmetric = \"dot\"\ndim = 2\nn_layer = 1\nn_head = 2\nn_embd = 8\n\
         [task]\nkind = \"scattered\"\ndim = 2\nn_context = 10\nn_query = 4\nval_functions = 2\n\
         [train]\nsteps = 4\nbatch_size = 2\nlr = 0.003\nwarmup_steps = 1\neval_interval = 2\neval_batches = 1\nckpt_interval = 4\n",
    )?;
    let sweep_file = tmp.path().join("sweep.toml");
    fs::write(
        &sweep_file,
        "[[base]]\nconfig = \"moons.toml\"\n[[base]]\nconfig = \"scattered.toml\"\n[grid]\n\"model.metric\" = [\"dot\", \"idw\"]\n",
    )?;
    let (_, runs) = sweep::load(&sweep_file)?;
    assert_eq!(runs.len(), 4);
    let out = tmp.path().join("out");
    run_sweep(&runs, &out, &TrainOptions::new(&Device::Cpu))?;
    let report = out.join("report");
    for f in ["prototype_prototypes", "scattered_franke_errors", "prototype_loss_step", "scattered_loss_wall"]
    {
        for ext in ["png", "svg"] {
            let p = report.join(format!("{f}.{ext}"));
            assert!(fs::metadata(&p).map(|m| m.len() > 1000).unwrap_or(false), "{} missing", p.display());
        }
    }
    let md = fs::read_to_string(report.join("report.md"))?;
    assert!(md.contains("key→data median") && md.contains("Franke rms") && md.contains("shepard_p2"), "{md}");
    Ok(())
}

/// A tuned sweep's report (issue 23): seed groups at each configuration's chosen rate only, each
/// compared with `dot` at dot's chosen rate, and every rate's first-seed loss in the selection
/// curves, the table and the picture. 1e-2 is the one rate that learns in 12 steps.
#[test]
fn a_tuned_sweeps_report_compares_each_configuration_at_its_chosen_rate() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = repo().join("configs/smoke.toml");
    let corpus = repo().join("data/smoke.txt");
    let text = format!(
        "[[base]]\nconfig = {:?}\nname = \"t\"\nset = {{ \"task.corpus\" = {:?}, \"train.steps\" = 12, \
         \"train.eval_interval\" = 6, \"train.ckpt_interval\" = 12 }}\n\
         [grid]\n\"model.metric\" = [\"dot\", \"idw\"]\nseed = [5, 6]\n\
         [tune]\n\"train.lr\" = [1e-6, 1e-2]\n",
        config.display().to_string(),
        corpus.display().to_string()
    );
    let path = tmp.path().join("sweep.toml");
    fs::write(&path, text)?;
    let (file, runs) = sweep::load(&path)?;
    let key = sweep::tune::tuned_key(&file)?.expect("a tuned key");
    let out = tmp.path().join("out");
    let opts = TrainOptions::new(&Device::Cpu);
    sweep::tune::run_tuned_sweep(&runs, &key, &out, &in_process(&opts))?;
    let choices = sweep::tune::choices(&runs, &key, &out);
    let dirs = |rs: Vec<&PlannedRun>| -> Vec<PathBuf> { rs.iter().map(|r| r.dir(&out)).collect() };
    let tuned = attnlab_eval::tuning::Tuned {
        key: key.clone(),
        selection: dirs(sweep::tune::selection_runs(&runs, &key)),
        chosen: dirs(sweep::tune::chosen_runs(&runs, &key, &choices)),
    };
    assert_eq!(tuned.selection.len(), 4);
    assert_eq!(tuned.chosen.len(), 4, "2 metrics x 2 seeds at the chosen rate");
    let decided: Vec<PathBuf> =
        sweep::tune::decided_runs(&runs, &key, &out).iter().map(|r| r.dir(&out)).collect();
    assert_eq!(decided.len(), 6);
    let options = attnlab_eval::ReportOptions { tuned: Some(tuned), ..Default::default() };
    let report_dir = tmp.path().join("report");
    let report = attnlab_eval::write_report_with(&decided, &report_dir, &options)?;
    let g = &report.groups[0];
    assert_eq!(g.seed_groups.len(), 2, "only the chosen rate's seed groups: {:?}", g.seed_groups);
    for sg in &g.seed_groups {
        assert_eq!(sg.runs.len(), 2, "{}: both seeds", sg.label);
        assert!(sg.label.contains("lr=0.01"), "{}", sg.label);
    }
    let loss = g.comparisons.iter().find(|t| t.key == "final_val_loss").expect("a loss table");
    assert_eq!(loss.rows.len(), 1, "idw against dot");
    assert_eq!(loss.rows[0].n, 2);
    assert_eq!(loss.rows[0].n_base, 2);
    assert_eq!(g.tuning.len(), 2, "a selection curve per metric");
    for c in &g.tuning {
        assert_eq!(c.chosen, Some(1e-2), "{}", c.label);
        assert_eq!(c.points.len(), 2);
        let at = |v: f64| c.points.iter().find(|p| p.value == v).and_then(|p| p.loss).expect("a loss");
        assert!(at(1e-2) < at(1e-6), "{}: the chosen rate has the lower first-seed loss", c.label);
        assert!(!c.label.contains("lr="), "{}", c.label);
    }
    // Without the tuning, the 1e-6 runs would be seed groups of their own.
    let md = fs::read_to_string(report_dir.join("report.md"))?;
    assert!(md.contains("### Tuned `train.lr`"), "the tuning table");
    assert!(report_dir.join("text_tuning.png").exists(), "the tuning picture: {:?}", g.figures);
    let plain = attnlab_eval::write_report_with(&decided, &tmp.path().join("plain"), &Default::default())?;
    assert_eq!(plain.groups[0].seed_groups.len(), 4);
    Ok(())
}
