//! Token ids meet the model (issue 13, kind 5): a tokenizer with holes and an added token past
//! its vocabulary sizes the model from the largest id + 1 and keeps the file's ids (case 09);
//! ids the tokenizer cannot decode are masked; a leading byte-order mark is not text (case 07).

use crate::common;

use attnlab_train::tasks::corpus::read_corpus;
use attnlab_train::tasks::tokenizer::TextTokenizer;
use attnlab_train::{TrainOptions, train};
use candle_core::Device;

/// Word-level, ids 0..8 and 20, and an added special token at id 40 (the case's file).
const SPARSE: &str = r#"{"version":"1.0","truncation":null,"padding":null,
 "added_tokens":[{"id":40,"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
 "normalizer":null,"pre_tokenizer":{"type":"WhitespaceSplit"},"post_processor":null,"decoder":null,
 "model":{"type":"WordLevel","vocab":{"<unk>":0,"the":1,"cat":2,"sat":3,"on":4,"mat":5,"a":6,"dog":7,"ran":8,"far":20},"unk_token":"<unk>"}}"#;

fn sparse_corpus() -> String {
    let words = ["the cat sat on the mat", "a dog ran far", "<|endoftext|>"];
    (0..120).map(|i| words[i % 3]).collect::<Vec<_>>().join(" ")
}

#[test]
fn sparse_ids_and_added_tokens_keep_the_files_numbers() -> anyhow::Result<()> {
    let tok = TextTokenizer::from_json(SPARSE)?;
    assert_eq!(tok.vocab_size(), 41, "largest id 40 + 1");
    assert_eq!(tok.encode("far <|endoftext|> the")?, vec![20, 40, 1]);
    assert_eq!(
        tok.decode(&[20, 40, 1])?.split_whitespace().collect::<Vec<_>>(),
        ["far", "<|endoftext|>", "the"]
    );
    let mask = tok.decodable_ids(41);
    let decodable: Vec<usize> = (0..41).filter(|&i| mask[i]).collect();
    assert_eq!(decodable, [0, 1, 2, 3, 4, 5, 6, 7, 8, 20, 40]);
    let err = format!("{:#}", tok.decode(&[10]).expect_err("a hole"));
    assert!(err.contains("token id 10"), "{err}");
    // The saved tokenizer keeps id 40, and reloading it gives the same ids.
    let saved: serde_json::Value = serde_json::from_str(&tok.to_json()?)?;
    assert_eq!(saved["added_tokens"][0]["id"], 40);
    assert_eq!(TextTokenizer::from_json(&tok.to_json()?)?.encode("<|endoftext|>")?, vec![40]);
    Ok(())
}

#[test]
fn a_model_trains_on_a_sparse_tokenizer() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = common::write_file(tmp.path(), "sparse.txt", sparse_corpus().as_bytes());
    let tok = common::write_file(tmp.path(), "tok.json", SPARSE.as_bytes());
    let text = common::text_toml(&corpus, "dot", 3).replace("block_size = 16", "block_size = 8");
    let set = format!("task.tokenizer={}", tok.display());
    let run = common::run_from_toml(&text, &[&set])?;
    let dir = tmp.path().join("run");
    train(&run, &dir, &TrainOptions::new(&Device::Cpu))?;
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("last/config.json"))?)?;
    assert_eq!(cfg["model"]["vocab_size"], 41);
    let saved = TextTokenizer::from_file(&dir.join("last/tokenizer.json"))?;
    assert_eq!(saved.encode("<|endoftext|>")?, vec![40]);
    Ok(())
}

#[test]
fn a_leading_byte_order_mark_is_not_text() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let body = common::generated_text(3000).replace('\n', "\r\n");
    let path = common::write_file(tmp.path(), "bom.txt", format!("\u{feff}{body}").as_bytes());
    let text = read_corpus(&path)?;
    assert_eq!(text, body);
    let tok = TextTokenizer::char_level(&text)?;
    assert!(tok.encode("\u{feff}").is_err(), "U+FEFF must not be a token");
    assert!(tok.encode("\r\n").is_ok(), "CRLF stays text");
    // BPE is trained on the same text, without the mark.
    let bpe = TextTokenizer::train_bpe(&path, 300)?;
    assert_eq!(bpe.to_json()?, TextTokenizer::train_bpe_on(&body, 300)?.to_json()?);
    Ok(())
}
