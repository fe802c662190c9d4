//! The one registry of tasks: [`TaskConfig`] (`[task] kind = ...`), [`TaskScores`] (the task's
//! scores in `summary.json`, tagged by `task`) and [`build_task`], generated from one list in
//! which each task's name is written once.
//!
//! To add a task: its file (config struct implementing [`TaskSpec`], scores struct, `Task`
//! type), and one line in the list below.

use anyhow::Result;
use attnlab_model::{Model, ModelConfig};
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::report::TaskReport;
use crate::task::{Batch, Task, TaskContext, TaskEnv, TaskName, TaskSpec};
use crate::train_config::TrainConfig;

/// Any registered task, as the trainer holds it: its scores are [`TaskScores`].
pub type AnyTask = dyn Task<Scores = TaskScores>;

/// A task whose scores are converted into [`TaskScores`]; every other call is the task's own.
struct Registered<T>(T);

impl<T: Task> Task for Registered<T>
where
    TaskScores: From<T::Scores>,
{
    type Scores = TaskScores;

    fn configure_model(&self, model: &mut ModelConfig) -> Result<()> {
        self.0.configure_model(model)
    }

    fn train_batch(&mut self, step: usize, rng: &mut ChaCha8Rng, batch_size: usize) -> Result<Batch> {
        self.0.train_batch(step, rng, batch_size)
    }

    fn val_batches(&self) -> &[Batch] {
        self.0.val_batches()
    }

    fn loss(&self, model: &Model, batch: &Batch) -> Result<Tensor> {
        self.0.loss(model, batch)
    }

    fn scores(&self, model: &Model) -> Result<TaskScores> {
        Ok(self.0.scores(model)?.into())
    }

    fn eval_scores(&self, model: &Model) -> Result<Map<String, Value>> {
        self.0.eval_scores(model)
    }

    fn inputs(&self) -> Map<String, Value> {
        self.0.inputs()
    }

    fn checkpoint_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.0.checkpoint_files()
    }
}

/// The registry from its list: `Variant = "name": Config => Scores;` (paths to the task file's
/// types, so a task is one line here), each with its doc line.
macro_rules! registry {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal : $config:ty => $scores:ty;)*) => {
        /// Configuration of any task; `kind` selects the variant.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum TaskConfig {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant($config),)*
        }

        /// The scores a task computes on a trained model, one variant per task; serialised into
        /// `summary.json` beside the trainer's numbers, tagged by `task`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "task")]
        pub enum TaskScores {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant($scores),)*
        }

        $(
            impl TaskName for $config {
                const NAME: &'static str = $name;
            }

            impl From<$scores> for TaskScores {
                fn from(scores: $scores) -> Self {
                    TaskScores::$variant(scores)
                }
            }
        )*

        impl TaskConfig {
            /// Every task's name, in the registry's order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The task's name (`text`, `recall`, ...).
            pub fn name(&self) -> &'static str {
                match self {
                    $(TaskConfig::$variant(_) => $name,)*
                }
            }

            /// Rejects settings that make no sense, naming the field.
            pub fn validate(&self) -> Result<()> {
                match self {
                    $(TaskConfig::$variant(c) => c.validate(),)*
                }
            }

            /// What the task declares to the report, before the configuration line.
            fn declared_report(&self) -> TaskReport {
                match self {
                    $(TaskConfig::$variant(c) => c.report(),)*
                }
            }

            /// The task, built.
            fn build(&self, cx: &TaskContext) -> Result<Box<AnyTask>> {
                match self {
                    $(TaskConfig::$variant(c) => Ok(Box::new(Registered(c.build(cx)?))),)*
                }
            }
        }

        impl TaskScores {
            /// The task's name (`text`, `recall`, ...), as in `summary.json`'s `task`.
            pub fn task(&self) -> &'static str {
                match self {
                    $(TaskScores::$variant(_) => $name,)*
                }
            }
        }
    };
}

registry! {
    /// Next-token prediction on a text corpus.
    Text = "text": super::text::TextConfig => super::text::TextScores;
    /// Multi-query associative recall (MQAR).
    Recall = "recall": super::recall::RecallConfig => super::recall::RecallScores;
    /// In-context scattered-data interpolation (set regressor).
    Scattered = "scattered": super::scattered::ScatteredConfig => super::scattered::ScatteredScores;
    /// McCarter's prototype networks on two moons.
    Prototype = "prototype": super::prototype::PrototypeTaskConfig => super::prototype::PrototypeScores;
    /// In-context regression of linear, sparse linear, ReLU-network and bump functions.
    Regression = "regression": super::regression::RegressionConfig => super::icl_curve::RegressionScores;
}

impl TaskConfig {
    /// What the report shows for runs of this task: columns, pictures, threshold, and the
    /// configuration as compact JSON (without the keys the task leaves out).
    pub fn report(&self) -> TaskReport {
        let mut report = self.declared_report();
        report.config_text = if report.config_omit.is_empty() {
            serde_json::to_string(self).unwrap_or_default()
        } else {
            let mut value = serde_json::to_value(self).unwrap_or_default();
            if let Some(m) = value.as_object_mut() {
                for key in &report.config_omit {
                    m.remove(*key);
                }
            }
            value.to_string()
        };
        report
    }
}

/// Builds the task of `task` for a run of `model` trained under `train` with `seed`, lets it
/// set the model fields it determines, and validates the model; returns the resolved model
/// config (every default written out, as saved in `config.json`) and the task.
pub fn build_task(
    task: &TaskConfig,
    model: &ModelConfig,
    train: &TrainConfig,
    seed: u64,
    env: &TaskEnv,
) -> Result<(ModelConfig, Box<AnyTask>)> {
    let cx = TaskContext { model, batch_size: train.batch_size, eval_batches: train.eval_batches, seed, env };
    let built = task.build(&cx)?;
    let mut resolved = model.clone();
    built.configure_model(&mut resolved)?;
    resolved.validate()?;
    // Every default written out: a later change of a default cannot change this run.
    Ok((resolved.resolved(), built))
}
