//! Checkpoint directories: `config.json` + `model.safetensors` (+ files the trainer adds),
//! written atomically and loaded in one call, from disk or from the Hugging Face Hub.
//!
//! A run directory holds its latest checkpoint in `last/` (and the best one in `best/`);
//! [`Checkpoint::load`] accepts a checkpoint directory, a run directory or a `hub:` reference.

use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Result, bail};
use serde_json::Value;

use crate::config::from_value_strict;
use crate::files::{safetensors_bytes, write_file};
use crate::hub::{HubOptions, HubRef, fetch};
use crate::model::{Model, ModelConfig};
use crate::params::ParamStore;

/// File holding the run configuration (its `model` key is the [`ModelConfig`]).
pub const CONFIG_FILE: &str = "config.json";
/// File holding the weights.
pub const MODEL_FILE: &str = "model.safetensors";
/// Optional tokenizer of text models (Hugging Face format).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Sub-directory of a run holding its latest checkpoint.
pub const LAST_DIR: &str = "last";
/// Sub-directory of a run holding its best-validation checkpoint.
pub const BEST_DIR: &str = "best";

/// A loaded checkpoint: the configuration and the ready model.
pub struct Checkpoint {
    /// Local directory the files were read from.
    pub dir: PathBuf,
    /// The whole `config.json` (model, and whatever the trainer stored beside it).
    pub run_config: Value,
    /// The model configuration.
    pub config: ModelConfig,
    /// The model's variables.
    pub params: ParamStore,
    /// The model, ready to run.
    pub model: Model,
}

/// Why a checkpoint could not be opened. Only [`CheckpointError::NonFinite`] means the model
/// diverged; every other kind is about the files.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The path names no checkpoint (missing, or a directory without `config.json`).
    #[error("{0}")]
    NotFound(String),
    /// A file exists but could not be read (permission, I/O): the file and the OS error.
    #[error("{} could not be read: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but is cut short or not in its format (an interrupted copy).
    #[error("{} is truncated or corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The weights do not fit the model its `config.json` describes (names or shapes).
    #[error("{} does not match its config {}: {reason}", path.display(), config.display())]
    Mismatch {
        /// The weights file.
        path: PathBuf,
        /// The config it was checked against.
        config: PathBuf,
        /// The first tensor that differs.
        reason: String,
    },
    /// The weights were read and hold NaN or infinite values: the model diverged.
    #[error("{}: tensor `{tensor}` holds NaN or infinite values; the model diverged and cannot be used", path.display())]
    NonFinite {
        /// The weights file.
        path: PathBuf,
        /// The first tensor (in name order) holding a non-finite value.
        tensor: String,
    },
    /// A `hub:` reference could not be fetched.
    #[error("{0}")]
    Hub(String),
}

impl CheckpointError {
    /// Whether this is a divergence (non-finite weights), the one kind that is about the model.
    pub fn is_divergence(&self) -> bool {
        matches!(self, Self::NonFinite { .. })
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::NotFound => Self::NotFound(format!("{} does not exist", path.display())),
            _ => Self::Unreadable { path: path.to_path_buf(), source },
        }
    }
}

impl From<CheckpointError> for candle_core::Error {
    fn from(e: CheckpointError) -> Self {
        candle_core::Error::wrap(e)
    }
}

impl Checkpoint {
    /// Loads a checkpoint directory, a run directory (its `last/`), or `hub:owner/repo[@rev]`
    /// (see [`Checkpoint::open`], which returns the typed error).
    ///
    /// ```no_run
    /// let ckpt = attnlab_model::Checkpoint::load("checkpoints/shakespeare_char", &candle_core::Device::Cpu)?;
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn load(reference: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Ok(Self::open(reference, device)?)
    }

    /// Like [`Checkpoint::load`], with explicit hub endpoint and cache.
    pub fn load_with(reference: impl AsRef<Path>, device: &Device, hub: &HubOptions) -> Result<Self> {
        Ok(Self::open_with(reference, device, hub)?)
    }

    /// The one way every command opens a checkpoint: reads `config.json`, builds the model,
    /// reads `model.safetensors` and checks every tensor's name, shape and finiteness. The
    /// error says which of these failed ([`CheckpointError`]).
    pub fn open(reference: impl AsRef<Path>, device: &Device) -> std::result::Result<Self, CheckpointError> {
        Self::open_with(reference, device, &HubOptions::default())
    }

