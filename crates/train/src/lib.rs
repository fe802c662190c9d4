//! attnlab-train: tasks, the optimizer, the training loop and run directories.

pub mod task;

pub use task::{Batch, Task};
