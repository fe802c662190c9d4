//! `attnlab sweep` through the binary, on tiny runs (1 layer, width 16, 10 steps): `--jobs`
//! gives the same results as one job (also for a small set regressor), a failed run is recorded
//! while the others finish, shards merge with `--report-only`, a killed job's claim is taken
//! over, Ctrl-C stops every job with a checkpoint, names stay file-system safe.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_attnlab"));
    c.env("RUST_LOG", "warn");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes `tiny.toml` (10 steps) and `sweep.toml` with `grid` into `dir`; returns the sweep file.
fn tiny_sweep(dir: &Path, grid: &str) -> PathBuf {
    let corpus = repo().join("data/smoke.txt");
    let tiny = format!(
        "name = \"tiny\"\nseed = 1\n[model]\nkind = \"gpt\"\nmetric = \"dot\"\nblock_size = 16\nn_layer = 1\nn_head = 2\nn_embd = 16\n\
         [task]\nkind = \"text\"\ncorpus = \"{}\"\ntokenizer = \"char\"\n\
         [train]\nsteps = 10\nbatch_size = 4\nlr = 3e-3\nwarmup_steps = 2\neval_interval = 5\neval_batches = 1\nckpt_interval = 5\nlog_interval = 5\n",
        corpus.display()
    );
    fs::write(dir.join("tiny.toml"), tiny).expect("write tiny.toml");
    let sweep = dir.join("sweep.toml");
    fs::write(&sweep, format!("[[base]]\nconfig = \"tiny.toml\"\n{grid}\n")).expect("write sweep.toml");
    sweep
}

fn sweep_cmd(sweep: &Path, out: &Path, extra: &[&str]) -> Output {
    bin().arg("sweep").arg(sweep).arg("--out").arg(out).args(extra).output().expect("run attnlab")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

fn run_names(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(out.join("runs"))
        .expect("runs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writes `scattered.toml`: a set regressor of width 32 (packed `q | k | v` of 96 channels) on
/// 8 sets of 64 + 8 points (576 rows, more than one 512-row block of the matrix kernels: the case
/// whose weights once depended on the thread count), 10 steps.
fn tiny_scattered(dir: &Path) {
    let cfg = "name = \"scat\"\nseed = 1\n[model]\nkind = \"set_regressor\"\nmetric = \"dot\"\ndim = 2\nn_layer = 1\nn_head = 2\nn_embd = 32\n\
               [task]\nkind = \"scattered\"\ndim = 2\nn_context = 64\nn_query = 8\nval_functions = 4\n\
               [train]\nsteps = 10\nbatch_size = 8\nlr = 2e-3\nwarmup_steps = 2\neval_interval = 5\neval_batches = 1\nckpt_interval = 5\nlog_interval = 5\n";
    fs::write(dir.join("scattered.toml"), cfg).expect("write scattered.toml");
}

#[test]
fn jobs_give_the_same_losses_and_weights_as_one_job() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_scattered(tmp.path());
    let grid =
        "[[base]]\nconfig = \"scattered.toml\"\n[grid]\n\"model.metric\" = [\"dot\", \"idw\"]\nseed = [1, 2]";
    let sweep = tiny_sweep(tmp.path(), grid);
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    // Two threads in all: one job of 2 threads against two jobs of 1, on any machine.
    let sweep_threads = |out: &Path, jobs: &str| {
        bin()
            .args(["--threads", "2", "sweep"])
            .arg(&sweep)
            .arg("--out")
            .arg(out)
            .args(["--jobs", jobs])
            .output()
    };
    let stdout = ok(&sweep_threads(&one, "1").expect("run attnlab"));
    assert!(stdout.contains("1 job(s) x 2 thread(s)"), "{stdout}");
    let stdout = ok(&sweep_threads(&two, "2").expect("run attnlab"));
    assert!(
        stdout.contains("2 job(s) x 1 thread(s)") && stdout.contains("MiB (sum of the jobs)"),
        "{stdout}"
    );
    let names = run_names(&one);
    assert_eq!(names.len(), 8);
    assert_eq!(names.iter().filter(|n| n.starts_with("scat")).count(), 4, "{names:?}");
    assert_eq!(names, run_names(&two));
    for name in &names {
        let (a, b) = (one.join("runs").join(name), two.join("runs").join(name));
        let (sa, sb) = (json(&a.join("summary.json")), json(&b.join("summary.json")));
        assert_eq!(sa["steps"], 10);
        for key in ["final_train_loss", "final_val_loss", "best_val_loss"] {
            assert_eq!(sa[key], sb[key], "{name}: {key}");
        }
        for ckpt in ["last", "best"] {
            let wa = fs::read(a.join(ckpt).join("model.safetensors")).expect("weights");
            let wb = fs::read(b.join(ckpt).join("model.safetensors")).expect("weights");
            assert!(wa == wb, "{name}/{ckpt}: weights differ between --jobs 1 and --jobs 2");
        }
    }
    assert_eq!(json(&two.join("report/report.json"))["n_runs"], 8);
}

#[test]
fn a_diverging_run_is_recorded_and_the_others_finish() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = tiny_sweep(
        tmp.path(),
        "set = { \"train.warmup_steps\" = 0, \"train.min_lr\" = 0.0 }\n[grid]\n\"train.lr\" = [3e-3, 1e8, 1e-3]",
    );
    let out = tmp.path().join("sw");
    for attempt in 0..2 {
        let res = sweep_cmd(&sweep, &out, &["--jobs", "2"]);
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "attempt {attempt}: a failed run must make the sweep fail");
        assert!(stderr.contains("tiny_lr-100000000_0") && stderr.contains("diverged at step"), "{stderr}");
        let failure = json(&out.join("runs/tiny_lr-100000000_0/failure.json"));
        assert_eq!(failure["diverged"], true, "{failure}");
        assert!(failure["step"].as_u64().expect("step") < 10, "{failure}");
        for ok_run in ["tiny_lr-0_003", "tiny_lr-0_001"] {
            assert_eq!(json(&out.join("runs").join(ok_run).join("summary.json"))["steps"], 10, "{ok_run}");
        }
        let md = fs::read_to_string(out.join("report/report.md")).expect("report.md");
        assert!(
            md.contains("## Runs that did not finish") && md.contains("| tiny_lr-100000000_0 | diverged |"),
            "{md}"
        );
        let report = json(&out.join("report/report.json"));
        assert_eq!(report["n_runs"], 2);
        assert_eq!(report["unfinished"][0]["state"], "diverged");
        // The stopped run still counts in the learning-rate range: 1e8 diverged, 3e-3 is the
        // largest stable rate.
        let range = &report["groups"][0]["lr_ranges"][0];
        assert_eq!(range["largest_stable"], 3e-3, "{range}");
        let rates = range["rates"].as_array().expect("rates");
        assert!(rates.iter().any(|r| r[0] == 1e8 && r[1] == 0 && r[2] == 1), "{range}");
    }
}

