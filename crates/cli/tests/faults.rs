//! Injected faults through the binary (issue 13): kill -9 at random moments of a run that
//! checkpoints every step, then resume; a read-only output, a corpus deleted between runs,
//! damaged `tokenizer.json` / `config.json`; the reliability cases 01, 10, 12, 14 and 19.
//! Every failure is an `error:` line and exit code 1, never a panic (exit 101).

use crate::common::{bin, failed, ok, s};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

const RECALL: &str = "seed = 3\n[model]\nkind = \"gpt\"\nmetric = \"dot\"\nn_layer = 1\nn_head = 2\nn_embd = 16\n[task]\nkind = \"recall\"\nvocab_size = 32\nseq_len = 16\nn_pairs = 4\n[train]\nsteps = 16\nbatch_size = 4\nlr = 3e-3\nwarmup_steps = 2\neval_interval = 4\neval_batches = 1\nckpt_interval = 1\nlog_interval = 4\n";

fn text_config(dir: &Path, corpus: &str) -> PathBuf {
    let body = format!(
        "seed = 1\n[model]\nkind = \"gpt\"\nmetric = \"dot\"\nblock_size = 16\nn_layer = 1\nn_head = 2\nn_embd = 16\n[task]\nkind = \"text\"\ncorpus = \"{}\"\n[train]\nsteps = 6\nbatch_size = 4\nlr = 3e-3\neval_interval = 3\neval_batches = 1\nckpt_interval = 3\n",
        s(&dir.join(corpus))
    );
    let p = dir.join(format!("{corpus}.toml"));
    std::fs::write(&p, body).expect("config");
    p
}

fn corpus_text(n: usize) -> String {
    let words = ["the", "key", "query", "value", "near", "far", "map"];
    (0..n).map(|i| words[(i * 7 + i / 3) % words.len()]).collect::<Vec<_>>().join(" ")
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("last/model.safetensors")).expect("weights")
}

#[test]
fn kill_9_at_random_moments_then_resume_reaches_the_same_weights() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("recall.toml");
    std::fs::write(&config, RECALL).expect("config");
    let reference = tmp.path().join("reference");
    let t0 = Instant::now();
    ok(&bin().args(["train", &s(&config), "--out", &s(&reference)]).output().expect("run"));
    let span = t0.elapsed().as_millis().max(20) as u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let mut kills = 0;
    for i in 0..20 {
        let dir = tmp.path().join(format!("k{i}"));
        let mut child = bin().args(["train", &s(&config), "--out", &s(&dir)]).spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..span)));
        if child.kill().is_ok() {
            kills += 1;
        }
        let _ = child.wait();
        // Whatever survived loads and is finite.
        if dir.join("last/model.safetensors").exists() || dir.join(".last.old").exists() {
            let resumed = bin().args(["train", &s(&config), "--resume", &s(&dir)]).output().expect("resume");
            ok(&resumed);
        } else {
            let again = bin().args(["train", &s(&config), "--out", &s(&dir)]).output().expect("again");
            ok(&again);
        }
        attnlab_model::Checkpoint::open(dir.join("last"), &candle_core::Device::Cpu).expect("opens");
        assert!(weights(&dir) == weights(&reference), "run {i} ended with other weights");
        let opt = |d: &Path| std::fs::read(d.join("last/optimizer.safetensors")).expect("optimizer");
        assert!(opt(&dir) == opt(&reference), "run {i} ended with another optimizer state");
    }
    assert!(kills >= 10, "only {kills} of 20 runs were still alive to be killed");
}

#[test]
fn damaged_files_and_missing_inputs_are_clean_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("c.txt"), corpus_text(3000)).expect("corpus");
    let config = text_config(tmp.path(), "c.txt");
    let run = tmp.path().join("run");
    let stop = bin().args(["train", &s(&config), "--out", &s(&run), "--set", "train.steps=3"]).output();
    ok(&stop.expect("train"));
    // Corpus deleted between runs: the resume names it.
    std::fs::rename(tmp.path().join("c.txt"), tmp.path().join("moved.txt")).expect("move");
    let err = failed(&bin().args(["train", &s(&config), "--resume", &s(&run)]).output().expect("resume"));
    assert!(err.contains("c.txt"), "{err}");
    std::fs::rename(tmp.path().join("moved.txt"), tmp.path().join("c.txt")).expect("move back");
    // Damaged tokenizer.json and config.json: sampling names the file.
    let tok = run.join("last/tokenizer.json");
    let good_tok = std::fs::read(&tok).expect("tokenizer");
    for bad in [good_tok[..good_tok.len() / 2].to_vec(), vec![0xff, 0x00, 0x13, 0x37, 0x80]] {
        std::fs::write(&tok, &bad).expect("damage");
        let err = failed(&bin().args(["sample", &s(&run), "--tokens", "4"]).output().expect("sample"));
        assert!(err.contains("tokenizer.json"), "{err}");
    }
    std::fs::write(&tok, &good_tok).expect("restore");
    let cfg = run.join("last/config.json");
    let good_cfg = std::fs::read(&cfg).expect("config");
    for bad in [good_cfg[..good_cfg.len() / 3].to_vec(), b"\x00\x01garbage".to_vec()] {
        std::fs::write(&cfg, &bad).expect("damage");
        let err = failed(&bin().args(["sample", &s(&run), "--tokens", "4"]).output().expect("sample"));
        assert!(err.contains("config.json"), "{err}");
    }
}

