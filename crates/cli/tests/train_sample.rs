//! End to end through the binary: train the smoke config, stop it with Ctrl-C (SIGINT) and
//! resume it, sample from it; bad input exits non-zero with a message.

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

fn smoke_args(out: &Path) -> Vec<String> {
    let corpus = repo().join("data/smoke.txt");
    vec![
        "train".into(),
        repo().join("configs/smoke.toml").to_string_lossy().into_owned(),
        "--set".into(),
        format!("task.corpus={}", corpus.display()),
        "--out".into(),
        out.to_string_lossy().into_owned(),
    ]
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn summary_steps(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
    v["steps"].as_u64().expect("steps")
}

#[test]
fn train_resume_and_sample() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("smoke");
    let mut args = smoke_args(&run);
    args.extend(["--set".into(), "train.steps=20".into()]);
    ok(&bin().args(&args).output().expect("run attnlab"));
    assert_eq!(summary_steps(&run), 20);
    for f in [
        "config.json",
        "metrics.jsonl",
        "last/model.safetensors",
        "last/optimizer.safetensors",
        "last/trainer_state.json",
        "last/tokenizer.json",
        "best/model.safetensors",
        "best/tokenizer.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }

    // Resume with more steps: continues from step 20, keeping the schedule's length (the past).
    let resume = [
        "train",
        "--resume",
        &run.to_string_lossy(),
        "--set",
        "train.steps=30",
        "--set",
        "train.lr_decay_steps=20",
    ];
    ok(&bin().args(resume).output().expect("resume"));
    assert_eq!(summary_steps(&run), 30);

    let sample = ["sample", &run.to_string_lossy(), "--prompt", "The ", "--tokens", "40", "--seed", "3"];
    let text = ok(&bin().args(sample).output().expect("sample"));
    assert!(text.starts_with("The ") && text.chars().count() >= 44, "{text:?}");
    let again = ok(&bin().args(sample).output().expect("sample"));
    assert_eq!(text, again, "same seed, same sample");
}

#[test]
fn ctrl_c_saves_and_the_run_resumes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("long");
    let mut args = smoke_args(&run);
    args.extend([
        "--set".into(),
        "train.steps=100000".into(),
        "--set".into(),
        "train.ckpt_interval=100000".into(),
    ]);
    let child = bin().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let start = Instant::now();
    while !run.join("metrics.jsonl").exists()
        || std::fs::metadata(run.join("metrics.jsonl")).map_or(0, |m| m.len()) < 2000
    {
        assert!(start.elapsed() < Duration::from_secs(60), "the run did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("checkpoint saved") && stderr.contains("--resume"), "{stderr}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("last/trainer_state.json")).expect("state"))
            .expect("json");
    let step = state["step"].as_u64().expect("step");
    assert!(step > 0);
    let steps = format!("train.steps={}", step + 5);
    let resume = [
        "train",
        "--resume",
        &run.to_string_lossy(),
        "--set",
        &steps,
        "--set",
        "train.lr_decay_steps=100000",
    ];
    ok(&bin().args(resume).output().expect("resume"));
    assert_eq!(summary_steps(&run), step + 5);
}

#[test]
fn bad_input_exits_nonzero_with_a_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["train".into(), "no/such/config.toml".into()], "no/such/config.toml"),
        (
            {
                let mut a = smoke_args(&tmp.path().join("x"));
                a.extend(["--set".into(), "model.metric=dott".into()]);
                a
            },
            "model.metric",
        ),
        (
            {
                let mut a = smoke_args(&tmp.path().join("y"));
                a.extend(["--set".into(), "task.corpus=/no/such/corpus.txt".into()]);
                a
            },
            "/no/such/corpus.txt",
        ),
        (vec!["sample".into(), tmp.path().join("nothing").to_string_lossy().into_owned()], "does not exist"),
    ];
    for (args, want) in cases {
        let out = bin().args(&args).output().expect("run attnlab");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
