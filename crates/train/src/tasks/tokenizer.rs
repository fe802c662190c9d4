//! Tokenizers of the text task, all in the Hugging Face `tokenizer.json` format (so Python's
//! `tokenizers` loads them too): character level, byte-level BPE trained on the corpus, or a
//! given `tokenizer.json` (local or on the Hub).
//!
//! The character tokenizer is a `WordLevel` model whose vocabulary is the corpus's characters,
//! a `Split` pre-tokenizer that isolates every character (`[\s\S]`), and a `Fuse` decoder
//! that joins the pieces without spaces.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Error, Result, anyhow, bail};
use attnlab_model::hub::{HubOptions, HubRef, fetch};
use tokenizers::Tokenizer;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

/// A tokenizer with a fast path for the character level.
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Character -> id, for character-level tokenizers (encoding a large corpus char by char).
    chars: Option<HashMap<char, u32>>,
}

impl TextTokenizer {
    /// A character-level tokenizer over the distinct characters of `text` (sorted).
    pub fn char_level(text: &str) -> Result<Self> {
        let set: BTreeSet<char> = text.chars().collect();
        let vocab: serde_json::Map<String, serde_json::Value> =
            set.iter().enumerate().map(|(i, c)| (c.to_string(), serde_json::Value::from(i))).collect();
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": false},
            "post_processor": null,
            "decoder": {"type": "Fuse"},
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
        });
        Self::from_json(&json.to_string())
    }

    /// A byte-level BPE tokenizer with `vocab_size` entries trained on the file `corpus`.
    pub fn train_bpe(corpus: &Path, vocab_size: usize) -> Result<Self> {
        let mut tokenizer = Tokenizer::new(BPE::default());
        tokenizer.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(0)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut trainer = TrainerWrapper::BpeTrainer(trainer);
        let file = corpus.to_string_lossy().into_owned();
        tokenizer
            .train_from_files(&mut trainer, vec![file])
            .map_err(Error::from_boxed)
            .with_context(|| format!("training BPE on {}", corpus.display()))?;
        Ok(Self { inner: tokenizer, chars: None })
    }

    /// Loads a `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("loading tokenizer {}", path.display()))
    }

    /// Loads `tokenizer.json` from a Hub repository (`hub:owner/repo[@rev]`).
    pub fn from_hub(reference: &HubRef, opts: &HubOptions) -> Result<Self> {
        let path = fetch(reference, "tokenizer.json", opts)?;
        Self::from_file(&path)
    }

    /// Parses the JSON of a `tokenizer.json`.
    pub fn from_json(json: &str) -> Result<Self> {
        let inner: Tokenizer = json.parse().map_err(Error::from_boxed).context("invalid tokenizer.json")?;
        let chars = char_vocab(&inner);
        Ok(Self { inner, chars })
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Whether this is the character-level tokenizer (one token per character).
    pub fn is_char_level(&self) -> bool {
        self.chars.is_some()
    }

    /// Token ids of `text`; a character the vocabulary lacks is an error naming it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if let Some(map) = &self.chars {
            return text
                .chars()
                .map(|c| {
                    map.get(&c).copied().ok_or_else(|| anyhow!("character {c:?} is not in the vocabulary"))
                })
                .collect();
        }
        let mut ids = Vec::with_capacity(text.len() / 3);
        for chunk in chunks(text, 1 << 16) {
            let enc = self.inner.encode(chunk, false).map_err(Error::from_boxed).context("tokenizing")?;
            ids.extend_from_slice(enc.get_ids());
        }
        Ok(ids)
    }

    /// Text of token ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(Error::from_boxed).context("decoding")
    }

    /// The Hugging Face `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(true).map_err(Error::from_boxed).context("serialising the tokenizer")
    }

    /// The wrapped Hugging Face tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// For a WordLevel tokenizer whose vocabulary is single characters split one by one, the map
/// character -> id; `None` for any other tokenizer.
fn char_vocab(tok: &Tokenizer) -> Option<HashMap<char, u32>> {
    let json: serde_json::Value = serde_json::from_str(&tok.to_string(false).ok()?).ok()?;
    let is_char = json.pointer("/model/type")?.as_str()? == "WordLevel"
        && json.pointer("/pre_tokenizer/pattern/Regex")?.as_str()? == "[\\s\\S]";
    if !is_char {
        return None;
    }
    let mut map = HashMap::new();
    for (tok, id) in tok.get_vocab(false) {
        let mut it = tok.chars();
        if let (Some(c), None) = (it.next(), it.next()) {
            map.insert(c, id);
        }
    }
    Some(map)
}

/// Splits `text` into pieces of about `size` bytes that end after a newline (or at the end).
fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > size {
        let cut = match rest.as_bytes()[size..].iter().position(|&b| b == b'\n') {
            Some(i) => size + i + 1,
            None => rest.len(),
        };
        let (a, b) = rest.split_at(cut);
        out.push(a);
        rest = b;
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Checks a BPE vocabulary size (the byte alphabet alone has 256 entries).
pub fn check_bpe_vocab(vocab_size: usize) -> Result<()> {
    if vocab_size <= 256 {
        bail!("task.bpe_vocab_size must be more than 256 (the byte alphabet), got {vocab_size}")
    }
    Ok(())
}
