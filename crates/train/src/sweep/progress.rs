//! What a sweep shows while it runs: on a terminal, one bar per running job plus the sweep's
//! total (runs done / planned, elapsed, estimate) with indicatif's `MultiProgress`; otherwise a
//! plain log line when a run starts or ends.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Outcome;

/// The sweep's progress display.
pub struct SweepProgress {
    planned: usize,
    done: usize,
    started: Instant,
    bars: Option<(MultiProgress, ProgressBar)>,
    jobs: HashMap<String, ProgressBar>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl SweepProgress {
    /// A display for `planned` runs: bars when stderr is a terminal, else log lines.
    pub fn new(planned: usize) -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::new();
            let total = multi.add(ProgressBar::new(planned as u64));
            total.set_style(style("sweep {bar:30} {pos}/{len} runs [{elapsed_precise} < {msg}]"));
            total.set_message("?");
            (multi, total)
        });
        Self { planned, done: 0, started: Instant::now(), bars, jobs: HashMap::new() }
    }

    /// Estimated time left, from the runs done and the fraction of the running ones.
    fn estimate(&self, partial: f64) -> Option<Duration> {
        let progress = self.done as f64 + partial;
        (progress > 0.0).then(|| {
            let left = (self.planned as f64 - progress).max(0.0);
            Duration::from_secs_f64(self.started.elapsed().as_secs_f64() * left / progress)
        })
    }

    fn totals(&self, partial: f64) -> String {
        let eta = self.estimate(partial).map(|d| format!("{:.0} s", d.as_secs_f64())).unwrap_or("?".into());
        format!(
            "{}/{} runs done, {:.0} s elapsed, about {eta} left",
            self.done,
            self.planned,
            self.started.elapsed().as_secs_f64()
        )
    }

    /// A run started (`steps` optimiser steps planned).
    pub fn start(&mut self, name: &str, steps: usize) {
        match &self.bars {
            Some((multi, _)) => {
                let bar = multi.add(ProgressBar::new(steps as u64));
                bar.set_style(style("  {bar:30} {pos}/{len} {msg}"));
                bar.set_message(name.to_string());
                self.jobs.insert(name.to_string(), bar);
            }
            None => tracing::info!(run = name, "{} (starting)", self.totals(0.0)),
        }
    }

    /// The running runs' steps so far (`name -> (step, steps)`), for the bars and the estimate.
    pub fn update(&mut self, steps: &[(String, usize, usize)]) {
        let partial: f64 = steps.iter().map(|(_, s, n)| *s as f64 / (*n).max(1) as f64).sum();
        if let Some((_, total)) = &self.bars {
            for (name, step, _) in steps {
                if let Some(bar) = self.jobs.get(name) {
                    bar.set_position(*step as u64);
                }
            }
            let eta =
                self.estimate(partial).map(|d| format!("{:.0}s", d.as_secs_f64())).unwrap_or("?".into());
            total.set_message(eta);
        }
    }

    /// A run ended with `outcome`.
    pub fn finish(&mut self, name: &str, outcome: &Outcome) {
        self.done += 1;
        let what = match outcome {
            Outcome::Skipped => "already finished".to_string(),
            Outcome::Resumed => "resumed and finished".to_string(),
            Outcome::Trained => "trained".to_string(),
            Outcome::Failed { failure } => failure.line(),
            Outcome::Busy { holder } => {
                format!("left alone: claimed by {}", holder.as_deref().unwrap_or("another process"))
            }
        };
        match &self.bars {
            Some((multi, total)) => {
                if let Some(bar) = self.jobs.remove(name) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                total.set_position(self.done as u64);
                let _ = multi.println(format!("{name}: {what}"));
            }
            None => tracing::info!(run = name, "{what}; {}", self.totals(0.0)),
        }
    }

    /// Removes the bars.
    pub fn close(&self) {
        if let Some((multi, total)) = &self.bars {
            total.finish_and_clear();
            let _ = multi.clear();
        }
    }
}
