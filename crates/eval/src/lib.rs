//! attnlab-eval: compares runs — loss curves, learned parameters, attention geometry, cost —
//! for any run directories, and lists the planned runs of a sweep that did not finish.

pub mod analysis;
pub mod baseline;
pub mod comparisons;
pub mod diagnostics;
pub mod dynamics;
pub mod figures;
pub mod findings;
pub mod findings_parts;
pub mod findings_scaling;
pub mod geometry;
pub mod group;
pub mod icl_curves;
pub mod ladder;
pub mod linalg;
pub mod maps;
pub mod markdown;
pub mod numbers;
pub mod params;
pub mod plot;
pub mod quantity;
pub mod report;
pub mod run;
pub mod screen;
pub mod sections;
pub mod stats;
pub mod task_pictures;
pub mod tuning;
pub mod types;
pub mod unfinished;

pub use report::{Report, ReportOptions, write_report, write_report_with};
pub use run::Run;
