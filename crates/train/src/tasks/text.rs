//! `text`: next-token prediction on a corpus (nanoGPT's setting).
//!
//! The corpus is tokenized once, split 90/10 (by default) into training and validation tokens;
//! a batch is `batch_size` random windows of `block_size + 1` tokens, inputs the first
//! `block_size`, targets the last. The validation batches are drawn once from a fixed seed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use attnlab_model::hub::{HubOptions, HubRef, fetch};
use attnlab_model::{Model, ModelConfig};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::corpus::read_corpus;
use super::loss::batch_loss;
use super::models::{fill_at_least, gpt_config, gpt_config_mut, gpt_of};
use super::report::{Column, FINAL_VAL_LOSS, Margin, Source, TaskReport, Threshold, Unit, nats_to_bits};
use super::tokenizer::{TextTokenizer, check_bpe_vocab};
use crate::task::{Batch, Task, TaskContext, TaskName, TaskSpec};

fn default_tokenizer() -> String {
    "char".to_string()
}
fn default_val_fraction() -> f64 {
    0.1
}
fn default_bpe_vocab_size() -> usize {
    512
}

/// `[task]` of kind `text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Corpus: a path (relative to the working directory) or `hub:datasets/owner/repo[@rev]`.
    pub corpus: String,
    /// The file inside the Hub repository (required for a `hub:` corpus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus_file: Option<String>,
    /// `char`, `bpe` (trained on the corpus), a path to a `tokenizer.json`, or `hub:owner/repo[@rev]`.
    #[serde(default = "default_tokenizer")]
    pub tokenizer: String,
    /// Vocabulary size of a trained BPE tokenizer.
    #[serde(default = "default_bpe_vocab_size")]
    pub bpe_vocab_size: usize,
    /// Fraction of the tokens (at the end of the corpus) held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
}

/// What `task.tokenizer` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// `char`: one token per character of the corpus.
    Char,
    /// `bpe`: byte-level BPE trained on the corpus.
    Bpe,
    /// `hub:owner/repo[@rev]`: a `tokenizer.json` on the Hub.
    Hub,
    /// Anything else: a path to a `tokenizer.json`.
    File,
}

impl TokenizerKind {
    /// The kind of a `task.tokenizer` value.
    pub fn of(tokenizer: &str) -> Self {
        match tokenizer {
            "char" => Self::Char,
            "bpe" => Self::Bpe,
            t if t.starts_with("hub:") => Self::Hub,
            _ => Self::File,
        }
    }
}

/// Scores of a text run: validation cross-entropy in bits per character (character-level
/// tokenizer) or per token (any other), and the vocabulary size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextScores {
    /// Bits per character, for a character-level tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_bpc: Option<f64>,
    /// Bits per token, for any other tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_bits_per_token: Option<f64>,
    /// Token ids of the tokenizer.
    pub vocab_size: usize,
}

impl TextConfig {
    /// Whether the tokenizer is character-level (a token is a character), from its kind.
    pub fn char_level(&self) -> bool {
        TokenizerKind::of(&self.tokenizer) == TokenizerKind::Char
    }
}

impl TaskSpec for TextConfig {
    type Task = TextTask;