#[test]
fn shards_train_each_run_once_and_report_only_merges_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = tiny_sweep(tmp.path(), "[grid]\n\"model.metric\" = [\"dot\", \"idw\"]\nseed = [1, 2, 3]");
    let out = tmp.path().join("sw");
    let all = ok(&sweep_cmd(&sweep, &out, &["--dry-run"]));
    let mut listed: Vec<&str> = Vec::new();
    let shard1 = ok(&sweep_cmd(&sweep, &out, &["--dry-run", "--shard", "1/2"]));
    let shard2 = ok(&sweep_cmd(&sweep, &out, &["--dry-run", "--shard", "2/2"]));
    listed.extend(shard1.lines().chain(shard2.lines()));
    listed.sort();
    let mut expected: Vec<&str> = all.lines().collect();
    expected.sort();
    assert_eq!(listed, expected, "every run in exactly one shard");
    ok(&sweep_cmd(&sweep, &out, &["--shard", "1/2"]));
    assert!(!out.join("report").exists(), "a shard writes no report");
    let plan = ok(&sweep_cmd(&sweep, &out, &["--plan", "--shard", "2/2"]));
    let pending = plan.lines().filter(|l| l.starts_with("pending ")).count();
    assert_eq!(pending, shard2.lines().count(), "{plan}");
    let marked = plan.lines().filter(|l| l.contains(" *2/2")).count();
    assert_eq!(marked, shard2.lines().count(), "{plan}");
    assert!(plan.ends_with("* marks the runs of shard 2/2\n"), "{plan}");
    ok(&sweep_cmd(&sweep, &out, &["--shard", "2/2"]));
    ok(&sweep_cmd(&sweep, &out, &["--report-only"]));
    assert_eq!(json(&out.join("report/report.json"))["n_runs"], 6);
    let plan = ok(&sweep_cmd(&sweep, &out, &["--plan"]));
    assert!(plan.contains("6 planned: 6 finished"), "{plan}");
}

