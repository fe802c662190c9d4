//! Issue 25 through the binary, each case of `../shared/cases/checkpoints/` with its own small
//! inputs: a checkpoint that cannot be read is named as such by every reader, never called
//! diverged (49); every file of a run gets the umask's mode (48); resumed logs are the
//! uninterrupted run's bytes (13); the safetensors header says `{"format": "pt"}` (50); `eval`
//! of a checkpoint directory names its run (52); planned runs not started are listed apart (26);
//! finished runs trained on other inputs are named and not reused (34); a killed sweep's jobs
//! die with it (54); the Slurm script takes its shard count from the sweep (46, in `slurm.rs`).

use crate::common::{bin, failed, ok, repo, s};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `tiny.toml` of the cases (1 layer, width 16, block 16, 10 steps) on `corpus`.
fn tiny(dir: &Path, corpus: &Path) -> PathBuf {
    let body = format!(
        "name = \"tiny\"\nseed = 1\n[model]\nkind = \"gpt\"\nmetric = \"dot\"\nblock_size = 16\nn_layer = 1\nn_head = 2\nn_embd = 16\n\
         [task]\nkind = \"text\"\ncorpus = \"{}\"\ntokenizer = \"char\"\n\
         [train]\nsteps = 10\nbatch_size = 4\nlr = 3e-3\nwarmup_steps = 2\neval_interval = 5\neval_batches = 1\nckpt_interval = 5\nlog_interval = 5\n",
        corpus.display()
    );
    let path = dir.join("tiny.toml");
    fs::write(&path, body).expect("tiny.toml");
    path
}

fn smoke() -> PathBuf {
    repo().join("data/smoke.txt")
}

fn train(config: &Path, out: &Path, extra: &[&str]) {
    ok(&bin().args(["train", &s(config), "--out", &s(out)]).args(extra).output().expect("train"));
}

/// A sweep file over seeds `seeds` of `tiny.toml` in `dir`, into `dir/sw`.
fn seed_sweep(dir: &Path, seeds: &str, set: &str) -> PathBuf {
    let path = dir.join("s.toml");
    fs::write(
        &path,
        format!("out = \"sw\"\n[[base]]\nconfig = \"tiny.toml\"\n{set}[grid]\nseed = [{seeds}]\n"),
    )
    .expect("sweep file");
    path
}

fn sweep(dir: &Path, file: &Path, extra: &[&str]) -> Output {
    bin().current_dir(dir).arg("sweep").arg(file).args(extra).output().expect("sweep")
}

/// A way to break a checkpoint: (name, what the readers must say, how).
type Damage = (&'static str, &'static str, fn(&Path));

