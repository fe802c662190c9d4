//! Running a sweep's runs: one after another in this process, or up to `jobs` at once, each in
//! its own child process of the `attnlab` binary (so each has its own threads and memory, and a
//! crash takes down one run only). Ctrl-C asks every job to save and stop; a re-run resumes.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::one::{Outcome, RetryPolicy, run_one};
use super::progress::SweepProgress;
use super::record::{self, Failure, PlannedRecord};
use super::{PlannedRun, Shard, runs_dir};
use crate::interrupt::stop_requested;
use crate::outputs::{Writer, check_output};
use crate::{TrainOptions, rundir};

/// How the runs are trained.
#[derive(Debug, Clone)]
pub enum Executor {
    /// In this process, one after another.
    InProcess(TrainOptions),
    /// In child processes `exe --threads THREADS sweep-run DIR` (the plan on stdin, the
    /// [`Outcome`] as JSON on stdout), up to `jobs` at once.
    Children {
        /// The `attnlab` binary.
        exe: PathBuf,
        /// Runs at once.
        jobs: usize,
        /// CPU threads of each run.
        threads: usize,
    },
}

/// Everything but the runs and the output directory.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// How runs are trained.
    pub executor: Executor,
    /// Which runs this process trains.
    pub shard: Shard,
    /// Whether recorded failures are tried again.
    pub retry: RetryPolicy,
    /// Keep finished runs trained on other inputs than the sweep's files now (by default the
    /// sweep refuses to start, naming them; see [`super::stale`]).
    pub keep_stale: bool,
}

/// What a sweep did.
#[derive(Debug, Clone)]
pub struct SweepResult {
    /// The outcome of every run of the shard, in plan order: `(name, outcome)`.
    pub outcomes: Vec<(String, Outcome)>,
    /// Peak resident memory, MiB: the largest sum over the jobs running at one time of each
    /// job's peak (plus this process); `None` where `/proc` is missing.
    pub peak_rss_mib: Option<f64>,
}

/// The sweep stopped on request (Ctrl-C); every stopped run saved its checkpoint.
#[derive(Debug, Clone)]
pub struct SweepInterrupted {
    /// Runs stopped mid-way (they resume on the next sweep).
    pub stopped: Vec<String>,
}

impl std::fmt::Display for SweepInterrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sweep stopped; {} run(s) saved a checkpoint ({}): run the same command again to resume",
            self.stopped.len(),
            self.stopped.join(", ")
        )
    }
}

impl std::error::Error for SweepInterrupted {}

/// Trains the runs of `opts.shard` under `out/runs/` that have not finished, resuming
/// interrupted ones and recording failed ones. Every run directory is checked against the plan
/// before anything trains. Ctrl-C: a [`SweepInterrupted`] (children) or
/// [`crate::Interrupted`] (in-process) error once every job has saved.
pub fn run_sweep(runs: &[PlannedRun], out: &Path, opts: &SweepOptions) -> Result<SweepResult> {
    // A sweep writes only into directories it made: never a run, a checkpoint or inside one.
    check_output(out, &[], Writer::Sweep)?;
    let selected: Vec<&PlannedRun> = runs.iter().filter(|r| opts.shard.holds(&r.name)).collect();
    for run in &selected {
        record::preflight(run, &run.dir(out))?;
    }
    let stale = super::stale::stale_runs(&selected, out)?;
    if !stale.is_empty() {
        let lines: Vec<String> = stale.iter().map(super::stale::StaleRun::line).collect();
        if !opts.keep_stale {
            anyhow::bail!(
                "{} finished run(s) were trained on other inputs than the sweep's files now:\n  {}\n\
                 delete them to train them again on the new inputs, or pass --keep-stale to keep them as they are",
                stale.len(),
                lines.join("\n  ")
            )
        }
        tracing::warn!(
            "keeping {} run(s) trained on other inputs (--keep-stale): {}",
            stale.len(),
            lines.join("; ")
        );
    }
    let dir = runs_dir(out);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_plan(runs, out)?;
    match &opts.executor {
        Executor::InProcess(train) => in_process(&selected, out, train, opts.retry),
        Executor::Children { exe, jobs, threads } => {
            Children { exe, threads: *threads, retry: opts.retry, out }.run(&selected, (*jobs).max(1))
        }
    }
}

