//! The tasks, chosen by `[task] kind = ...`.
//!
//! Leaves: [`report`] (what a task declares to the report), [`loss`], [`models`], [`corpus`]
//! and the interface in `crate::task`. Each task file (`text`, `recall`, `scattered`,
//! `prototype`, `regression`) holds its config struct (a [`crate::task::TaskSpec`]), its scores
//! struct, its report and its `Task` type, and imports only leaves (and the data code of other
//! task files). [`registry`] is the one list of tasks: `TaskConfig`, `TaskScores`,
//! `build_task`.
//!
//! To add a task: its file, and one line in the list of [`registry`].

pub mod corpus;
pub mod franke;
pub mod icl_baselines;
pub mod icl_curve;
pub mod loss;
pub mod models;
pub mod moons;
pub mod prototype;
pub mod recall;
pub mod registry;
pub mod regression;
pub mod report;
pub mod scattered;
pub mod shepard;
pub mod text;
pub mod tokenizer;

pub use crate::task::{TaskContext, TaskEnv, TaskName, TaskSpec};
pub use prototype::{PrototypeTask, PrototypeTaskConfig};
pub use recall::{RecallConfig, RecallTask};
pub use registry::{AnyTask, TaskConfig, TaskScores, build_task};
pub use regression::{RegressionConfig, RegressionTask};
pub use report::{Column, Picture, TaskReport, Threshold, Unit, nats_to_bits};
pub use scattered::{ScatteredConfig, ScatteredTask};
pub use text::{TextConfig, TextTask};
