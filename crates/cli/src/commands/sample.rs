//! `attnlab sample RUN [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use attnlab_model::checkpoint::TOKENIZER_FILE;
use attnlab_model::{Checkpoint, Sampling, generate_streaming};
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
    let ckpt = Checkpoint::open(&target, &device)?;
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
    // Printed as generated: a long --tokens shows progress, and Ctrl-C keeps what was printed.
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{prompt_text}").and_then(|()| stdout.flush()).context("writing to stdout")?;
    let (mut ids, mut printed) = (Vec::with_capacity(args.tokens), String::new());
    generate_streaming(gpt, &prompt, args.tokens, &sampling, &allowed, |id| {
        ids.push(id);
        let text = tokenizer.decode(&ids).map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
        // Byte-level BPE: a character split over tokens decodes as U+FFFD until it is whole.
        if let Some(new) = text.strip_prefix(printed.as_str()) {
            let whole = new.trim_end_matches('\u{FFFD}');
            write!(stdout, "{whole}").and_then(|()| stdout.flush()).map_err(candle_core::Error::wrap)?;
            printed.push_str(whole);
        }
        Ok(())
    })
    .context("generating")?;
    // Whatever a last split character left unprinted, and the final newline.
    let text = tokenizer.decode(&ids)?;
    let rest = text.strip_prefix(printed.as_str()).unwrap_or("");
    writeln!(stdout, "{rest}").context("writing to stdout")?;
    Ok(())
}

fn load_tokenizer(dir: &Path) -> Result<TextTokenizer> {
    let path = dir.join(TOKENIZER_FILE);
    if !path.is_file() {
        bail!("{} has no {TOKENIZER_FILE}: sampling needs a model trained on a text task", dir.display())
    }
    TextTokenizer::from_file(&path)
}
