//! The smoke sweep on a real one-node Slurm cluster: `scripts/slurm_cluster.sh` starts munged,
//! slurmctld and slurmd (root, Debian's `slurm-wlm` and `munge`; `scripts/test.sh` installs
//! them), then the two commands README gives: a 2-task job array over the shards and a
//! dependent job writing the report, which must hold every run exactly once. The daemons stop
//! at the end. Never skipped silently: without root or the packages it fails with the reason;
//! only `ATTNLAB_SKIP_SLURM=1` in the environment skips it, and says so. Beside it, the batch
//! script alone under the variables Slurm sets (no cluster): the shard count (case 46).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// A running cluster; dropping it stops the daemons it started.
struct Cluster {
    dir: PathBuf,
    conf: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let out = Command::new(repo().join("scripts/slurm_cluster.sh"))
            .arg("start")
            .arg(dir)
            .output()
            .expect("run slurm_cluster.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let conf = stdout.lines().find_map(|l| l.strip_prefix("SLURM_CONF=")).map(str::to_string);
        let cluster = Cluster { dir: dir.to_path_buf(), conf: conf.clone().unwrap_or_default() };
        assert!(
            out.status.success() && conf.is_some(),
            "could not start the Slurm cluster (set ATTNLAB_SKIP_SLURM=1 to skip this test knowingly): {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn sbatch(&self, args: &[&str]) -> Output {
        // `timeout`: a job that never completes fails the test with its logs instead of hanging CI.
        Command::new("timeout")
            .arg("300")
            .arg("sbatch")
            .env("SLURM_CONF", &self.conf)
            .env("ATTNLAB", env!("CARGO_BIN_EXE_attnlab"))
            .env("RUST_LOG", "warn")
            .arg(format!("--chdir={}", repo().display()))
            .args(args)
            .output()
            .expect("run sbatch")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/slurm_cluster.sh")).arg("stop").arg(&self.dir).status();
    }
}

#[test]
fn smoke_sweep_runs_as_a_slurm_job_array() {
    if std::env::var_os("ATTNLAB_SKIP_SLURM").is_some() {
        eprintln!("SKIPPED smoke_sweep_runs_as_a_slurm_job_array: ATTNLAB_SKIP_SLURM is set");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(&tmp.path().join("slurm"));
    let out = tmp.path().join("sw");
    let (out_s, logs) = (out.display().to_string(), tmp.path().display().to_string());
    let script = "configs/slurm/sweep.sbatch";
    let array = cluster.sbatch(&[
        "--parsable",
        "--array=1-2",
        &format!("--output={logs}/shard-%a.out"),
        script,
        "configs/sweeps/smoke.toml",
        "--out",
        &out_s,
    ]);
    assert!(array.status.success(), "sbatch: {}", String::from_utf8_lossy(&array.stderr));
    let job = String::from_utf8_lossy(&array.stdout).trim().to_string();
    let report = cluster.sbatch(&[
        "--wait",
        &format!("--dependency=afterany:{job}"),
        &format!("--output={logs}/report.out"),
        script,
        "configs/sweeps/smoke.toml",
        "--out",
        &out_s,
        "--report-only",
    ]);
    let read = |f: &str| fs::read_to_string(tmp.path().join(f)).unwrap_or_else(|e| format!("({f}: {e})"));
    let (shard1, shard2, report_log) = (read("shard-1.out"), read("shard-2.out"), read("report.out"));
    eprintln!("--- shard 1\n{shard1}--- shard 2\n{shard2}--- report\n{report_log}");
    assert!(report.status.success(), "report job: {}{report_log}", String::from_utf8_lossy(&report.stderr));
    // Each array task trained its own shard, together all 8 runs.
    let trained = |log: &str| -> usize {
        log.lines().find_map(|l| l.split(" runs of shard ").next()?.trim().parse().ok()).unwrap_or(0)
    };
    assert!(shard1.contains("shard 1/2") && shard2.contains("shard 2/2"), "{shard1}{shard2}");
    assert_eq!(trained(&shard1) + trained(&shard2), 8, "{shard1}{shard2}");
    let text = fs::read_to_string(out.join("report/report.json")).expect("report.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(json["n_runs"], 8);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for g in json["groups"].as_array().expect("groups") {
        for r in g["runs"].as_array().expect("runs") {
            *seen.entry(r["name"].as_str().expect("name").to_string()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "every run exactly once: {seen:?}");
    drop(cluster);
}

/// Runs `configs/slurm/sweep.sbatch` as Slurm would with the array variables `vars`, with a
/// stand-in `attnlab` that prints its arguments; returns (exit code, stdout, stderr).
fn batch_script(vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = tmp.path().join("attnlab");
    fs::write(&fake, "#!/bin/sh\necho \"$@\"\n").expect("stand-in");
    let mut perms = fs::metadata(&fake).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(&fake, perms).expect("chmod");
    let out = Command::new("bash")
        .arg(repo().join("configs/slurm/sweep.sbatch"))
        .arg("s.toml")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ATTNLAB", &fake)
        .envs(vars.iter().copied())
        .output()
        .expect("bash");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Case 46: N of `--shard I/N` is the sweep's shard count — the whole array's size, or
/// `ATTNLAB_SHARDS` — never the size of a resubmitted part; zero-based and stepped arrays are
/// refused with a message saying how to submit.
#[test]
fn the_batch_script_takes_the_shard_count_from_the_sweep() {
    let array = |id: &'static str, min: &'static str, max: &'static str, count: &'static str| {
        vec![
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", min),
            ("SLURM_ARRAY_TASK_MAX", max),
            ("SLURM_ARRAY_TASK_COUNT", count),
        ]
    };
    for id in ["1", "2", "3", "4"] {
        let (code, out, err) = batch_script(&array(id, "1", "4", "4"));
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(out, format!("--threads 1 sweep s.toml --shard {id}/4"));
    }
    // Resubmitting shard 4 alone: its array has one task, so the count must be named.
    let (code, _, err) = batch_script(&array("4", "4", "4", "1"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ATTNLAB_SHARDS") && err.contains("--array=I --export=ALL,ATTNLAB_SHARDS=N"),
        "{err}"
    );
    let mut named = array("4", "4", "4", "1");
    named.push(("ATTNLAB_SHARDS", "4"));
    let (code, out, err) = batch_script(&named);
    assert_eq!((code, out.as_str()), (Some(0), "--threads 1 sweep s.toml --shard 4/4"), "{err}");
    // Zero-based and stepped arrays.
    let (code, out, err) = batch_script(&array("0", "0", "3", "4"));
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("1-based") && err.contains("--array=1-N"), "{err}");
    let mut stepped = array("5", "1", "7", "4");
    stepped.push(("SLURM_ARRAY_TASK_STEP", "2"));
    let (code, out, err) = batch_script(&stepped);
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("stepped") && err.contains("--array=1-N"), "{err}");
    // Only the task id set (no MIN, MAX, COUNT): no unbound-variable stop, a clear message.
    let (code, _, err) = batch_script(&[("SLURM_ARRAY_TASK_ID", "2")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("ATTNLAB_SHARDS") && !err.contains("unbound"), "{err}");
    // No array: the report job passes its arguments on.
    let (code, out, err) = batch_script(&[]);
    assert_eq!((code, out.as_str()), (Some(0), "sweep s.toml"), "{err}");
}