    /// The report: losses, bits per character (or token), cost; character-level runs leave the
    /// plateau at a validation loss below 2 nats.
    fn report(&self) -> TaskReport {
        let (header, unit) = match self.char_level() {
            true => ("bits/char", Unit::BitsPerChar),
            false => ("bits/token", Unit::BitsPerToken),
        };
        let bits = Column {
            key: "bits_per_token",
            header,
            unit,
            higher_is_better: false,
            digits: 3,
            source: Source::BitsFromNats(FINAL_VAL_LOSS),
            // The loss margin, ±0.02 nats, in bits.
            margin: Some(Margin::Absolute(0.02 / std::f64::consts::LN_2)),
            question: None,
        };
        let report = TaskReport::of(&[bits], true, Vec::new()).with_char_level(self.char_level());
        match self.char_level() {
            // Below the bigram level of English characters (about 2.5 nats).
            true => report.with_threshold(Threshold::LossBelow(2.0)),
            false => report,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.corpus.trim().is_empty() {
            bail!("task.corpus must name a file or a hub:datasets/... reference")
        }
        if self.corpus.starts_with("hub:") && self.corpus_file.is_none() {
            bail!("task.corpus_file must name the file inside the hub repository {}", self.corpus)
        }
        if !(self.val_fraction.is_finite() && self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            bail!("task.val_fraction must be between 0 and 1 (exclusive), got {}", self.val_fraction)
        }
        if self.tokenizer == "bpe" {
            check_bpe_vocab(self.bpe_vocab_size)?;
        }
        Ok(())
    }

    fn build(&self, cx: &TaskContext) -> Result<TextTask> {
        let block = gpt_config(cx.model, Self::NAME)?.block_size;
        let (b, e, seed, env) = (cx.batch_size, cx.eval_batches, cx.seed, cx.env);
        TextTask::new(self, block, b, e, seed, &env.device, &env.hub)
    }
}

/// The text task: tokenized corpus, split, and fixed validation batches.
pub struct TextTask {
    tokenizer: TextTokenizer,
    /// SHA-256 of the corpus text (after a byte-order mark is dropped).
    corpus_sha256: String,
    train: Vec<u32>,
    block_size: usize,
    val: Vec<Batch>,
    device: Device,
}

impl TextTask {
    /// Reads the corpus, builds the tokenizer, splits and tokenizes; `block_size` is the
    /// model's context, `eval_batches` x `batch_size` windows form the validation set.
    pub fn new(
        cfg: &TextConfig,
        block_size: usize,
        batch_size: usize,
        eval_batches: usize,
        seed: u64,
        device: &Device,
        hub: &HubOptions,
    ) -> Result<Self> {
        if block_size == 0 {
            bail!("model.block_size must be set (at least 1) for the {} task", TextConfig::NAME)
        }
        let path = corpus_path(cfg, hub)?;
        let text = read_corpus(&path)?;
        let tokenizer = build_tokenizer(cfg, &text, &path, hub)?;
        let ids = tokenizer.encode(&text).with_context(|| format!("tokenizing corpus {}", path.display()))?;
        // nanoGPT's split: the first int(n * 0.9) tokens train, the rest validate.
        let n_train = ((ids.len() as f64) * (1.0 - cfg.val_fraction)).floor() as usize;
        let (train, val) = ids.split_at(n_train.min(ids.len()));
        for (split, toks) in [("training", train), ("validation", val)] {
            if toks.len() < block_size + 1 {
                bail!(
                    "corpus {} is too short: its {split} split has {} tokens, but model.block_size {block_size} needs at least {}",
                    path.display(),
                    toks.len(),
                    block_size + 1
                )
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7A1D_BA7C);
        let val = (0..eval_batches)
            .map(|_| windows(val, block_size, batch_size, &mut rng, device))
            .collect::<Result<Vec<_>>>()?;
        let corpus_sha256 = sha256_hex(text.as_bytes());
        Ok(Self { tokenizer, corpus_sha256, train: train.to_vec(), block_size, val, device: device.clone() })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Number of training tokens.
    pub fn n_train_tokens(&self) -> usize {
        self.train.len()
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn corpus_path(cfg: &TextConfig, hub: &HubOptions) -> Result<PathBuf> {
    match HubRef::parse(&cfg.corpus) {
        Some(r) => {
            let r = r.context("task.corpus")?;
            let file = cfg.corpus_file.as_deref().context("task.corpus_file must be set for a hub corpus")?;
            fetch(&r, file, hub).context("task.corpus")
        }
        None => Ok(PathBuf::from(&cfg.corpus)),
    }
}

fn build_tokenizer(cfg: &TextConfig, text: &str, corpus: &Path, hub: &HubOptions) -> Result<TextTokenizer> {
    let name = cfg.tokenizer.as_str();
    match TokenizerKind::of(name) {
        TokenizerKind::Char => TextTokenizer::char_level(text),
        // The text as read (byte-order mark dropped), not the file: a BOM is not text.
        TokenizerKind::Bpe => TextTokenizer::train_bpe_on(text, cfg.bpe_vocab_size)
            .with_context(|| format!("training BPE on {}", corpus.display())),
        TokenizerKind::Hub => match HubRef::parse(name) {
            Some(r) => TextTokenizer::from_hub(&r?, hub),
            None => bail!("`{name}` is not a hub reference"),
        },
        TokenizerKind::File => TextTokenizer::from_file(Path::new(name)),
    }
    .context("task.tokenizer")
}

/// `batch_size` random windows of `tokens`: inputs `(b, t)` and next-token targets `(b, t)`.
fn windows(tokens: &[u32], t: usize, b: usize, rng: &mut ChaCha8Rng, device: &Device) -> Result<Batch> {
    let mut x = Vec::with_capacity(b * t);
    let mut y = Vec::with_capacity(b * t);
    for _ in 0..b {
        let start = rng.random_range(0..tokens.len() - t);
        x.extend_from_slice(&tokens[start..start + t]);
        y.extend_from_slice(&tokens[start + 1..start + t + 1]);
    }
    Ok(Batch {
        inputs: vec![Tensor::from_vec(x, (b, t), device)?],
        targets: Tensor::from_vec(y, (b, t), device)?,
        weights: None,
        n_items: b * t,
    })
}

impl Task for TextTask {
    type Scores = TextScores;

    fn configure_model(&self, model: &mut ModelConfig) -> Result<()> {
        let g = gpt_config_mut(model, TextConfig::NAME)?;
        let v = self.tokenizer.vocab_size();
        fill_at_least("vocab_size", &mut g.vocab_size, v, &format!("the tokenizer's {v} tokens"))?;
        Ok(())
    }

    fn train_batch(&mut self, _step: usize, rng: &mut ChaCha8Rng, batch_size: usize) -> Result<Batch> {
        windows(&self.train, self.block_size, batch_size, rng, &self.device)
    }

    fn val_batches(&self) -> &[Batch] {
        &self.val
    }

    fn loss(&self, model: &Model, batch: &Batch) -> Result<Tensor> {
        let logits = gpt_of(model, TextConfig::NAME)?.forward(&batch.inputs[0])?;
        Ok(batch_loss(&logits, batch)?)
    }

    fn scores(&self, model: &Model) -> Result<TextScores> {
        let mut total = 0.0;
        for b in &self.val {
            total += self.loss(model, b)?.to_scalar::<f32>()? as f64;
        }
        let bits = nats_to_bits(total / self.val.len().max(1) as f64);
        let char_level = self.tokenizer.is_char_level();
        Ok(TextScores {
            val_bpc: char_level.then_some(bits),
            val_bits_per_token: (!char_level).then_some(bits),
            vocab_size: self.tokenizer.vocab_size(),
        })
    }

    fn inputs(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("corpus_sha256".into(), Value::from(self.corpus_sha256.clone()));
        if let Ok(json) = self.tokenizer.to_json() {
            m.insert("tokenizer_sha256".into(), Value::from(sha256_hex(json.as_bytes())));
        }
        m
    }

    fn checkpoint_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let json = self.tokenizer.to_json()?;
        Ok(vec![(attnlab_model::checkpoint::TOKENIZER_FILE.to_string(), json.into_bytes())])
    }
}