    /// Like [`Checkpoint::open`], with explicit hub endpoint and cache.
    pub fn open_with(
        reference: impl AsRef<Path>,
        device: &Device,
        hub: &HubOptions,
    ) -> std::result::Result<Self, CheckpointError> {
        let reference = reference.as_ref();
        let dir = match reference.to_str().and_then(HubRef::parse) {
            Some(hub_ref) => {
                let hub_ref = hub_ref.map_err(|e| CheckpointError::Hub(e.to_string()))?;
                fetch_hub(&hub_ref, hub).map_err(|e| CheckpointError::Hub(e.to_string()))?
            }
            None => resolve_dir(reference).map_err(|e| CheckpointError::NotFound(e.to_string()))?,
        };
        let (run_config, config) = open_config(&dir)?;
        let params = ParamStore::new(0, device);
        let config_path = dir.join(CONFIG_FILE);
        let model = Model::new(&config, &params)
            .map_err(|e| CheckpointError::Corrupt { path: config_path, reason: e.to_string() })?;
        load_weights(&dir, &params)?;
        Ok(Self { dir, run_config, config, params, model })
    }

    /// Writes `run_config` (which must hold a valid `model`), the weights and `extra` files
    /// (name, bytes) to `dir`, atomically: `dir` holds either the old or the new checkpoint.
    /// Non-finite weights are refused: no command can save a diverged model. Every file is
    /// written by [`crate::files::write_file`] (the umask's ordinary mode).
    pub fn save(dir: &Path, run_config: &Value, params: &ParamStore, extra: &[(&str, &[u8])]) -> Result<()> {
        let model = run_config.get("model").cloned().unwrap_or(Value::Null);
        from_value_strict::<ModelConfig>(model, "model").map_err(candle_core::Error::Msg)?;
        if let Some(name) = params.first_non_finite()? {
            bail!(
                "refusing to save {}: tensor `{name}` holds NaN or infinite values (the previous checkpoint there, if any, is kept)",
                dir.display()
            )
        }
        write_dir_atomic(dir, |tmp| {
            let json =
                serde_json::to_vec_pretty(run_config).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            write_file(&tmp.join(CONFIG_FILE), &json)?;
            write_file(&tmp.join(MODEL_FILE), &safetensors_bytes(&params.tensors())?)?;
            for (name, bytes) in extra {
                write_file(&tmp.join(name), bytes)?;
            }
            Ok(())
        })
    }
}

/// Reads `dir/model.safetensors` into `params` (whose variables the model built), the one
/// reader of a checkpoint's weights: the file is read ([`CheckpointError::Unreadable`]), parsed
/// ([`CheckpointError::Corrupt`]), matched against the variables by name and shape
/// ([`CheckpointError::Mismatch`]) and checked for NaN and infinities
/// ([`CheckpointError::NonFinite`]).
pub fn load_weights(dir: &Path, params: &ParamStore) -> std::result::Result<(), CheckpointError> {
    let path = dir.join(MODEL_FILE);
    let bytes = fs::read(&path).map_err(|e| CheckpointError::io(&path, e))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, params.device())
        .map_err(|e| CheckpointError::Corrupt { path: path.clone(), reason: e.to_string() })?;
    params.assign_from(tensors).map_err(|e| CheckpointError::Mismatch {
        path: path.clone(),
        config: dir.join(CONFIG_FILE),
        reason: e.to_string(),
    })?;
    let non_finite = params
        .first_non_finite()
        .map_err(|e| CheckpointError::Corrupt { path: path.clone(), reason: e.to_string() })?;
    match non_finite {
        Some(tensor) => Err(CheckpointError::NonFinite { path, tensor }),
        None => Ok(()),
    }
}

/// Opens the checkpoint `dir` on the CPU and drops it: `Ok` when every command could use it.
pub fn verify(dir: &Path) -> std::result::Result<(), CheckpointError> {
    Checkpoint::open(dir, &Device::Cpu).map(drop)
}

fn open_config(dir: &Path) -> std::result::Result<(Value, ModelConfig), CheckpointError> {
    let path = dir.join(CONFIG_FILE);
    let text = fs::read(&path).map_err(|e| CheckpointError::io(&path, e))?;
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.clone(), reason };
    let value: Value = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
    let Some(model) = value.get("model") else { return Err(corrupt("no `model` section".into())) };
    let config: ModelConfig = from_value_strict(model.clone(), "model").map_err(corrupt)?;
    config.validate().map_err(|e| corrupt(e.to_string()))?;
    Ok((value, config))
}

/// Reads `config.json` of a checkpoint directory: the whole value and its strict model config.
pub fn read_config(dir: &Path) -> Result<(Value, ModelConfig)> {
    Ok(open_config(dir)?)
}

