//! Ctrl-C and SIGTERM handling: the handler sets a flag, and the trainer saves and stops at the
//! next step. Which signal came decides the exit status (the shell's convention, 128 + signal):
//! 130 for SIGINT (Ctrl-C), 143 for SIGTERM (`kill`, `scancel`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));
static SIGNAL: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the SIGINT and SIGTERM handlers once per process (later calls return the first
/// result), through `signal-hook`.
pub fn install_handler() -> anyhow::Result<()> {
    let r = INSTALLED.get_or_init(|| {
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register_usize(sig, Arc::clone(&SIGNAL), sig as usize)
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&STOP)))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    r.clone().map_err(|e| anyhow::anyhow!("installing the Ctrl-C / SIGTERM handler: {e}"))
}

/// Whether Ctrl-C was pressed, SIGTERM received (or [`request_stop`] called).
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
    SIGNAL.store(0, Ordering::SeqCst);
}

/// The exit status of a process that stopped on request: 143 (128 + 15) after SIGTERM, 130
/// (128 + 2) after Ctrl-C or [`request_stop`].
pub fn stop_exit_code() -> u8 {
    match SIGNAL.load(Ordering::SeqCst) {
        s if s == SIGTERM as usize => 143,
        _ => 130,
    }
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
