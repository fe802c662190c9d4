//! A named, ordered store of trainable variables with seeded initialisation.
//!
//! candle's `VarMap` iterates in hash order and its initialisers draw from an unseedable
//! generator, so the project keeps its own store: a `BTreeMap` from path-like names
//! (`blocks.0.attn.q_proj.weight`) to [`Var`]s, filled from a ChaCha generator seeded by the run.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Result, Shape, Tensor, Var, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// How a new variable is filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Every element equal to the value.
    Const(f64),
    /// Independent draws from N(0, std^2).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Independent draws from N(mean, std^2).
    NormalAround {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
}

struct Inner {
    vars: BTreeMap<String, Var>,
    rng: ChaCha8Rng,
}

/// Shared handle to the variables of one model. Cloning shares the same variables.
#[derive(Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
    device: Device,
}

impl ParamStore {
    /// An empty store whose initialisers draw from a generator seeded with `seed`.
    pub fn new(seed: u64, device: &Device) -> Self {
        let inner = Inner { vars: BTreeMap::new(), rng: ChaCha8Rng::seed_from_u64(seed) };
        Self { inner: Arc::new(Mutex::new(inner)), device: device.clone() }
    }

    /// The device every variable lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A builder that prefixes names with `prefix.`.
    pub fn root(&self) -> ParamBuilder {
        ParamBuilder { store: self.clone(), prefix: String::new() }
    }

    /// All variables, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.lock().vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The variable called `name`, if any.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.lock().vars.get(name).cloned()
    }

    /// Number of scalar parameters.
    pub fn n_params(&self) -> usize {
        self.lock().vars.values().map(|v| v.elem_count()).sum()
    }

    /// Snapshot of every variable as a plain tensor (detached), keyed by name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let inner = self.lock();
        inner.vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect()
    }

    /// The name of the first variable (in name order) holding a NaN or an infinity, if any.
    ///
    /// Errors only when a tensor cannot be read back from its device.
    pub fn first_non_finite(&self) -> Result<Option<String>> {
        for (name, var) in self.vars() {
            if !tensor_is_finite(var.as_tensor())? {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Writes every variable to a safetensors file (through [`crate::files::write_file`]).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        crate::files::write_file(path, &crate::files::safetensors_bytes(&self.tensors())?)?;
        Ok(())
    }

    /// Overwrites every variable from `tensors`. Every variable must be present with the same
    /// shape; a tensor that names no variable is an error too (it means the config is wrong).
    pub fn assign_from(&self, mut tensors: HashMap<String, Tensor>) -> Result<()> {
        let inner = self.lock();
        for (name, var) in inner.vars.iter() {
            let Some(t) = tensors.remove(name) else {
                bail!("tensor `{name}` is missing from the checkpoint")
            };
            if t.dims() != var.dims() {
                bail!(
                    "tensor `{name}` has shape {:?} in the checkpoint but the config gives {:?}",
                    t.dims(),
                    var.dims()
                )
            }
            var.set(&t.to_dtype(var.dtype())?.to_device(&self.device)?)?;
        }
        if let Some(extra) = tensors.keys().min() {
            bail!("the checkpoint holds tensor `{extra}`, which the config's model does not have")
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create(&self, name: String, shape: Shape, init: Init) -> Result<Tensor> {
        let mut inner = self.lock();
        if inner.vars.contains_key(&name) {
            bail!("variable `{name}` created twice")
        }
        let n = shape.elem_count();
        let data: Vec<f32> = match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Normal { std } => sample_normal(&mut inner.rng, 0.0, std, n)?,
            Init::NormalAround { mean, std } => sample_normal(&mut inner.rng, mean, std, n)?,
        };
        let t = Tensor::from_vec(data, shape, &self.device)?;
        let var = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
        let out = var.as_tensor().clone();
        inner.vars.insert(name, var);
        Ok(out)
    }
}

/// Whether every element of `t` is finite (no NaN, no +-inf); reduces on `t`'s device.
pub fn tensor_is_finite(t: &Tensor) -> Result<bool> {
    // 0 * x is 0 for finite x and NaN for NaN and +-inf; the sum is then NaN exactly when some
    // element is not finite (a sum of zeros cannot overflow).
    let probe = t.affine(0.0, 0.0)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
    Ok(probe == 0.0)
}

fn sample_normal(rng: &mut ChaCha8Rng, mean: f64, std: f64, n: usize) -> Result<Vec<f32>> {
    let dist = Normal::new(mean, std)
        .map_err(|e| candle_core::Error::Msg(format!("normal init with std {std}: {e}")))?;
    Ok((0..n).map(|_| dist.sample(rng) as f32).collect())
}

/// Creates variables under a dotted name prefix, like candle's `VarBuilder`.
#[derive(Clone)]
pub struct ParamBuilder {
    store: ParamStore,
    prefix: String,
}

impl ParamBuilder {
    /// A builder for the sub-path `prefix.name`.
    pub fn pp(&self, name: impl ToString) -> Self {
        Self { store: self.store.clone(), prefix: self.path(&name.to_string()) }
    }

    /// Creates the variable `prefix.name` with the given shape and initialiser.
    pub fn var(&self, name: &str, shape: impl Into<Shape>, init: Init) -> Result<Tensor> {
        self.store.create(self.path(name), shape.into(), init)
    }

    /// The device of the store.
    pub fn device(&self) -> &Device {
        self.store.device()
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }
}