/// The checkpoint directory that `path` names: itself, its `last/`, or — after a crash between
/// the two renames of an atomic save — the old copy kept beside it.
pub fn resolve_dir(path: &Path) -> Result<PathBuf> {
    let candidates =
        [path.to_path_buf(), path.join(LAST_DIR), old_path(&path.join(LAST_DIR)), old_path(path)];
    // A run directory has a config.json of its own but its weights live in `last/`.
    let complete = |c: &PathBuf| c.join(CONFIG_FILE).is_file() && c.join(MODEL_FILE).exists();
    let found = candidates.iter().find(|c| complete(c));
    match found.or_else(|| candidates.iter().find(|c| c.join(CONFIG_FILE).is_file())) {
        Some(dir) => Ok(dir.clone()),
        None if !path.exists() => bail!("checkpoint {} does not exist", path.display()),
        None => bail!("{} is not a checkpoint or run directory (no {CONFIG_FILE})", path.display()),
    }
}

/// Repairs the state a crash can leave around the checkpoint directory `dir`: when `dir` is
/// missing but its old copy (`.dir.old`, moved aside by an interrupted atomic save) is
/// complete, moves it back; removes temporary directories of saves that never finished.
pub fn recover_dir(dir: &Path) -> Result<()> {
    let old = old_path(dir);
    let complete = |d: &Path| d.join(CONFIG_FILE).is_file() && d.join(MODEL_FILE).is_file();
    if !dir.exists() && complete(&old) {
        fs::rename(&old, dir).map_err(|e| in_file(&old, e))?;
    }
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else { return Ok(()) };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(parent) else { return Ok(()) };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            fs::remove_dir_all(entry.path()).map_err(|e| in_file(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// Testing hook: checkpoint saves into a directory under the given path fail as on a full
/// disk, after their files were written to the temporary directory (the path a real `ENOSPC`
/// takes), as many times as the count says. Scoped by path so that tests running in parallel
/// in one process never see another test's failures. Set it with [`fail_saves_under`].
static FAIL_SAVES: std::sync::Mutex<Vec<(std::path::PathBuf, usize)>> = std::sync::Mutex::new(Vec::new());

/// Testing hook: the next `n` checkpoint saves into directories under `root` fail as on a full
/// disk (see `write_dir_atomic`).
#[doc(hidden)]
pub fn fail_saves_under(root: &Path, n: usize) {
    let mut list = FAIL_SAVES.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|(r, _)| r != root);
    list.push((root.to_path_buf(), n));
}

fn injected_failure(dir: &Path) -> Result<()> {
    let mut list = FAIL_SAVES.lock().unwrap_or_else(|e| e.into_inner());
    match list.iter_mut().find(|(root, n)| *n > 0 && dir.starts_with(root)) {
        Some((_, n)) => {
            *n -= 1;
            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device (injected)")
                .into())
        }
        None => Ok(()),
    }
}

/// Fills a fresh temporary directory beside `dir` with `write`, syncs it, then swaps it in:
/// rename `dir` to `.dir.old`, rename the temporary to `dir`, delete the old copy.
pub fn write_dir_atomic(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = sibling(dir, &format!(".tmp-{}", std::process::id()));
    let old = old_path(dir);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| in_file(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| in_file(&tmp, e))?;
    let result = write(&tmp).and_then(|()| injected_failure(dir)).and_then(|()| sync_dir_files(&tmp));
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        let kept = if dir.exists() { "the previous checkpoint there is kept" } else { "nothing was written" };
        return Err(candle_core::Error::Msg(format!("writing checkpoint {}: {e} ({kept})", dir.display())));
    }
    if dir.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(|e| in_file(&old, e))?;
        }
        fs::rename(dir, &old).map_err(|e| in_file(dir, e))?;
    }
    fs::rename(&tmp, dir).map_err(|e| in_file(dir, e))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(|e| in_file(&old, e))?;
    }
    Ok(())
}

fn sync_dir_files(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        fs::File::open(entry?.path())?.sync_all()?;
    }
    Ok(())
}

fn old_path(dir: &Path) -> PathBuf {
    sibling(dir, ".old")
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!(".{name}{suffix}"))
}

fn fetch_hub(hub_ref: &HubRef, opts: &HubOptions) -> Result<PathBuf> {
    let config = fetch(hub_ref, CONFIG_FILE, opts)?;
    fetch(hub_ref, MODEL_FILE, opts)?;
    // Text models carry a tokenizer; other models have none, so a failure here is not an error.
    let _ = fetch(hub_ref, TOKENIZER_FILE, opts);
    match config.parent() {
        Some(dir) => Ok(dir.to_path_buf()),
        None => bail!("hub cache path {} has no parent", config.display()),
    }
}

fn in_file(path: &Path, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {e}", path.display()))
}
