//! `attnlab sweep --plan`: the planned runs with their state, shard and directory.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use attnlab_train::sweep::{PlannedRun, RunState, Shard};

/// Prints a header, one line per planned run (`STATE  SHARD  DIR`) and the counts per state;
/// with `--shard I/N`, shards are those of N, the runs of shard I are marked `*` and a last line
/// says so.
pub fn print(runs: &[PlannedRun], out: &Path, shard: Shard) -> Result<()> {
    let mut counts = [0usize; 5];
    let states =
        [RunState::Finished, RunState::Running, RunState::Interrupted, RunState::Pending, RunState::Failed];
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{:<18} {:<6} RUN DIRECTORY", "STATE", "SHARD").is_err() {
        return Ok(());
    }
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
    if shard.count > 1 {
        let _ = writeln!(stdout, "* marks the runs of shard {}/{}", shard.index, shard.count);
    }
    Ok(())
}
