//! `attnlab train CONFIG.toml [--set key=value]... [--out DIR] [--resume DIR]`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use attnlab_train::{Interrupted, RunConfig, TrainOptions, interrupt, rundir};
use candle_core::Device;
use clap::Args;

/// Arguments of `attnlab train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run config (TOML). May be left out with --resume: the run's own config.json is used.
    pub config: Option<PathBuf>,
    /// Dotted override, e.g. `--set model.metric=idw --set train.steps=500` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output run directory (default: checkpoints/<name or config file stem>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// With --resume: accept `--set` changes that alter the run's past (learning rate,
    /// schedule length, batch size, ...), printing each; without it they are refused.
    /// To add steps without changing the schedule, also set train.lr_decay_steps to the old steps.
    #[arg(long, requires = "resume")]
    pub allow_changes: bool,
}

/// Trains; Ctrl-C saves the last checkpoint and exits with an error naming it.
pub fn run(args: TrainArgs) -> Result<()> {
    let run = load_config(&args)?;
    let out = match (&args.resume, &args.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir.clone(),
        (None, None) => default_out(&run, args.config.as_deref())?,
    };
    interrupt::install_handler()?;
    let device = Device::cuda_if_available(0)?;
    let mut opts = TrainOptions::new(&device);
    opts.resume = args.resume.is_some();
    opts.allow_changes = args.allow_changes;
    opts.progress_bar = true;
    tracing::info!(out = %out.display(), "training");
    match attnlab_train::train(&run, &out, &opts) {
        Ok(s) => {
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(())
        }
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => Err(e),
        Err(e) => Err(e.context(format!("training run {}", out.display()))),
    }
}

fn load_config(args: &TrainArgs) -> Result<RunConfig> {
    match (&args.config, &args.resume) {
        (Some(path), _) => RunConfig::load(path, &args.set),
        (None, Some(dir)) => {
            let path = rundir::config_path(dir);
            let mut value: serde_json::Value = rundir::read_json(&path)
                .with_context(|| format!("{} is not a run directory", dir.display()))?;
            attnlab_train::config::apply_overrides(&mut value, &args.set)?;
            RunConfig::from_value(value).with_context(|| format!("in {}", path.display()))
        }
        (None, None) => bail!("give a run config (CONFIG.toml) or --resume DIR"),
    }
}

fn default_out(run: &RunConfig, config: Option<&Path>) -> Result<PathBuf> {
    let name = match (&run.name, config.and_then(|c| c.file_stem())) {
        (Some(n), _) => n.clone(),
        (None, Some(stem)) => stem.to_string_lossy().into_owned(),
        (None, None) => bail!("the run has no name; give --out"),
    };
    Ok(PathBuf::from("checkpoints").join(name))
}
