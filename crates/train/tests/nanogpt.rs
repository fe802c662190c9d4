//! Conventions of nanoGPT's `shakespeare_char` recipe that the text task follows.

use attnlab_model::hub::HubOptions;
use attnlab_train::tasks::{TextConfig, TextTask};
use candle_core::Device;

/// nanoGPT's `prepare.py`: `train = data[:int(n * 0.9)]`, validation the rest. With 1114
/// characters that is 1002 training tokens (rounding the validation part instead gives 1003).
#[test]
fn text_split_is_nanogpts() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let text: String = (0..1114).map(|i| (b'a' + (i * 7 % 26) as u8) as char).collect();
    let path = tmp.path().join("corpus.txt");
    std::fs::write(&path, &text)?;
    let cfg = TextConfig {
        corpus: path.to_string_lossy().into_owned(),
        corpus_file: None,
        tokenizer: "char".to_string(),
        bpe_vocab_size: 512,
        val_fraction: 0.1,
    };
    let task = TextTask::new(&cfg, 8, 2, 1, 1, &Device::Cpu, &HubOptions::default())?;
    assert_eq!(task.n_train_tokens(), 1002);
    Ok(())
}