/// Case 49 and its kind: a checkpoint cut short, unreadable (an I/O error), or not matching
/// its config is named as such — with the file and the reason — by `eval`, `sample`,
/// `train --resume` and `sweep --report-only`, never as divergence; only non-finite weights are.
#[test]
fn an_unreadable_checkpoint_is_named_by_every_reader_and_never_called_diverged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tiny(tmp.path(), &smoke());
    let good = tmp.path().join("good");
    train(&config, &good, &[]);
    let weights = |run: &Path| run.join("last/model.safetensors");
    let damage: [Damage; 3] = [
        ("truncated", "truncated or corrupt", |p| {
            let bytes = fs::read(p).expect("weights");
            fs::write(p, &bytes[..bytes.len() / 2]).expect("cut");
        }),
        // An I/O error a root user also gets (a permission error does not stop root).
        ("io", "could not be read: Is a directory", |p| {
            fs::remove_file(p).expect("rm");
            fs::create_dir(p).expect("dir in its place");
        }),
        ("mismatch", "does not match its config", |p| {
            let cfg = p.with_file_name("config.json");
            let text = fs::read_to_string(&cfg).expect("config");
            fs::write(&cfg, text.replace("\"n_embd\": 16", "\"n_embd\": 8")).expect("edit");
        }),
    ];
    for (name, says, break_it) in damage {
        let run = tmp.path().join(name);
        train(&config, &run, &["--set", "train.steps=5"]);
        break_it(&weights(&run));
        // eval: the good run is reported, the broken one listed apart as unreadable.
        let rep = tmp.path().join(format!("rep_{name}"));
        let out = bin().args(["eval", &s(&good), &s(&run), "--out", &s(&rep)]).output().expect("eval");
        ok(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("could not be read") && err.contains(says), "{name}: {err}");
        let md = fs::read_to_string(rep.join("report.md")).expect("report.md");
        assert!(md.contains("## Runs that could not be read") && md.contains(says), "{name}: {md}");
        assert!(!md.contains("NaN or infinite"), "{name}: a file problem is not a divergence: {md}");
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(rep.join("report.json")).expect("json")).expect("json");
        assert_eq!(json["n_runs"], 1, "{name}");
        assert_eq!(json["unreadable"].as_array().map(Vec::len), Some(1), "{name}");
        // sample and resume name the same fault.
        let out = bin().args(["sample", &s(&run), "--tokens", "3"]).output().expect("sample");
        let err = failed(&out);
        assert!(err.contains(says) && !err.contains("diverged"), "{name}: {err}");
        let out = bin().args(["train", &s(&config), "--resume", &s(&run), "--set", "train.steps=5"]).output();
        let out = out.expect("resume");
        let err = failed(&out);
        assert!(!err.contains("diverged"), "{name}: {err}");
        // (A resume refuses an edited model config before it reads the weights.)
        assert!(name == "mismatch" || err.contains(says), "{name}: {err}");
    }
    // Non-finite weights are the one kind called divergence.
    let nan = tmp.path().join("nan");
    train(&config, &nan, &[]);
    let mut bytes = fs::read(weights(&nan)).expect("weights");
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    fs::write(weights(&nan), bytes).expect("poison");
    let out = bin().args(["sample", &s(&nan), "--tokens", "3"]).output().expect("sample");
    assert!(failed(&out).contains("diverged"));
    // sweep --report-only: a finished run whose checkpoint was cut short is not finished.
    let dir = tmp.path();
    let file = seed_sweep(dir, "1, 2", "");
    ok(&sweep(dir, &file, &[]));
    let cut = dir.join("sw/runs/tiny_seed-2/last/model.safetensors");
    let bytes = fs::read(&cut).expect("weights");
    fs::write(&cut, &bytes[..9000.min(bytes.len() / 2)]).expect("cut");
    let best = dir.join("sw/runs/tiny_seed-2/best");
    fs::remove_dir_all(&best).expect("rm best");
    let out = sweep(dir, &file, &["--report-only"]);
    let err = failed(&out);
    assert!(err.contains("tiny_seed-2") && err.contains("could not be read"), "{err}");
    assert!(err.contains("truncated or corrupt") && !err.contains("diverged"), "{err}");
    let md = fs::read_to_string(dir.join("sw/report/report.md")).expect("report.md");
    assert!(md.contains("## Runs that could not be read") && md.contains("tiny_seed-2"), "{md}");
}

/// Every file under `dir` (recursively) with its mode bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        let meta = fs::symlink_metadata(&path).expect("meta");
        if meta.is_dir() {
            out.extend(modes(&path));
        } else {
            out.push((path, meta.permissions().mode() & 0o777));
        }
    }
    out
}

