//! Training progress: an indicatif bar on a terminal, plain `tracing` lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
pub enum Progress {
    /// A progress bar (step, loss, tokens/s, ETA).
    Bar(ProgressBar),
    /// A tracing line every `every` steps.
    Log {
        /// Steps between lines.
        every: usize,
    },
}

impl Progress {
    /// A bar when `bar` is asked for and stderr is a terminal, else log lines every `every` steps.
    pub fn new(bar: bool, total: usize, start: usize, every: usize) -> Self {
        if !(bar && std::io::stderr().is_terminal()) {
            return Progress::Log { every };
        }
        let pb = ProgressBar::new(total as u64);
        let style =
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        pb.set_style(style);
        pb.set_position(start as u64);
        Progress::Bar(pb)
    }

    /// Reports a finished training step.
    pub fn step(&self, step: usize, loss: f64, lr: f64, tokens_per_s: f64) {
        match self {
            Progress::Bar(pb) => {
                pb.set_position(step as u64);
                pb.set_message(format!("loss {loss:.4} lr {lr:.2e} {tokens_per_s:.0} tok/s"));
            }
            Progress::Log { every } => {
                if step.is_multiple_of(*every) {
                    tracing::info!(
                        step,
                        loss = format!("{loss:.4}"),
                        lr = format!("{lr:.3e}"),
                        tokens_per_s = format!("{tokens_per_s:.0}"),
                        "train"
                    );
                }
            }
        }
    }

    /// Reports a validation loss.
    pub fn val(&self, step: usize, loss: f64) {
        match self {
            Progress::Bar(pb) => pb.println(format!("step {step}: val loss {loss:.4}")),
            Progress::Log { .. } => tracing::info!(step, val_loss = format!("{loss:.4}"), "val"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Progress::Bar(pb) = self {
            pb.finish_and_clear();
        }
    }
}
