//! `attnlab sample RUN [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use attnlab_model::checkpoint::TOKENIZER_FILE;
use attnlab_model::{Checkpoint, Sampling, generate_masked};
use attnlab_train::RunDir;
use attnlab_train::tasks::tokenizer::TextTokenizer;
use candle_core::Device;
use clap::Args;

/// Arguments of `attnlab sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Run directory, checkpoint directory (e.g. RUN/best) or hub:owner/repo.
    pub run: PathBuf,
    /// Text to continue (default: a newline, when the vocabulary has one).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Number of tokens to generate.
    #[arg(long, default_value_t = 500)]
    pub tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Keep only the K most likely tokens (0 keeps all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
}

/// Loads the checkpoint and its tokenizer, generates, prints prompt + continuation.
pub fn run(args: SampleArgs) -> Result<()> {
    let device = Device::cuda_if_available(0)?;
    // A run directory's checkpoint, else the argument itself (a checkpoint directory or hub:).
    let target = RunDir::new(&args.run).checkpoint_dir().unwrap_or_else(|| args.run.clone());
    let ckpt =
        Checkpoint::load(&target, &device).with_context(|| format!("loading {}", args.run.display()))?;
    ckpt.ensure_finite()?;
    let tokenizer = load_tokenizer(&ckpt.dir)?;
    let gpt = ckpt.model.as_gpt().context("sampling needs a GPT checkpoint")?;
    let prompt_text = args.prompt.clone().unwrap_or_else(|| "\n".to_string());
    let prompt = match (&args.prompt, tokenizer.encode(&prompt_text)) {
        (_, Ok(ids)) => ids,
        (Some(_), Err(e)) => return Err(e.context("encoding --prompt")),
        (None, Err(_)) => bail!(
            "the default prompt (a newline) is not in this model's vocabulary ({}); give one with --prompt TEXT",
            ckpt.dir.join(TOKENIZER_FILE).display()
        ),
    };
    if prompt.is_empty() {
        bail!("--prompt encodes to no tokens; give some text")
    }
    let sampling = Sampling {
        temperature: args.temperature,
        top_k: (args.top_k > 0).then_some(args.top_k),
        seed: args.seed,
    };
    let allowed = tokenizer.decodable_ids(gpt.config().vocab_size);
    let ids = generate_masked(gpt, &prompt, args.tokens, &sampling, &allowed).context("generating")?;
    println!("{prompt_text}{}", tokenizer.decode(&ids)?);
    Ok(())
}

fn load_tokenizer(dir: &Path) -> Result<TextTokenizer> {
    let path = dir.join(TOKENIZER_FILE);
    if !path.is_file() {
        bail!("{} has no {TOKENIZER_FILE}: sampling needs a model trained on a text task", dir.display())
    }
    TextTokenizer::from_file(&path)
}