/// Case 48: under umask 022 every file of a run — `model.safetensors` included — is 0644, and
/// under 077 every one is 0600: training, resuming, a sweep (its plan, logs and report), eval.
#[test]
fn every_file_of_a_run_gets_the_mode_the_umask_gives() {
    for (umask, mode) in [("022", 0o644), ("077", 0o600)] {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path();
        tiny(dir, &smoke());
        seed_sweep(dir, "1", "");
        let script = format!(
            "umask {umask} && \"$0\" train tiny.toml --out run --set train.steps=5 \
             && \"$0\" train tiny.toml --resume run --set train.steps=10 --set train.lr_decay_steps=5 --allow-changes \
             && \"$0\" sweep s.toml --jobs 1 && \"$0\" eval run --out rep"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .arg(env!("CARGO_BIN_EXE_attnlab"))
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .output()
            .expect("sh");
        ok(&out);
        let files: Vec<(PathBuf, u32)> =
            ["run", "sw", "rep"].iter().flat_map(|d| modes(&dir.join(d))).collect();
        assert!(files.iter().any(|(p, _)| p.ends_with("last/model.safetensors")), "{files:?}");
        assert!(files.iter().any(|(p, _)| p.ends_with("last/optimizer.safetensors")), "{files:?}");
        let wrong: Vec<_> = files.iter().filter(|(_, m)| *m != mode).collect();
        assert!(wrong.is_empty(), "umask {umask}: expected {mode:o}, got {wrong:?}");
    }
}

/// The metrics file with the timing fields (`tokens_per_s`, `wall_s`) cut out of every line,
/// as text: nothing is parsed, so a changed last digit shows.
fn without_timing(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("metrics");
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        for key in ["\"tokens_per_s\":", "\"wall_s\":"] {
            if let Some(at) = line.find(key) {
                let rest = &line[at + key.len()..];
                let end = rest.find([',', '}']).unwrap_or(rest.len());
                line = format!("{}{}", &line[..at], &rest[end..]);
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Waits until `run/metrics.jsonl` holds at least `lines` lines (or the process ended).
fn wait_for_lines(run: &Path, lines: usize, child: &mut std::process::Child) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        let n = fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count());
        if n >= lines || child.try_wait().expect("wait").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Case 13: after SIGINT (exit 130), SIGTERM (exit 143) or kill -9 at several moments and
/// `--resume`, the run's
/// `metrics.jsonl` is the uninterrupted run's, byte for byte, timing fields removed (lines kept
/// by the resume are copied as text; the ones after it print floats as the straight run does).
#[test]
fn a_resumed_log_is_the_uninterrupted_logs_bytes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tiny(tmp.path(), &smoke());
    let set = ["--set", "train.steps=400", "--set", "train.ckpt_interval=7", "--set", "train.log_interval=1"];
    let straight = tmp.path().join("straight");
    train(&config, &straight, &set);
    let reference = without_timing(&straight.join("metrics.jsonl"));
    let mut interrupted = 0;
    for (i, (signal, at)) in
        [("INT", 30), ("TERM", 90), ("KILL", 45), ("KILL", 160), ("TERM", 250)].into_iter().enumerate()
    {
        let run = tmp.path().join(format!("r{i}"));
        let mut child =
            bin().args(["train", &s(&config), "--out", &s(&run)]).args(set).spawn().expect("spawn");
        wait_for_lines(&run, at, &mut child);
        let killed = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        let status = child.wait().expect("wait");
        if killed.is_ok_and(|k| k.success()) && !status.success() {
            interrupted += 1;
            // Stopped by a signal it handles: 128 + the signal, after saving.
            let expected = match signal {
                "INT" => Some(130),
                "TERM" => Some(143),
                _ => None,
            };
            assert_eq!(status.code(), expected, "{signal}: exit status");
        }
        let resumed = bin().args(["train", &s(&config), "--resume", &s(&run)]).args(set).output();
        ok(&resumed.expect("resume"));
        assert_eq!(
            fs::read(run.join("last/model.safetensors")).expect("weights"),
            fs::read(straight.join("last/model.safetensors")).expect("weights"),
            "{signal} at line {at}: other weights"
        );
        let got = without_timing(&run.join("metrics.jsonl"));
        let differ = got.lines().zip(reference.lines()).filter(|(a, b)| a != b).count();
        assert!(got == reference, "{signal} at line {at}: {differ} lines differ as text");
    }
    assert!(interrupted >= 4, "only {interrupted} of 5 runs were interrupted mid-way");
}

/// Case 50: every safetensors file attnlab writes has `{"format": "pt"}` in its header.
#[test]
fn safetensors_headers_say_format_pt() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tiny(tmp.path(), &smoke());
    let run = tmp.path().join("run");
    train(&config, &run, &[]);
    for file in ["last/model.safetensors", "last/optimizer.safetensors", "best/model.safetensors"] {
        let bytes = fs::read(run.join(file)).expect("file");
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
        assert_eq!(header["__metadata__"]["format"], "pt", "{file}: {header}");
    }
}

/// Case 52: `eval RUN/last` says it is a checkpoint directory and names the run to pass.
#[test]
fn eval_of_a_checkpoint_directory_names_its_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tiny(tmp.path(), &smoke());
    let run = tmp.path().join("run");
    train(&config, &run, &[]);
    let out = bin().args(["eval", &s(&run.join("last")), "--out", &s(&tmp.path().join("rep"))]).output();
    let err = failed(&out.expect("eval"));
    assert!(err.contains("is a checkpoint directory"), "{err}");
    assert!(err.contains(&format!("pass its run directory {}", run.display())), "{err}");
}

