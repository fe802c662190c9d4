//! attnlab-train: tasks, the optimizer, the training loop and run directories.
//!
//! Entry point: [`train`] (config + output directory -> [`Summary`]), used by `attnlab train`
//! and by [`sweep`] (grids of runs, in this process or in child processes).

mod adamw_update;
pub mod augment;
pub mod bench;
pub mod compute;
pub mod config;
pub mod guard;
pub mod interrupt;
pub mod lock;
pub mod optim;
pub mod outputs;
pub mod progress;
pub mod resume;
pub mod rundir;
pub mod sweep;
pub mod task;
pub mod tasks;
pub mod train_config;
pub mod trainer;

pub use config::{RunConfig, TrainConfig};
pub use guard::Diverged;
pub use interrupt::Interrupted;
pub use lock::RunLock;
pub use outputs::{SWEEP_FILE, Writer, check_output};
pub use rundir::{RunDir, Summary, can_resume, is_finished};
pub use task::{Batch, Task};
pub use tasks::{AnyTask, TaskConfig, TaskEnv, TaskScores, build_task};
pub use trainer::{TrainOptions, evaluate, train, train_claimed, train_task};
