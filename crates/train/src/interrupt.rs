//! Ctrl-C handling: the handler sets a flag, and the trainer saves and stops at the next step.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the Ctrl-C handler once per process (later calls return the first result).
pub fn install_handler() -> anyhow::Result<()> {
    let r = INSTALLED
        .get_or_init(|| ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)).map_err(|e| e.to_string()));
    r.clone().map_err(|e| anyhow::anyhow!("installing the Ctrl-C handler: {e}"))
}

/// Whether Ctrl-C was pressed (or [`request_stop`] called).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Asks running training loops to save and stop, as Ctrl-C does.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Clears a stop request (before starting another run in the same process).
pub fn clear_stop() {
    STOP.store(false, Ordering::SeqCst);
}

/// A run stopped early on request; its `last/` checkpoint holds step `step`.
#[derive(Debug, Clone)]
pub struct Interrupted {
    /// Steps done and saved.
    pub step: usize,
    /// The run directory.
    pub dir: PathBuf,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stopped at step {}; checkpoint saved in {} (continue with --resume {})",
            self.step,
            crate::rundir::last_dir(&self.dir).display(),
            self.dir.display()
        )
    }
}

impl std::error::Error for Interrupted {}