/// Case 26: a planned run that has not started (only `sweep_run.json`) is listed apart by
/// `eval`, beside the report of the finished ones.
#[test]
fn eval_lists_a_planned_run_that_has_not_started_apart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    tiny(dir, &smoke());
    let file = seed_sweep(dir, "1, 2", "");
    ok(&sweep(dir, &file, &[]));
    let planned = dir.join("sw/runs/tiny_seed-3");
    fs::create_dir(&planned).expect("mkdir");
    fs::copy(dir.join("sw/runs/tiny_seed-2/sweep_run.json"), planned.join("sweep_run.json")).expect("plan");
    let runs = ["tiny_seed-1", "tiny_seed-2", "tiny_seed-3"].map(|r| s(&dir.join("sw/runs").join(r)));
    let rep = dir.join("rep");
    ok(&bin().arg("eval").args(&runs).arg("--out").arg(&rep).output().expect("eval"));
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(rep.join("report.json")).expect("json")).expect("json");
    assert_eq!(json["n_runs"], 2);
    assert_eq!(json["not_started"], serde_json::json!([runs[2]]));
}

/// Case 34: finished runs trained on a corpus that has since changed are named and not reused;
/// `--keep-stale` keeps them.
#[test]
fn a_sweep_names_finished_runs_trained_on_other_inputs_and_does_not_reuse_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let corpus = dir.join("small.txt");
    let text = fs::read_to_string(smoke()).expect("smoke");
    fs::write(&corpus, &text).expect("corpus");
    tiny(dir, &corpus);
    let file = seed_sweep(dir, "1, 2", "");
    ok(&sweep(dir, &file, &[]));
    fs::write(&corpus, text.chars().rev().collect::<String>()).expect("edit the corpus");
    let file = seed_sweep(dir, "1, 2, 3", "");
    let err = failed(&sweep(dir, &file, &[]));
    assert!(err.contains("2 finished run(s) were trained on other inputs"), "{err}");
    assert!(
        err.contains("tiny_seed-1") && err.contains("tiny_seed-2") && err.contains("corpus_sha256"),
        "{err}"
    );
    assert!(err.contains("--keep-stale"), "{err}");
    assert!(!dir.join("sw/runs/tiny_seed-3").exists(), "nothing trains before the refusal");
    ok(&sweep(dir, &file, &["--keep-stale"]));
    assert!(dir.join("sw/runs/tiny_seed-3/summary.json").is_file());
}