/// Writes `out/sweep.json`: every planned run's name, base, grid values and directory (the same
/// from every shard; written through a per-process temporary file).
fn write_plan(runs: &[PlannedRun], out: &Path) -> Result<()> {
    let plan: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| serde_json::json!({"name": r.name, "base": r.base, "grid": r.grid, "dir": r.dir(out)}))
        .collect();
    rundir::write_atomic(&out.join(crate::outputs::SWEEP_FILE), &serde_json::to_vec_pretty(&plan)?)
}

fn in_process(
    runs: &[&PlannedRun],
    out: &Path,
    train: &TrainOptions,
    retry: RetryPolicy,
) -> Result<SweepResult> {
    let mut progress = SweepProgress::new(runs.len());
    let mut outcomes = Vec::new();
    for run in runs {
        progress.start(&run.name, run.config.train.steps);
        let outcome =
            run_one(run, &run.dir(out), train, retry).with_context(|| format!("sweep run {}", run.name));
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                progress.close();
                return Err(e);
            }
        };
        progress.finish(&run.name, &outcome);
        outcomes.push((run.name.clone(), outcome));
    }
    progress.close();
    Ok(SweepResult { outcomes, peak_rss_mib: peak_rss_mib(std::process::id()) })
}

/// Peak resident memory of process `pid` (`VmHWM`), MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The last training step written to a run's `metrics.jsonl` (0 when none).
fn last_step(dir: &Path) -> usize {
    let Ok(text) = fs::read_to_string(dir.join(rundir::METRICS_FILE)) else { return 0 };
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
        .unwrap_or(0) as usize
}

/// One running child.
struct Job<'a> {
    run: &'a PlannedRun,
    child: Child,
    log: PathBuf,
}

/// The child-process scheduler.
struct Children<'a> {
    exe: &'a Path,
    threads: usize,
    retry: RetryPolicy,
    out: &'a Path,
}

