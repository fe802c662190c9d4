//! attnlab-eval: compares runs — loss curves, learned parameters, attention geometry, cost —
//! and drives sweeps (grids of runs followed by one report).

pub mod analysis;
pub mod figures;
pub mod geometry;
pub mod group;
pub mod linalg;
pub mod maps;
pub mod markdown;
pub mod numbers;
pub mod params;
pub mod plot;
pub mod report;
pub mod run;
pub mod screen;
pub mod stats;
pub mod sweep;
pub mod task_pictures;

pub use report::{Report, write_report};
pub use run::Run;