#[test]
fn a_killed_jobs_claim_is_taken_over_and_the_run_resumed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = tiny_sweep(
        tmp.path(),
        "set = { \"train.steps\" = 400, \"train.ckpt_interval\" = 10, \"train.eval_interval\" = 200 }",
    );
    let out = tmp.path().join("sw");
    let run = out.join("runs/tiny");
    let mut parent = bin()
        .arg("sweep")
        .arg(&sweep)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while !run.join("last/model.safetensors").is_file() {
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint after 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let plan = ok(&sweep_cmd(&sweep, &out, &["--plan"]));
    assert!(plan.starts_with("STATE"), "a header first: {plan}");
    assert!(plan.lines().nth(1).is_some_and(|l| l.starts_with("running(locked)")), "{plan}");
    let holder = fs::read_to_string(run.join(".lock")).expect("lock file");
    let pid: u32 = holder.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("pid in lock file");
    for p in [pid, parent.id()] {
        let status = Command::new("kill").args(["-9", &p.to_string()]).status().expect("kill");
        assert!(status.success());
    }
    let _ = parent.wait();
    std::thread::sleep(Duration::from_millis(100));
    let plan = ok(&sweep_cmd(&sweep, &out, &["--plan"]));
    assert!(plan.lines().nth(1).is_some_and(|l| l.starts_with("pending(resumable)")), "{plan}");
    let stdout = ok(&sweep_cmd(&sweep, &out, &[]));
    assert!(stdout.contains("1 resumed"), "{stdout}");
    assert_eq!(json(&run.join("summary.json"))["steps"], 400);
    let log = fs::read_to_string(out.join("logs/tiny.log")).expect("job log");
    assert!(log.contains("taking over the stale claim of pid"), "{log}");
}

#[test]
fn long_and_colliding_names_are_made_safe_before_training() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let deep = tmp.path().join("x".repeat(110)).join("y".repeat(110)).join("z".repeat(30));
    fs::create_dir_all(&deep).expect("mkdir");
    let long = deep.join("corpus.txt");
    fs::copy(repo().join("data/smoke.txt"), &long).expect("copy corpus");
    let short = tmp.path().join("small.txt");
    fs::copy(repo().join("data/smoke.txt"), &short).expect("copy corpus");
    let grid = format!("[grid]\n\"task.corpus\" = [\"{}\", \"{}\"]", short.display(), long.display());
    let sweep = tiny_sweep(tmp.path(), &grid);
    let out = tmp.path().join("sw");
    let listing = ok(&sweep_cmd(&sweep, &out, &["--dry-run"]));
    let names: Vec<String> = listing
        .lines()
        .map(|l| Path::new(l).file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| n.len() <= 96), "{names:?}");
    ok(&sweep_cmd(&sweep, &out, &[]));
    let hashed = names.iter().find(|n| n.len() > 80).expect("the long name is shortened");
    let planned = json(&out.join("runs").join(hashed).join("sweep_run.json"));
    assert_eq!(planned["grid"][0][1], long.display().to_string(), "full value kept");
}

#[test]
fn sweep_out_refuses_a_directory_holding_another_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = tiny_sweep(tmp.path(), "");
    let run = tmp.path().join("sw");
    ok(&sweep_cmd(&sweep, &run, &[]));
    let inside = run.join("runs/tiny");
    let res = sweep_cmd(&sweep, &inside.join("more"), &[]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success() && stderr.contains("is inside the run or checkpoint"), "{stderr}");
    assert!(!inside.join("more").exists());
}

#[test]
fn ctrl_c_stops_every_job_with_a_checkpoint_and_leaves_the_sweep_resumable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = tiny_sweep(
        tmp.path(),
        "set = { \"train.steps\" = 100000, \"train.ckpt_interval\" = 100000, \"train.eval_interval\" = 100000 }\n\
         [grid]\nseed = [1, 2, 3]",
    );
    let out = tmp.path().join("sw");
    let mut parent = bin()
        .arg("sweep")
        .arg(&sweep)
        .args(["--jobs", "2", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Both jobs training: each has logged steps.
    let logged = |seed: u32| {
        let metrics = out.join(format!("runs/tiny_seed-{seed}/metrics.jsonl"));
        fs::metadata(metrics).map_or(0, |m| m.len()) > 500
    };
    let start = Instant::now();
    while !(logged(1) && logged(2)) {
        assert!(start.elapsed() < Duration::from_secs(60), "the jobs did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill").args(["-INT", &parent.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = parent.try_wait().expect("wait") {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the sweep did not stop within 60 s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut parent.stderr.take().expect("stderr"), &mut stderr).expect("read");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("2 run(s) saved a checkpoint") && stderr.contains("again to resume"), "{stderr}");
    for seed in [1, 2] {
        let state = json(&out.join(format!("runs/tiny_seed-{seed}/last/trainer_state.json")));
        assert!(state["step"].as_u64().is_some_and(|s| s > 0), "seed {seed}: {state}");
    }
    // Every job has exited (no claim is held), the two started runs resume, the third was never started.
    let plan = ok(&sweep_cmd(&sweep, &out, &["--plan"]));
    assert_eq!(plan.lines().filter(|l| l.starts_with("pending(resumable)")).count(), 2, "{plan}");
    assert_eq!(plan.lines().filter(|l| l.starts_with("pending ")).count(), 1, "{plan}");
    assert!(!plan.lines().any(|l| l.starts_with("running(locked)")), "{plan}");
}
