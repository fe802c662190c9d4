//! `attnlab sweep --plan`: the planned runs with their state, shard and directory.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use attnlab_train::sweep::{PlannedRun, RunState, Shard};

/// Prints one line per planned run (`STATE  SHARD  DIR`) and the counts per state; with
/// `--shard I/N`, shards are those of N and the runs of shard I are marked `*`.
pub fn print(runs: &[PlannedRun], out: &Path, shard: Shard) -> Result<()> {
    let mut counts = [0usize; 5];
    let states =
        [RunState::Finished, RunState::Running, RunState::Interrupted, RunState::Pending, RunState::Failed];
    let mut stdout = std::io::stdout().lock();
    for run in runs {
        let dir = run.dir(out);
        let state = RunState::of(&dir);
        if let Some(i) = states.iter().position(|s| *s == state) {
            counts[i] += 1;
        }
        let n = Shard::of(&run.name, shard.count);
        let mark = if shard.count > 1 && n == shard.index { "*" } else { " " };
        if writeln!(stdout, "{:<18} {mark}{n}/{:<4} {}", state.name(), shard.count, dir.display()).is_err() {
            return Ok(());
        }
    }
    let summary: Vec<String> = states.iter().zip(counts).map(|(s, c)| format!("{c} {}", s.name())).collect();
    let _ = writeln!(stdout, "{} planned: {}", runs.len(), summary.join(", "));
    Ok(())
}
