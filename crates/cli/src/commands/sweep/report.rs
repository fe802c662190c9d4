//! The end of a sweep: the eval crate's report of the finished runs, the runs that did not
//! finish beside it, and a non-zero exit naming the failures.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use attnlab_eval::screen::Unreadable;
use attnlab_eval::unfinished::{self, Unfinished};
use attnlab_train::sweep::{self, Failure, Outcome, PlannedRun, RunState};
use attnlab_train::tasks::report::Margin;

/// Writes `out/report/` over the planned runs that finished, with the sweep file's `[margins]`;
/// the others are listed in the report as failed (why, at which step) or not finished. Errors
/// (non-zero exit) when any run failed or did not finish, naming them.
pub fn write(
    runs: &[PlannedRun],
    out: &Path,
    margins: &[(String, Margin)],
    tuned: Option<attnlab_eval::tuning::Tuned>,
) -> Result<()> {
    let mut finished: Vec<PathBuf> = Vec::new();
    let mut missing: Vec<Unfinished> = Vec::new();
    let mut stopped: Vec<PathBuf> = Vec::new();
    for run in runs {
        let dir = run.dir(out);
        match RunState::of(&dir) {
            RunState::Finished => finished.push(dir),
            RunState::Failed => {
                missing.push(Unfinished::Failed(
                    Failure::read(&dir).unwrap_or_else(|| failure_unreadable(&run.name)),
                ));
                stopped.push(dir);
            }
            state => {
                missing.push(Unfinished::NotFinished { name: run.name.clone(), state: state.name().into() })
            }
        }
    }
    let report_dir = sweep::report_dir(out);
    // A finished run whose checkpoint cannot be read is not counted as finished.
    let screened = attnlab_eval::screen::load_runs(&finished)?;
    let readable: Vec<PathBuf> = screened.runs.iter().map(|r| r.dir.clone()).collect();
    if !readable.is_empty() {
        let options = attnlab_eval::ReportOptions {
            sweep_report: true,
            stopped,
            margins: margins.to_vec(),
            tuned,
            ..Default::default()
        };
        attnlab_eval::write_report_with(&readable, &report_dir, &options)?;
    }
    unfinished::write(&report_dir, &missing, &screened.unreadable, readable.is_empty())?;
    println!("report of {} finished run(s): {}", readable.len(), report_dir.join("report.md").display());
    let mut lines: Vec<String> = missing.iter().map(Unfinished::line).collect();
    lines.extend(screened.unreadable.iter().map(Unreadable::line));
    if !lines.is_empty() {
        bail!(
            "{} of {} planned runs did not finish or could not be read:\n  {}",
            lines.len(),
            runs.len(),
            lines.join("\n  ")
        )
    }
    Ok(())
}

fn failure_unreadable(name: &str) -> Failure {
    Failure { name: name.to_string(), step: 0, diverged: false, error: "failure.json is unreadable".into() }
}

/// After a shard: a non-zero exit naming the runs that failed.
pub fn fail_on_failures(outcomes: &[(String, Outcome)]) -> Result<()> {
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|(_, o)| match o {
            Outcome::Failed { failure } => Some(failure.line()),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        bail!("{} run(s) failed:\n  {}", failed.len(), failed.join("\n  "))
    }
    Ok(())
}
