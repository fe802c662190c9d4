//! attnlab-train: tasks, the optimizer, the training loop and run directories.

pub mod task;
pub mod tasks;

pub use task::{Batch, Task};
