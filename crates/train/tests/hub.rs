//! A corpus and a tokenizer from the Hub, fetched from a loopback stand-in (offline).

use crate::common;

use std::collections::HashMap;

use attnlab_model::hub::HubOptions;
use attnlab_model::hub::standin::HubStandin;
use attnlab_train::tasks::tokenizer::TextTokenizer;
use attnlab_train::tasks::{TextConfig, TextTask};
use attnlab_train::{TaskEnv, TrainOptions, train};
use candle_core::Device;

#[test]
fn text_task_reads_a_hub_corpus_like_a_local_one() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let text = common::generated_text(3000);
    let local = common::write_file(tmp.path(), "input.txt", text.as_bytes());
    let tok = TextTokenizer::char_level(&text)?;
    let files = HashMap::from([
        ("datasets/someone/tiny/resolve/v1/input.txt".to_string(), text.clone().into_bytes()),
        ("someone/tok/resolve/main/tokenizer.json".to_string(), tok.to_json()?.into_bytes()),
    ]);
    let hub = HubStandin::start(files)?;
    let opts = HubOptions { endpoint: Some(hub.endpoint.clone()), cache_dir: Some(tmp.path().join("cache")) };
    let device = Device::Cpu;
    let cfg = |corpus: &str, file: Option<&str>, tokenizer: &str| TextConfig {
        corpus: corpus.to_string(),
        corpus_file: file.map(str::to_string),
        tokenizer: tokenizer.to_string(),
        bpe_vocab_size: 512,
        val_fraction: 0.1,
    };
    let from_local =
        TextTask::new(&cfg(&local.to_string_lossy(), None, "char"), 16, 4, 2, 1, &device, &opts)?;
    let from_hub = TextTask::new(
        &cfg("hub:datasets/someone/tiny@v1", Some("input.txt"), "hub:someone/tok"),
        16,
        4,
        2,
        1,
        &device,
        &opts,
    )?;
    assert_eq!(from_local.n_train_tokens(), from_hub.n_train_tokens());
    assert_eq!(from_local.tokenizer().to_json()?, from_hub.tokenizer().to_json()?);
    use attnlab_train::Task;
    let (a, b) = (&from_local.val_batches()[0], &from_hub.val_batches()[0]);
    assert_eq!(a.inputs[0].to_vec2::<u32>()?, b.inputs[0].to_vec2::<u32>()?);

    // A missing file on the hub is a clear error naming the file.
    let missing = TextTask::new(
        &cfg("hub:datasets/someone/tiny@v1", Some("nope.txt"), "char"),
        16,
        4,
        2,
        1,
        &device,
        &opts,
    );
    let msg = format!("{:#}", missing.err().expect("missing hub file"));
    assert!(msg.contains("nope.txt"), "{msg}");

    // And a whole run trains from the hub corpus.
    let toml = common::text_toml(std::path::Path::new("unused"), "dot", 2).replace(
        "corpus = \"unused\"",
        "corpus = \"hub:datasets/someone/tiny@v1\"\ncorpus_file = \"input.txt\"",
    );
    let run = common::run_from_toml(&toml, &[])?;
    let mut topts = TrainOptions::new(&device);
    topts.env = TaskEnv { device: device.clone(), hub: opts.clone() };
    let summary = train(&run, &tmp.path().join("run"), &topts)?;
    assert_eq!(summary.steps, 2);
    assert!(tmp.path().join("run/last/tokenizer.json").is_file());
    Ok(())
}
