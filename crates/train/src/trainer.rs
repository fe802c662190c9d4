//! The training loop, in the spirit of nanoGPT's `train.py`:
//! build the task and the model, then for every step — evaluate and checkpoint at the
//! boundaries, draw a batch, forward, backward, clip, AdamW — and write the run directory.
//!
//! Boundary `s` (after `s` updates): evaluate when `s % eval_interval == 0` or at the end,
//! save `best/` on a new best validation loss, save `last/` every `ckpt_interval`, at the end
//! and when asked to stop. A resumed run starts at its checkpoint's boundary, whose work was
//! done before that checkpoint was written, so resumed and straight runs see the same steps.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use attnlab_model::{Checkpoint, DropoutKey, Model, ParamStore};
use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::compute;
use crate::config::RunConfig;
use crate::guard;
use crate::interrupt::{Interrupted, stop_requested};
use crate::lock::RunLock;
use crate::optim::{AdamW, AdamWParams, clip_grads, grad_norm, lr_at};
use crate::outputs::{Writer, check_output};
use crate::progress::Progress;
use crate::resume::{prepare_dir, record_inputs, resume_changes};
use crate::rundir::{
    self, CONFIG_FILE, MetricLine, MetricsWriter, OPTIMIZER_FILE, RunDir, STATE_FILE, Split, Summary,
    TrainerState,
};
use crate::tasks::{AnyTask, TaskEnv};

/// How a run is driven (everything but the config).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Continue the run in the output directory from its `last/` checkpoint.
    pub resume: bool,
    /// Device and hub settings.
    pub env: TaskEnv,
    /// Show a progress bar when stderr is a terminal.
    pub progress_bar: bool,
    /// Stop (save and return [`Interrupted`]) at this step, as Ctrl-C would.
    pub stop_at: Option<usize>,
    /// Accept `--resume` with `train.*` settings that alter the past (printing what changes).
    pub allow_changes: bool,
}

impl TrainOptions {
    /// A fresh run on `device`, no progress bar.
    pub fn new(device: &Device) -> Self {
        Self {
            resume: false,
            env: TaskEnv::on(device),
            progress_bar: false,
            stop_at: None,
            allow_changes: false,
        }
    }
}

/// Trains `run` into `out_dir` and returns the summary (also written to `summary.json`).
/// Stopping early (Ctrl-C, `stop_at`) saves `last/` and returns an [`Interrupted`] error; a
/// NaN or infinite loss, gradient norm or weight returns a [`crate::guard::Diverged`] error.
/// The directory is claimed with a [`RunLock`] for the whole run.
pub fn train(run: &RunConfig, out_dir: &Path, opts: &TrainOptions) -> Result<Summary> {
    let (run, task) = run.build_task(&opts.env)?;
    train_task(run, task, out_dir, opts)
}

/// Like [`train`], with a task built already (`run` is the resolved config that
/// [`RunConfig::build_task`] returned with it).
pub fn train_task(
    run: RunConfig,
    task: Box<AnyTask>,
    out_dir: &Path,
    opts: &TrainOptions,
) -> Result<Summary> {
    if opts.resume && !out_dir.is_dir() {
        bail!("cannot resume {}: no such directory", out_dir.display())
    }
    if run.train.warmup_steps >= run.train.steps {
        // Legal (a run shortened with `--set train.steps=...` keeps its warm-up), but the
        // learning rate then never reaches train.lr: say so.
        tracing::warn!(
            "train.warmup_steps ({}) >= train.steps ({}): the run ends during warm-up, never at train.lr",
            run.train.warmup_steps,
            run.train.steps
        );
    }
    check_output(out_dir, &[], Writer::Train)?;
    let lock = RunLock::try_acquire(out_dir)?;
    train_locked(run, task, &lock, opts)
}

/// Like [`train`], into the run directory that `lock` claims (a sweep claims a run before it
/// checks its plan, then trains it under the same lock; see [`crate::lock`]).
pub fn train_claimed(run: &RunConfig, lock: &RunLock, opts: &TrainOptions) -> Result<Summary> {
    check_output(lock.dir(), &[], Writer::Train)?;
    let (run, task) = run.build_task(&opts.env)?;
    train_locked(run, task, lock, opts)
}

fn train_locked(run: RunConfig, task: Box<AnyTask>, lock: &RunLock, opts: &TrainOptions) -> Result<Summary> {
    let out_dir = lock.dir();
    let dir = RunDir::new(out_dir);
    let resume = prepare_dir(&dir, opts.resume)?;
    let mut s = Session::start(run, task, out_dir, opts, resume)?;
    if s.state.step >= s.run.train.steps && dir.summary_path().exists() {
        return rundir::read_json(&dir.summary_path());
    }
    let result = s.run_loop(opts.stop_at);
    s.progress.finish();
    result?;
    s.finish()
}