#[test]
fn a_read_only_output_is_a_clean_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("recall.toml");
    std::fs::write(&config, RECALL).expect("config");
    let ro = tmp.path().join("ro");
    std::fs::create_dir_all(&ro).expect("dir");
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"]).arg(&ro).status();
    let mounted = mounted.is_ok_and(|st| st.success());
    if !mounted {
        let mut perm = std::fs::metadata(&ro).expect("meta").permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&ro, perm).expect("chmod");
        if std::fs::write(ro.join("probe"), b"x").is_ok() {
            eprintln!("this user writes through read-only permissions and cannot mount: nothing to test");
            return;
        }
    }
    let out = bin().args(["train", &s(&config), "--out", &s(&ro.join("run"))]).output().expect("train");
    if mounted {
        let _ = Command::new("umount").arg(&ro).status();
    }
    let err = failed(&out);
    assert!(err.contains("ro/run") && (err.contains("Read-only") || err.contains("ermission")), "{err}");
}

#[test]
fn reliability_cases_through_the_binary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("recall.toml");
    std::fs::write(&config, RECALL).expect("config");
    // Case 12: fails before its first checkpoint, then the same command starts it afresh.
    let run = tmp.path().join("run12");
    let bad = [
        "--set",
        "train.lr=1e8",
        "--set",
        "train.warmup_steps=0",
        "--set",
        "train.grad_clip=0",
        "--set",
        "train.ckpt_interval=1000",
        "--set",
        "train.eval_interval=1000",
    ];
    let err =
        failed(&bin().args(["train", &s(&config), "--out", &s(&run)]).args(bad).output().expect("train"));
    assert!(err.contains("diverged"), "{err}");
    ok(&bin().args(["train", &s(&config), "--out", &s(&run)]).output().expect("again"));
    // Case 14: extending a finished run changes the schedule unless its length is kept.
    let err = failed(
        &bin().args(["train", "--resume", &s(&run), "--set", "train.steps=20"]).output().expect("resume"),
    );
    assert!(err.contains("train.lr_decay_steps=16") && err.contains("--allow-changes"), "{err}");
    ok(&bin()
        .args(["train", "--resume", &s(&run), "--set", "train.steps=20", "--set", "train.lr_decay_steps=16"])
        .output()
        .expect("extend"));
    let out = bin()
        .args([
            "train",
            "--resume",
            &s(&run),
            "--set",
            "train.steps=24",
            "--set",
            "train.lr=1e-2",
            "--allow-changes",
        ])
        .output()
        .expect("allow");
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("train.lr 0.003 -> 0.01").count(), 1, "each change said once: {err}");
    // Case 01: a text run without a newline in its corpus; sampling without --prompt.
    std::fs::write(tmp.path().join("flat.txt"), corpus_text(3000)).expect("corpus");
    let text = text_config(tmp.path(), "flat.txt");
    let trun = tmp.path().join("flat");
    ok(&bin().args(["train", &s(&text), "--out", &s(&trun)]).output().expect("train"));
    let err = failed(&bin().args(["sample", &s(&trun), "--tokens", "4"]).output().expect("sample"));
    assert!(err.contains("--prompt") && err.contains("default"), "{err}");
    ok(&bin().args(["sample", &s(&trun), "--tokens", "4", "--prompt", "the"]).output().expect("sample"));
    // Case 19: augment into its own input run, inside it, or over another run is refused.
    let moons = tmp.path().join("moons");
    let mcfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/moons.toml");
    ok(&bin()
        .args([
            "train",
            &s(&mcfg),
            "--out",
            &s(&moons),
            "--set",
            "train.steps=5",
            "--set",
            "train.eval_interval=5",
        ])
        .output()
        .expect("moons"));
    let listing = |d: &Path| {
        let mut v: Vec<_> =
            std::fs::read_dir(d).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        v.sort();
        v
    };
    let before = listing(&moons);
    for out in [moons.clone(), moons.join("aug"), run.clone()] {
        let err = failed(
            &bin()
                .args(["augment", &s(&moons), "--point=-1,1", "--class", "1", "--out", &s(&out)])
                .output()
                .expect("augment"),
        );
        assert!(err.contains(&s(&out)), "{err}");
    }
    assert_eq!(listing(&moons), before);
    let aug = tmp.path().join("aug");
    ok(&bin()
        .args(["augment", &s(&moons), "--point=-1,1", "--class", "1", "--out", &s(&aug)])
        .output()
        .expect("augment"));
    ok(&bin()
        .args(["augment", &s(&moons), "--point=-1,1", "--class", "1", "--out", &s(&aug)])
        .output()
        .expect("again"));
}

#[test]
fn a_warm_up_as_long_as_the_run_is_warned_about() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("c.txt"), corpus_text(2000)).expect("corpus");
    let text = text_config(tmp.path(), "c.txt");
    let run = |out: &str, set: &[&str]| {
        let out = bin().args(["train", &s(&text), "--out", &s(&tmp.path().join(out))]).args(set).output();
        let out = out.expect("train");
        ok(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("long", &["--set", "train.warmup_steps=10"]);
    assert!(err.contains("train.warmup_steps (10) >= train.steps (6)"), "{err}");
    let err = run("short", &["--set", "train.warmup_steps=2"]);
    assert!(!err.contains("warmup_steps"), "{err}");
}
