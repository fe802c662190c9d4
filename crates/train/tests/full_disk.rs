//! A full disk during a checkpoint save: a clear error, and the previous checkpoint intact and
//! loadable. On a size-limited tmpfs when the test runs as root and may mount one; always also
//! through an injected write failure on the same code path (scoped to the test's directory, so
//! other tests of this binary are not touched).

use crate::common;

use std::path::Path;

use attnlab_model::Checkpoint;
use attnlab_model::checkpoint::fail_saves_under;
use attnlab_train::rundir::{self, TrainerState};
use attnlab_train::{TrainOptions, train};
use candle_core::Device;

/// The two full-disk tests do not overlap (the tmpfs one fills a disk).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn saved_step(dir: &Path) -> usize {
    let state: TrainerState = rundir::read_json(&dir.join("last").join(rundir::STATE_FILE)).expect("state");
    state.step
}

fn check_full_disk_error(err: &anyhow::Error, dir: &Path) {
    let msg = format!("{err:#}");
    assert!(msg.contains("No space left") || msg.contains("space"), "{msg}");
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
}

#[test]
fn injected_full_disk_keeps_the_previous_checkpoint() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir()?;
    let run = common::run_from_toml(&common::recall_toml("dot", 12), &["train.ckpt_interval=4"])?;
    let opts = TrainOptions::new(&Device::Cpu);
    let dir = tmp.path().join("run");
    train(&run, &dir, &TrainOptions { stop_at: Some(4), ..opts.clone() }).expect_err("stopped at 4");
    let before = std::fs::read(dir.join("last/model.safetensors"))?;
    fail_saves_under(&dir, 1);
    let err = train(&run, &dir, &TrainOptions { resume: true, ..opts.clone() }).expect_err("disk full");
    check_full_disk_error(&err, &dir);
    assert!(format!("{err:#}").contains("previous checkpoint there is kept"), "{err:#}");
    assert_eq!(saved_step(&dir), 4);
    assert_eq!(std::fs::read(dir.join("last/model.safetensors"))?, before);
    Checkpoint::load(dir.join("last"), &Device::Cpu)?;
    // With space again, the resume reaches what a straight run reaches.
    train(&run, &dir, &TrainOptions { resume: true, ..opts.clone() })?;
    let straight = tmp.path().join("straight");
    train(&run, &straight, &opts)?;
    assert_eq!(
        std::fs::read(dir.join("last/model.safetensors"))?,
        std::fs::read(straight.join("last/model.safetensors"))?
    );
    Ok(())
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_full_tmpfs_keeps_the_previous_checkpoint() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir()?;
    let mnt = tmp.path().join("small");
    std::fs::create_dir_all(&mnt)?;
    let mounted = is_root()
        && std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("not root or no tmpfs mount here: the injected failure test covers the full disk");
        return Ok(());
    }
    let _guard = Mount(mnt.clone());
    let run = common::run_from_toml(&common::recall_toml("dot", 12), &["train.ckpt_interval=4"])?;
    let opts = TrainOptions::new(&Device::Cpu);
    let dir = mnt.join("run");
    train(&run, &dir, &TrainOptions { stop_at: Some(4), ..opts.clone() }).expect_err("stopped at 4");
    let before = std::fs::read(dir.join("last/model.safetensors"))?;
    // Keep a reserve, fill the rest, then free the reserve: room for metrics, not a checkpoint.
    let reserve = mnt.join("reserve");
    std::fs::write(&reserve, vec![0u8; 24 * 1024])?;
    let mut filler = std::fs::File::create(mnt.join("filler"))?;
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    std::fs::remove_file(&reserve)?;
    let err = train(&run, &dir, &TrainOptions { resume: true, ..opts.clone() }).expect_err("disk full");
    check_full_disk_error(&err, &dir);
    assert_eq!(saved_step(&dir), 4);
    assert_eq!(std::fs::read(dir.join("last/model.safetensors"))?, before);
    Checkpoint::load(dir.join("last"), &Device::Cpu)?;
    std::fs::remove_file(mnt.join("filler"))?;
    train(&run, &dir, &TrainOptions { resume: true, ..opts })?;
    assert!(rundir::is_finished(&dir));
    Ok(())
}