/// Mean loss of `model` over the task's fixed validation batches.
pub fn evaluate(task: &AnyTask, model: &Model) -> Result<f64> {
    let batches = task.val_batches();
    let mut total = 0.0;
    for b in batches {
        total += task.loss(model, b)?.to_scalar::<f32>()? as f64;
    }
    Ok(total / batches.len().max(1) as f64)
}

struct Session {
    run: RunConfig,
    run_json: Value,
    dir: PathBuf,
    task: Box<AnyTask>,
    model: Model,
    params: ParamStore,
    opt: AdamW,
    state: TrainerState,
    metrics: MetricsWriter,
    recent: VecDeque<f64>,
    last_val: Option<f64>,
    progress: Progress,
    started: Instant,
    resumed_at: Option<usize>,
}

impl Session {
    fn start(
        run: RunConfig,
        task: Box<AnyTask>,
        dir: &Path,
        opts: &TrainOptions,
        resume: bool,
    ) -> Result<Self> {
        let device = &opts.env.device;
        let (model, params) = Model::init(&run.model, run.seed, device)?;
        let mut opt = AdamW::new(&params, AdamWParams::from_config(&run.train))?;
        let mut state = TrainerState {
            step: 0,
            rng: ChaCha8Rng::seed_from_u64(run.seed),
            best_val_loss: None,
            wall_s: 0.0,
            train_s: 0.0,
            items: 0,
        };
        let mut recent = VecDeque::new();
        let mut resumed_at = None;
        if resume {
            state = restore(&run, dir, &params, &mut opt, opts.allow_changes)?;
            let kept = rundir::truncate_metrics(dir, state.step)?;
            recent.extend(kept.iter().filter(|l| l.split == Split::Train).map(|l| l.loss));
            while recent.len() > 20 {
                recent.pop_front();
            }
            resumed_at = Some(state.step);
            tracing::info!(step = state.step, dir = %dir.display(), "resuming");
        }
        record_inputs(task.as_ref(), &RunDir::new(dir), resume, opts.allow_changes)?;
        let run_json = run.to_value()?;
        rundir::write_json(&rundir::config_path(dir), &run_json)?;
        let metrics = MetricsWriter::open(dir)?;
        let progress = Progress::new(opts.progress_bar, run.train.steps, state.step, run.train.log_interval);
        tracing::info!(params = params.n_params(), task = run.task.name(), metric = %run.model.metric(), "model built");
        Ok(Self {
            run,
            run_json,
            dir: dir.to_path_buf(),
            task,
            model,
            params,
            opt,
            state,
            metrics,
            recent,
            last_val: None,
            progress,
            started: Instant::now(),
            resumed_at,
        })
    }

    fn wall(&self) -> f64 {
        self.state.wall_s + self.started.elapsed().as_secs_f64()
    }

    fn run_loop(&mut self, stop_at: Option<usize>) -> Result<()> {
        let t = self.run.train.clone();
        loop {
            let step = self.state.step;
            let at_end = step >= t.steps;
            let fresh = self.resumed_at != Some(step);
            if fresh && (step.is_multiple_of(t.eval_interval) || at_end) {
                self.eval_boundary(step)?;
            }
            let stop = stop_at == Some(step) || stop_requested();
            if at_end || stop || (fresh && step > 0 && step.is_multiple_of(t.ckpt_interval)) {
                self.save_last()?;
            }
            if at_end {
                return Ok(());
            }
            if stop {
                return Err(Interrupted { step, dir: self.dir.clone() }.into());
            }
            self.train_step(step)?;
        }
    }

    fn train_step(&mut self, step: usize) -> Result<()> {
        let t0 = Instant::now();
        let lr = lr_at(step, &self.run.train);
        let batch = self.task.train_batch(step, &mut self.state.rng, self.run.train.batch_size)?;
        // Dropout masks come from (seed, step, site): nothing to save, exact on resume.
        let model = self.model.training(DropoutKey { seed: self.run.seed, step: step as u64 })?;
        let loss_t = self.task.loss(&model, &batch)?;
        let loss = loss_t.to_scalar::<f32>()? as f64;
        guard::check_number("training loss", loss, step + 1, &self.dir)?;
        let mut grads = loss_t.backward()?;
        let norm = grad_norm(&self.params, &grads)?;
        guard::check_number("gradient norm", norm, step + 1, &self.dir)?;
        clip_grads(&self.params, &mut grads, norm, self.run.train.grad_clip)?;
        self.opt.step(&grads, lr)?;
        // Finite gradients can still overflow the weights (a huge rate): stop before the next
        // step uses them; `Checkpoint::save` refuses them too.
        guard::check_weights(&self.params, step + 1, &self.dir)?;
        let dt = t0.elapsed().as_secs_f64();
        self.state.step = step + 1;
        self.state.train_s += dt;
        self.state.items += batch.n_items as u64;
        self.recent.push_back(loss);
        if self.recent.len() > 20 {
            self.recent.pop_front();
        }
        let tps = batch.n_items as f64 / dt.max(1e-9);
        self.metrics.write(&MetricLine::train(step + 1, loss, lr, norm, tps, self.wall()))?;
        self.progress.step(step + 1, loss, lr, tps);
        Ok(())
    }

