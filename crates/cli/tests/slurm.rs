//! The smoke sweep on a real one-node Slurm cluster: `scripts/slurm_cluster.sh` starts munged,
//! slurmctld and slurmd (root, Debian's `slurm-wlm` and `munge`; `scripts/test.sh` installs
//! them), then the two commands README gives: a 2-task job array over the shards and a
//! dependent job writing the report, which must hold every run exactly once. The daemons stop
//! at the end. Never skipped silently: without root or the packages it fails with the reason;
//! only `ATTNLAB_SKIP_SLURM=1` in the environment skips it, and says so.

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