impl Children<'_> {
    fn run(&self, runs: &[&PlannedRun], jobs: usize) -> Result<SweepResult> {
        let mut queue: VecDeque<&PlannedRun> = runs.iter().copied().collect();
        let mut running: Vec<Job> = Vec::new();
        let mut results: Vec<(String, Outcome)> = Vec::new();
        let mut progress = SweepProgress::new(runs.len());
        let (mut peak, mut stopping, mut stopped) = (0.0f64, false, Vec::new());
        let own = peak_rss_mib(std::process::id());
        while !(queue.is_empty() && running.is_empty()) {
            if stop_requested() && !stopping {
                stopping = true;
                queue.clear();
                running.iter().for_each(|j| interrupt_child(&j.child));
            }
            while running.len() < jobs && !stopping {
                let Some(run) = queue.pop_front() else { break };
                progress.start(&run.name, run.config.train.steps);
                running.push(self.spawn(run)?);
            }
            let mem: f64 = running.iter().filter_map(|j| peak_rss_mib(j.child.id())).sum();
            peak = peak.max(mem + own.unwrap_or(0.0));
            let steps: Vec<_> = running
                .iter()
                .map(|j| (j.run.name.clone(), last_step(&j.run.dir(self.out)), j.run.config.train.steps))
                .collect();
            progress.update(&steps);
            let mut i = 0;
            while i < running.len() {
                match running[i].child.try_wait().context("waiting for a sweep job")? {
                    None => i += 1,
                    Some(status) => {
                        let job = running.swap_remove(i);
                        match self.collect(job, status)? {
                            (name, Some(outcome)) => {
                                progress.finish(&name, &outcome);
                                results.push((name, outcome));
                            }
                            (name, None) => {
                                // A job stopped on request: stop the others too.
                                stopped.push(name);
                                if !stopping {
                                    stopping = true;
                                    queue.clear();
                                    running.iter().for_each(|j| interrupt_child(&j.child));
                                }
                            }
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        progress.close();
        if stopping || !stopped.is_empty() {
            return Err(SweepInterrupted { stopped }.into());
        }
        let order = |n: &String| runs.iter().position(|r| &r.name == n);
        results.sort_by_key(|(n, _)| order(n));
        Ok(SweepResult { outcomes: results, peak_rss_mib: own.map(|_| peak) })
    }

    fn spawn<'r>(&self, run: &'r PlannedRun) -> Result<Job<'r>> {
        let logs = self.out.join("logs");
        fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let log = logs.join(format!("{}.log", run.name));
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let dir = run.dir(self.out);
        let mut child = Command::new(self.exe)
            .arg("--threads")
            .arg(self.threads.to_string())
            .arg("sweep-run")
            .arg(&dir)
            .args(self.retry.retry_failed.then_some("--retry-failed"))
            .env(SWEEP_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {} for run {}", self.exe.display(), run.name))?;
        let plan = serde_json::to_vec(&PlannedRecord::of(run)?)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&plan).with_context(|| format!("sending the plan of {} to its job", run.name))?;
        }
        Ok(Job { run, child, log })
    }

    /// The outcome a finished job printed; `None` when it stopped on request (exit 130 or 143). A job
    /// that died without an outcome (a crash, killed for memory) is recorded as failed.
    fn collect(&self, mut job: Job, status: std::process::ExitStatus) -> Result<(String, Option<Outcome>)> {
        let name = job.run.name.clone();
        let mut stdout = String::new();
        if let Some(mut s) = job.child.stdout.take() {
            let _ = s.read_to_string(&mut stdout);
        }
        if let Ok(outcome) = serde_json::from_str::<Outcome>(stdout.trim()) {
            return Ok((name, Some(outcome)));
        }
        // Stopped on request: Ctrl-C (130) or SIGTERM (143, the parent-death signal included).
        if matches!(status.code(), Some(130 | 143)) {
            return Ok((name, None));
        }
        let tail = fs::read_to_string(&job.log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(3).collect();
        let why = anyhow::anyhow!(
            "its job ended with {status} and no outcome; last log lines ({}): {}",
            job.log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
        let dir = job.run.dir(self.out);
        if !dir.is_dir() {
            return Err(why.context(format!("sweep run {name}")));
        }
        let failure = Failure::record(&name, &dir, &why)?;
        Ok((name, Some(Outcome::Failed { failure })))
    }
}

/// Environment variable through which a sweep tells its jobs its process id (see
/// [`die_with_sweep`]).
pub const SWEEP_PID_ENV: &str = "ATTNLAB_SWEEP_PID";

/// In a sweep's job (`attnlab sweep-run`): asks the kernel to send this process SIGTERM when the
/// sweep that started it dies, however it dies (`kill -9`, the out-of-memory killer):
/// `prctl(PR_SET_PDEATHSIG)` on Linux, through `nix`. SIGTERM makes the job save its checkpoint
/// and stop, as `scancel` does, so a killed sweep leaves no orphan training. Errors when the
/// sweep is already gone. Does nothing outside a sweep (no [`SWEEP_PID_ENV`]) or off Linux.
pub fn die_with_sweep() -> Result<()> {
    let Some(sweep) = std::env::var(SWEEP_PID_ENV).ok().and_then(|v| v.parse::<i32>().ok()) else {
        return Ok(());
    };
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::Signal;
        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).context("prctl(PR_SET_PDEATHSIG)")?;
        // The sweep may have died before the call: then this process has another parent already.
        if nix::unistd::getppid().as_raw() != sweep {
            anyhow::bail!("the sweep that started this job (pid {sweep}) is gone: not training")
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = sweep;
    Ok(())
}

/// Asks a child to save and stop, as Ctrl-C does (SIGINT; the child's handler sets its flag).
fn interrupt_child(child: &Child) {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(child.id()) else { return };
        // SAFETY: `kill` has no memory-safety preconditions; `pid` is our own child, not yet
        // reaped, so the id cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
    }
    #[cfg(not(unix))]
    let _ = child;
}
