//! Tokenizers: character level and BPE round trips, the saved `tokenizer.json` reloads to the
//! same ids, and the character fast path agrees with the Hugging Face tokenizer.

use crate::common;

use std::str::FromStr;

use attnlab_train::tasks::tokenizer::TextTokenizer;

const SAMPLE: &str = "Hello, world!\nA line with  two spaces,\ttabs, and ünïcödé — ok?\n\n";

#[test]
fn char_level_round_trip_and_reload() -> anyhow::Result<()> {
    let tok = TextTokenizer::char_level(SAMPLE)?;
    let distinct: std::collections::BTreeSet<char> = SAMPLE.chars().collect();
    // The characters, then the declared unknown token.
    assert_eq!(tok.vocab_size(), distinct.len() + 1);
    let ids = tok.encode(SAMPLE)?;
    assert_eq!(ids.len(), SAMPLE.chars().count());
    assert_eq!(tok.decode(&ids)?, SAMPLE);
    // The Hugging Face path (pre-tokenizer + WordLevel) gives the same ids as the fast path.
    let hf = tok.inner().encode(SAMPLE, false).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(hf.get_ids(), ids.as_slice());
    // Saved and reloaded, it is the same tokenizer.
    let json = tok.to_json()?;
    let back = TextTokenizer::from_json(&json)?;
    assert!(back.is_char_level());
    assert_eq!(back.encode(SAMPLE)?, ids);
    assert!(json.contains("\"WordLevel\"") && json.contains("\"Fuse\""));
    let unknown = tok.encode("xyz#").expect_err("unknown characters are errors");
    assert!(format!("{unknown:#}").contains("not in the vocabulary"));
    Ok(())
}

/// Case 51: the declared unknown token exists, so the Hugging Face tokenizer (what Python's
/// `Tokenizer.from_file` runs) encodes an unseen character to it, and it is never sampled.
#[test]
fn char_level_unknown_token_exists_and_is_never_sampled() -> anyhow::Result<()> {
    let tok = TextTokenizer::char_level("abc")?;
    let json: serde_json::Value = serde_json::from_str(&tok.to_json()?)?;
    let unk = json["model"]["unk_token"].as_str().expect("an unk_token is declared");
    assert_eq!(json["model"]["vocab"][unk], 3, "declared and in the vocabulary, after the characters");
    let reloaded = tokenizers::Tokenizer::from_str(&tok.to_json()?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let enc = reloaded.encode("café", false).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(enc.get_ids(), &[2, 0, 3, 3], "c a f é: f and é are unseen");
    assert_eq!(tok.decodable_ids(4), vec![true, true, true, false], "the sampler never draws <unk>");
    Ok(())
}

#[test]
fn bpe_round_trip_and_reload() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let text = common::generated_text(20_000) + SAMPLE;
    let path = common::write_file(dir.path(), "corpus.txt", text.as_bytes());
    let tok = TextTokenizer::train_bpe(&path, 300)?;
    assert!(!tok.is_char_level());
    assert!(tok.vocab_size() <= 300 && tok.vocab_size() > 256, "vocab {}", tok.vocab_size());
    let ids = tok.encode(&text)?;
    assert!(ids.len() < text.len() / 2, "BPE merges nothing: {} ids for {} bytes", ids.len(), text.len());
    assert_eq!(tok.decode(&ids)?, text);
    let file = common::write_file(dir.path(), "tokenizer.json", tok.to_json()?.as_bytes());
    let back = TextTokenizer::from_file(&file)?;
    assert_eq!(back.encode(&text)?, ids);
    Ok(())
}

#[test]
fn text_task_with_a_bpe_tokenizer_sets_the_model_vocab() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let corpus = common::write_file(dir.path(), "c.txt", common::generated_text(20_000).as_bytes());
    let toml = common::text_toml(&corpus, "dot", 1);
    let run = common::run_from_toml(&toml, &["task.tokenizer=bpe", "task.bpe_vocab_size=300"])?;
    let (resolved, _task) = run.build_task(&attnlab_train::TaskEnv::on(&candle_core::Device::Cpu))?;
    let attnlab_model::ModelConfig::Gpt(g) = &resolved.model else { panic!("a GPT") };
    assert!(g.vocab_size > 256 && g.vocab_size <= 300, "vocab {}", g.vocab_size);
    let too_small = common::run_from_toml(&toml, &["task.tokenizer=bpe", "task.bpe_vocab_size=100"]);
    let msg = format!("{:#}", too_small.expect_err("vocab 100 is too small"));
    assert!(msg.contains("task.bpe_vocab_size"), "{msg}");
    Ok(())
}
