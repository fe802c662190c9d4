//! Tokenizers of the text task, all in the Hugging Face `tokenizer.json` format (so Python's
//! `tokenizers` loads them too): character level, byte-level BPE trained on the corpus, or a
//! given `tokenizer.json` (local or on the Hub).
//!
//! The character tokenizer is a `WordLevel` model whose vocabulary is the corpus's characters,
//! a `Split` pre-tokenizer that isolates every character (`[\s\S]`), and a `Fuse` decoder
//! that joins the pieces without spaces. Its declared unknown token [`UNK_TOKEN`] is in the
//! vocabulary, after the characters (so other programs encode unseen characters to it), and is
//! never sampled (see [`TextTokenizer::decodable_ids`]).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Error, Result, anyhow, bail};
use attnlab_model::hub::{HubOptions, HubRef, fetch};
use tokenizers::Tokenizer;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

/// The unknown token of the character-level tokenizer: the id after the corpus's characters.
pub const UNK_TOKEN: &str = "<unk>";

/// A tokenizer with a fast path for the character level.
///
/// Token ids are the user's: Hugging Face's loader renumbers an added token whose id lies past
/// the model's vocabulary (40 becomes 10 when the vocabulary has 10 entries), so the ids the
/// file gives are kept in a map and translated on the way in and out, and the file's own text
/// is what a checkpoint saves.
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Character -> id, for character-level tokenizers (encoding a large corpus char by char).
    chars: Option<HashMap<char, u32>>,
    /// The `tokenizer.json` text saved with checkpoints.
    json: String,
    /// Loader id -> the file's id, for added tokens the loader renumbered.
    to_user: HashMap<u32, u32>,
    /// The file's id -> loader id (inverse of `to_user`).
    from_user: HashMap<u32, u32>,
    /// The id of a character-level tokenizer's unknown token, when its vocabulary has it.
    unk: Option<u32>,
}

impl TextTokenizer {
    /// A character-level tokenizer over the distinct characters of `text` (sorted, ids 0..n),
    /// with [`UNK_TOKEN`] as id n.
    pub fn char_level(text: &str) -> Result<Self> {
        let set: BTreeSet<char> = text.chars().collect();
        let mut vocab: serde_json::Map<String, serde_json::Value> =
            set.iter().enumerate().map(|(i, c)| (c.to_string(), serde_json::Value::from(i))).collect();
        vocab.insert(UNK_TOKEN.to_string(), serde_json::Value::from(set.len()));
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": false},
            "post_processor": null,
            "decoder": {"type": "Fuse"},
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK_TOKEN}
        });
        Self::from_json(&json.to_string())
    }

    /// A byte-level BPE tokenizer with `vocab_size` entries trained on the file `corpus` (read
    /// as a corpus: a leading byte-order mark is dropped).
    pub fn train_bpe(corpus: &Path, vocab_size: usize) -> Result<Self> {
        let text = super::corpus::read_corpus(corpus)?;
        Self::train_bpe_on(&text, vocab_size).with_context(|| format!("training BPE on {}", corpus.display()))
    }

    /// A byte-level BPE tokenizer with `vocab_size` entries trained on `text`.
    pub fn train_bpe_on(text: &str, vocab_size: usize) -> Result<Self> {
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
        tokenizer.train(&mut trainer, text.split_inclusive('\n')).map_err(Error::from_boxed)?;
        let json =
            tokenizer.to_string(true).map_err(Error::from_boxed).context("serialising the tokenizer")?;
        Self::from_json(&json)
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

    /// Parses the JSON of a `tokenizer.json`; the ids it gives are kept (see [`TextTokenizer`]).
    pub fn from_json(json: &str) -> Result<Self> {
        // Syntax first: the tokenizers loader panics on some malformed files instead of erroring.
        serde_json::from_str::<serde_json::Value>(json)
            .map_err(|e| anyhow!("invalid tokenizer.json: {e}"))?;
        let parsed = std::panic::catch_unwind(|| json.parse::<Tokenizer>());
        let inner = match parsed {
            Ok(result) => result.map_err(Error::from_boxed).context("invalid tokenizer.json")?,
            Err(_) => bail!("invalid tokenizer.json: the tokenizers library could not read its structure"),
        };
        let chars = char_vocab(&inner);
        let (to_user, from_user) = added_id_map(json, &inner)?;
        let unk = chars.as_ref().and_then(|_| inner.token_to_id(UNK_TOKEN));
        Ok(Self { inner, chars, json: json.to_string(), to_user, from_user, unk })
    }

    /// Number of ids a model needs: the largest id + 1 (ids may have holes).
    pub fn vocab_size(&self) -> usize {
        let ids = self.inner.get_vocab(true).into_values().map(|id| self.user_id(id));
        ids.max().map_or(0, |m| m as usize + 1)
    }

    /// For each id below `n`, whether the tokenizer can decode it (holes and ids past the
    /// vocabulary cannot be, nor the character level's unknown token): the mask a sampler
    /// applies so no such id reaches the text.
    pub fn decodable_ids(&self, n: usize) -> Vec<bool> {
        let mut mask = vec![false; n];
        for id in self.inner.get_vocab(true).into_values().map(|id| self.user_id(id)) {
            if let Some(slot) = mask.get_mut(id as usize) {
                *slot = true;
            }
        }
        if let Some(slot) = self.unk.and_then(|id| mask.get_mut(id as usize)) {
            *slot = false;
        }
        mask
    }

    fn user_id(&self, id: u32) -> u32 {
        self.to_user.get(&id).copied().unwrap_or(id)
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
            ids.extend(enc.get_ids().iter().map(|&id| self.user_id(id)));
        }
        Ok(ids)
    }

    /// Text of token ids; an id the tokenizer cannot decode is an error naming it.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let inner: Vec<u32> = ids.iter().map(|id| self.from_user.get(id).copied().unwrap_or(*id)).collect();
        for (&user, id) in ids.iter().zip(&inner) {
            if self.inner.id_to_token(*id).is_none()
                || (self.to_user.contains_key(id) && !self.from_user.contains_key(&user))
            {
                bail!("token id {user} is not in the tokenizer's vocabulary")
            }
        }
        self.inner.decode(&inner, false).map_err(Error::from_boxed).context("decoding")
    }

    /// The `tokenizer.json` text (the file's own text for a loaded tokenizer, so its ids stay).
    pub fn to_json(&self) -> Result<String> {
        Ok(self.json.clone())
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

/// The added tokens whose id in the file differs from the loader's: (loader -> file, file -> loader).
fn added_id_map(json: &str, tok: &Tokenizer) -> Result<(HashMap<u32, u32>, HashMap<u32, u32>)> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| anyhow!("invalid tokenizer.json: {e}"))?;
    let (mut to_user, mut from_user) = (HashMap::new(), HashMap::new());
    let added = value.get("added_tokens").and_then(|a| a.as_array()).cloned().unwrap_or_default();
    for token in added {
        let (Some(content), Some(file_id)) =
            (token.get("content").and_then(|c| c.as_str()), token.get("id").and_then(|i| i.as_u64()))
        else {
            continue;
        };
        let file_id = u32::try_from(file_id)
            .map_err(|_| anyhow!("added token {content:?}: id {file_id} is too large"))?;
        let Some(loaded) = tok.token_to_id(content) else { continue };
        if loaded != file_id {
            if tok.id_to_token(file_id).is_some_and(|t| t != content) {
                bail!("added token {content:?} has id {file_id}, which the vocabulary gives to another token")
            }
            to_user.insert(loaded, file_id);
            from_user.insert(file_id, loaded);
        }
    }
    Ok((to_user, from_user))
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
