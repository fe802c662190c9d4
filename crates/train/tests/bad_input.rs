//! Bad input gives clear errors naming the problem: corpus missing, empty, not UTF-8, shorter
//! than the block; an output directory that cannot be created.

use crate::common;

use attnlab_train::{TrainOptions, train};
use candle_core::Device;

fn train_err(toml: &str, out: &std::path::Path) -> String {
    let run = common::run_from_toml(toml, &[]).expect("config parses");
    match train(&run, out, &TrainOptions::new(&Device::Cpu)) {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_corpora_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let missing = d.join("missing.txt");
    let empty = common::write_file(d, "empty.txt", b"");
    let binary = common::write_file(d, "bin.txt", &[b'a', b'b', 0xff, 0xfe, b'c']);
    let short = common::write_file(d, "short.txt", b"too short for a block of sixteen");
    for (path, want) in [
        (&missing, "missing.txt"),
        (&empty, "is empty"),
        (&binary, "not valid UTF-8 (at byte 2)"),
        (&short, "too short"),
    ] {
        let msg = train_err(&common::text_toml(path, "dot", 2), &d.join("out"));
        assert!(msg.contains(want), "{}: {msg}", path.display());
        assert!(msg.contains(&*path.file_name().expect("name").to_string_lossy()), "{msg}");
    }
    assert!(!d.join("out").exists(), "a failed start must not leave a run directory");
}

#[test]
fn unwritable_output_directory_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let corpus = common::write_file(tmp.path(), "c.txt", common::generated_text(2000).as_bytes());
    let file = common::write_file(tmp.path(), "a_file", b"x");
    let msg = train_err(&common::text_toml(&corpus, "dot", 2), &file.join("run"));
    assert!(msg.contains("cannot create output directory"), "{msg}");
}
