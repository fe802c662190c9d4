//! Claiming a run directory: an exclusive OS advisory lock (`flock` on Unix, `LockFileEx` on
//! Windows, through `std::fs::File::try_lock`) on `RUN/sweep.lock`, taken before the sweep
//! touches the run. The OS drops the lock when its process dies, so a lock left by a killed job
//! (`kill -9`, a node lost) is stale by construction and the next claim takes it over; the file
//! keeps the last holder's process id and host for messages.
//!
//! The reliability work adds a lock of its own for `train`; this one is the sweep's claim and
//! uses a separate file, so one process never holds two locks on one file.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = "sweep.lock";

/// A held claim on a run directory; dropping it releases the lock.
#[derive(Debug)]
pub struct RunClaim {
    file: File,
    path: PathBuf,
    /// The holder recorded by a previous claim whose process is gone, if any.
    pub took_over: Option<String>,
}

/// Who holds (or last held) a claim, as written in the lock file: `pid N on HOST`.
fn holder_text() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown host".into());
    format!("pid {} on {host}", std::process::id())
}

fn open(dir: &Path) -> Result<(File, PathBuf)> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok((file, path))
}

/// Claims `dir` (creating it). `Ok(None)` when another live process holds it; a stale lock file
/// (its process gone) is taken over and named in [`RunClaim::took_over`].
pub fn try_claim(dir: &Path) -> Result<Option<RunClaim>> {
    let (mut file, path) = open(dir)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    }
    let mut previous = String::new();
    file.read_to_string(&mut previous).with_context(|| format!("reading {}", path.display()))?;
    let previous = previous.trim().to_string();
    file.set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(holder_text().as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    let took_over = (!previous.is_empty()).then_some(previous);
    Ok(Some(RunClaim { file, path, took_over }))
}

/// Whether a live process holds the claim on `dir` now (without creating anything).
pub fn is_claimed(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(LOCK_FILE)) else { return false };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

/// The holder written in `dir`'s lock file (`pid N on HOST`), if any.
pub fn holder(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join(LOCK_FILE)).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl RunClaim {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        // Clear the holder so a later claim does not report a takeover; the lock itself is
        // released when the file closes.
        let _ = self.file.set_len(0);
    }
}