    fn eval_boundary(&mut self, step: usize) -> Result<()> {
        let loss = evaluate(self.task.as_ref(), &self.model)?;
        guard::check_number("validation loss", loss, step, &self.dir)?;
        self.last_val = Some(loss);
        let mut line = MetricLine::val(step, loss, self.wall());
        line.extra = self.task.eval_scores(&self.model)?;
        self.metrics.write(&line)?;
        self.progress.val(step, loss);
        if self.state.best_val_loss.is_none_or(|b| loss < b) {
            self.state.best_val_loss = Some(loss);
            let files = self.extra_files(false)?;
            let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
            Checkpoint::save(&rundir::best_dir(&self.dir), &self.run_json, &self.params, &refs)
                .with_context(|| format!("saving the best checkpoint in {}", self.dir.display()))?;
        }
        Ok(())
    }

    fn save_last(&mut self) -> Result<()> {
        let files = self.extra_files(true)?;
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        Checkpoint::save(&rundir::last_dir(&self.dir), &self.run_json, &self.params, &refs)
            .with_context(|| format!("saving checkpoint in {}", self.dir.display()))?;
        tracing::debug!(step = self.state.step, "checkpoint saved");
        Ok(())
    }

    /// The task's files, plus (for `last/`) the optimizer moments and the trainer state.
    fn extra_files(&self, with_state: bool) -> Result<Vec<(String, Vec<u8>)>> {
        let mut files = self.task.checkpoint_files()?;
        if with_state {
            files.push((OPTIMIZER_FILE.to_string(), self.opt.to_bytes()?));
            let mut state = self.state.clone();
            state.wall_s = self.wall();
            files.push((STATE_FILE.to_string(), serde_json::to_vec_pretty(&state)?));
        }
        Ok(files)
    }

    fn finish(&mut self) -> Result<Summary> {
        let steps = self.state.step;
        let final_val_loss = match self.last_val {
            Some(v) => v,
            None => evaluate(self.task.as_ref(), &self.model)?,
        };
        let summary = Summary {
            steps,
            final_train_loss: self.recent.iter().sum::<f64>() / self.recent.len().max(1) as f64,
            final_val_loss,
            best_val_loss: self.state.best_val_loss.unwrap_or(final_val_loss),
            tokens_per_s: self.state.items as f64 / self.state.train_s.max(1e-9),
            wall_s: self.wall(),
            ms_per_step: 1000.0 * self.state.train_s / steps.max(1) as f64,
            metric: self.run.model.metric().name().to_string(),
            seed: self.run.seed,
            compute: self.model.as_gpt().map(|g| compute::of_gpt(g.config(), &self.params, self.state.items)),
            scores: self.task.scores(&self.model)?,
        };
        rundir::write_json(&self.dir.join(rundir::SUMMARY_FILE), &summary)?;
        tracing::info!(
            steps,
            val_loss = format!("{final_val_loss:.4}"),
            tokens_per_s = format!("{:.0}", summary.tokens_per_s),
            "done"
        );
        Ok(summary)
    }
}

/// Loads weights, moments and trainer state of `dir/last`, after checking that its config
/// describes the same model and task as `run`.
fn restore(
    run: &RunConfig,
    dir: &Path,
    params: &ParamStore,
    opt: &mut AdamW,
    allow_changes: bool,
) -> Result<TrainerState> {
    let last = rundir::last_dir(dir);
    let saved_json: Value = rundir::read_json(&last.join(CONFIG_FILE))?;
    let saved = RunConfig::from_value(saved_json).with_context(|| format!("reading {}", last.display()))?;
    let state: TrainerState = rundir::read_json(&last.join(STATE_FILE))?;
    for change in resume_changes(&saved, run, state.step, dir, allow_changes)? {
        tracing::warn!("resuming {} with a change (--allow-changes): {change}", dir.display());
    }
    attnlab_model::checkpoint::load_weights(&last, params)?;
    opt.load(&last.join(OPTIMIZER_FILE))?;
    guard::check_weights(params, state.step, dir)?;
    Ok(state)
}