/// The children of `pid`: the processes whose parent it is (Linux `/proc/*/stat`).
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let parent_of = |child: u32| -> Option<u32> {
        let stat = fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        // `pid (comm) state ppid ...`: comm may hold spaces, so read after the last ')'.
        stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not reaped by init yet) counts as gone.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|st| st.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

/// Case 54: `kill -9` of a sweep with `--jobs 2` leaves no orphan training: each job gets
/// SIGTERM from the kernel (parent-death signal), saves and stops, and its run resumes later.
#[test]
fn a_killed_sweeps_jobs_die_with_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    tiny(dir, &smoke());
    let file = seed_sweep(dir, "1, 2", "set = { \"train.steps\" = 20000, \"train.ckpt_interval\" = 50 }\n");
    let mut sweep = bin().current_dir(dir).args(["sweep", &s(&file), "--jobs", "2"]).spawn().expect("spawn");
    let t0 = Instant::now();
    let mut kids = Vec::new();
    while kids.len() < 2 && t0.elapsed() < Duration::from_secs(60) {
        kids = children(sweep.id());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(kids.len(), 2, "the sweep started two jobs");
    // Let both start training (a metrics line), then kill the sweep alone.
    let started = |run: &str| dir.join("sw/runs").join(run).join("metrics.jsonl").is_file();
    while !(started("tiny_seed-1") && started("tiny_seed-2")) && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    sweep.kill().expect("kill -9");
    sweep.wait().expect("reap");
    let t1 = Instant::now();
    while kids.iter().any(|&k| alive(k)) && t1.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let orphans: Vec<u32> = kids.iter().copied().filter(|&k| alive(k)).collect();
    for k in &orphans {
        let _ = Command::new("kill").arg("-9").arg(k.to_string()).status();
    }
    assert!(orphans.is_empty(), "jobs {orphans:?} outlived their sweep");
    let plan = bin().current_dir(dir).args(["sweep", &s(&file), "--plan"]).output().expect("plan");
    let text = ok(&plan);
    assert!(
        !text.lines().any(|l| l.starts_with("running(locked)")),
        "no lock is held after the sweep died: {text}"
    );
    assert!(text.contains("2 pending(resumable)"), "each job saved a checkpoint: {text}");
}

/// A run's saved config writes out the defaults its metric reads (`attn_scale` = 1/sqrt(8) for
/// `dot` with 2 heads of width 16, `power` for `neg_euclid`), and a config of an earlier
/// version without them still loads and resumes.
#[test]
fn saved_configs_write_out_defaults_and_older_ones_still_resume() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tiny(tmp.path(), &smoke());
    let dot = tmp.path().join("dot");
    train(&config, &dot, &["--set", "train.steps=5"]);
    let model = |run: &Path| -> serde_json::Value {
        let text = fs::read_to_string(run.join("last/config.json")).expect("config");
        serde_json::from_str::<serde_json::Value>(&text).expect("json")["model"].clone()
    };
    assert_eq!(model(&dot)["attn_scale"], serde_json::json!(1.0 / 8f64.sqrt()));
    let euclid = tmp.path().join("euclid");
    train(&config, &euclid, &["--set", "train.steps=2", "--set", "model.metric=neg_euclid"]);
    assert_eq!(model(&euclid)["power"], serde_json::json!(1.0));
    // An older run: the defaults unset in both copies of its config.
    for file in ["config.json", "last/config.json", "best/config.json"] {
        let path = dot.join(file);
        let mut v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("json");
        v["model"].as_object_mut().expect("model").remove("attn_scale");
        fs::write(&path, v.to_string()).expect("write");
    }
    ok(&bin().args(["sample", &s(&dot), "--tokens", "3"]).output().expect("sample"));
    let more = ["--set", "train.steps=10", "--set", "train.lr_decay_steps=5"];
    ok(&bin().args(["train", &s(&config), "--resume", &s(&dot)]).args(more).output().expect("resume"));
}
