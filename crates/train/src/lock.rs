//! `RunLock`: one writer per run directory, for `train` and for the sweep's claim of a run.
//!
//! The lock is an OS advisory lock (`flock` on Unix, `LockFileEx` on Windows, through
//! [`std::fs::File::try_lock`]) on `RUN/.lock`. The operating system drops it when the process
//! ends, however it ends (`kill -9`, a node lost), so a killed run never leaves a directory
//! locked: the next claim takes it over. The file keeps the holder's process id and host for
//! messages (`pid N on HOST`) and means nothing on its own.
//!
//! A process takes the lock once per directory: [`crate::train`] takes it itself, and a sweep,
//! which claims a run before it checks the plan, trains it with [`crate::train_claimed`] under
//! the same lock (a second `flock` on another descriptor of the same file in one process
//! would conflict with the first).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive claim on a run directory, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    dir: PathBuf,
    path: PathBuf,
    /// The holder recorded by a previous lock whose process is gone (it did not release the
    /// lock cleanly), if any.
    pub took_over: Option<String>,
}

impl RunLock {
    /// Creates `dir` if needed and claims it. Errors when another process (or another
    /// `RunLock` in this one) holds it, naming the directory and the holder.
    pub fn try_acquire(dir: &Path) -> Result<Self> {
        match Self::try_claim(dir)? {
            Some(lock) => Ok(lock),
            None => bail!(
                "{} is in use by another attnlab process ({}, holding {}); wait for it or choose another directory",
                dir.display(),
                holder(dir).unwrap_or_else(|| "holder unknown".into()),
                dir.join(LOCK_FILE).display()
            ),
        }
    }

    /// Creates `dir` if needed and claims it; `Ok(None)` when another live holder has it. A
    /// lock file left by a process that is gone is taken over and named in
    /// [`RunLock::took_over`].
    pub fn try_claim(dir: &Path) -> Result<Option<Self>> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output directory {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let mut previous = String::new();
        file.read_to_string(&mut previous).with_context(|| format!("reading {}", path.display()))?;
        let previous = previous.trim().to_string();
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder_text().as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?;
        let took_over = (!previous.is_empty()).then_some(previous);
        Ok(Some(Self { file, dir: dir.to_path_buf(), path, took_over }))
    }

    /// The run directory this lock claims.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Clear the holder so a later claim does not report a takeover; the lock itself is
        // released when the file closes.
        let _ = self.file.set_len(0);
    }
}

/// Whether a live process holds the lock on `dir` now (nothing is created).
pub fn is_locked(dir: &Path) -> bool {
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

/// Who holds (or last held) a lock, as written in the lock file: `pid N on HOST`.
fn holder_text() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown host".into());
    format!("pid {} on {host}", std::process::id())
}
