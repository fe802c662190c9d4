//! The report's types, as written to `report.json`: the leaf of the eval pipeline. Findings
//! ([`crate::findings`]) and the renderer ([`crate::markdown`]) read only these; the pipeline
//! ([`crate::report`]) fills them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use attnlab_train::tasks::Column;
use serde::Serialize;

use crate::analysis::GeometryReport;
use crate::dynamics::{Escape, LrRange};
use crate::numbers::Numbers;
use crate::params::HeadParams;
use crate::stats::MeanStd;
use crate::stats::compare::ComparisonTable;

/// The whole report, as written to `report.json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Number of runs read (each directory once).
    pub n_runs: usize,
    /// Directories given more than once (counted once).
    pub duplicates: Vec<String>,
    /// Run directories with no metrics yet (left out).
    pub not_started: Vec<String>,
    /// Runs whose checkpoint could not be read (left out, never called diverged).
    pub unreadable: Vec<crate::screen::Unreadable>,
    /// The metric every configuration is compared with.
    pub baseline: String,
    /// What the runs say about each part of the question (see [`crate::findings`]).
    pub findings: Findings,
    /// One entry per task configuration.
    pub groups: Vec<GroupReport>,
}

/// The runs of one task configuration.
#[derive(Debug, Serialize)]
pub struct GroupReport {
    /// File-name identifier (`recall`, `text_2`).
    pub id: String,
    /// Task kind.
    pub task: String,
    /// The task section of the runs' config, as compact JSON.
    pub task_config: String,
    /// Text task with a character-level tokenizer (bits per token are bits per character).
    pub char_level: bool,
    /// The final table's columns, as the task declares them.
    pub columns: Vec<Column>,
    /// Runs that differ only in the seed, with mean and std of every number.
    pub seed_groups: Vec<SeedGroupReport>,
    /// Every run.
    pub runs: Vec<RunReport>,
    /// Each configuration against its baseline, one table per quantity (Welch, Holm).
    pub comparisons: Vec<ComparisonTable>,
    /// Steps to the task's threshold per configuration (empty without a threshold).
    pub escapes: Vec<Escape>,
    /// Learning rates tried per setting, when the runs span several.
    pub lr_ranges: Vec<LrRange>,
    /// The sweep's tuned key (`train.lr`), when it tuned one: the seed groups, tables and
    /// pictures above hold each configuration at its chosen value only.
    pub tuned_key: Option<String>,
    /// Each configuration's selection curve over the tuned values (empty without tuning).
    pub tuning: Vec<crate::tuning::TuneCurve>,
    /// Each configuration's closest classical baseline by its in-context error curve (empty for
    /// tasks without one).
    pub closest_baselines: Vec<crate::icl_curves::Closest>,
    /// The scaling ladder, when the compared configurations span several training computes.
    pub scaling: Option<ScalingReport>,
    /// Pictures, relative to the report directory.
    pub figures: Vec<String>,
    /// The task's own pictures (a subset of `figures`).
    pub task_figures: Vec<String>,
}

/// Mean and std over the seeds of one configuration.
#[derive(Debug, Serialize)]
pub struct SeedGroupReport {
    /// What tells the configuration apart (e.g. `metric=idw`).
    pub label: String,
    /// The attention metric.
    pub metric: String,
    /// Where the normalisation sits (see [`crate::baseline::placement`]).
    pub placement: String,
    /// Run names.
    pub runs: Vec<String>,
    /// Every number of the runs' summaries, over seeds.
    pub numbers: BTreeMap<String, MeanStd>,
}

/// One run's numbers and analyses.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// Run name.
    pub name: String,
    /// Run directory.
    pub dir: PathBuf,
    /// Its seed group's label.
    pub label: String,
    /// Attention metric.
    pub metric: String,
    /// Seed.
    pub seed: Option<u64>,
    /// Whether `summary.json` exists.
    pub finished: bool,
    /// Whether its checkpoint holds NaN or infinite weights (then it has no numbers).
    pub non_finite_weights: bool,
    /// Every number (summary, or derived from `metrics.jsonl`).
    pub numbers: Numbers,
    /// Learned parameters per layer and head, when the checkpoint has attention blocks.
    pub params: Option<Vec<HeadParams>>,
    /// Attention geometry on validation inputs, when the model kind supports it.
    pub geometry: Option<GeometryReport>,
    /// Why an analysis was skipped or failed.
    pub notes: Vec<String>,
}

/// One sentence and the runs behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// The sentence.
    pub text: String,
    /// Names of the runs its numbers come from.
    pub runs: Vec<String>,
}

/// One part of the question.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    /// The question.
    pub title: String,
    /// What the runs show.
    pub statements: Vec<Statement>,
    /// What they cannot show, and the sweep that would.
    pub gaps: Vec<String>,
}

/// The four parts, in the question's order.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    /// Normalisation, geometry, dynamics, cost.
    pub parts: Vec<Part>,
}

/// The scaling section of a task group ([`crate::ladder`]).
#[derive(Debug, Clone, Serialize)]
pub struct ScalingReport {
    /// The metric each family is compared with.
    pub baseline: String,
    /// The loss quantity's equivalence margin (nats): a gap moving less than this per decade of
    /// compute (90% interval) is called steady.
    pub margin: f64,
    /// One entry per configuration up to its size, in order of appearance.
    pub families: Vec<FamilyScaling>,
}

/// One family: a configuration at every size of the ladder.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyScaling {
    /// The configuration without its size keys and tuned value (e.g. `metric=idw, qk_norm=rms`).
    pub label: String,
    /// The attention metric.
    pub metric: String,
    /// Its sizes, by ascending compute.
    pub rungs: Vec<RungReport>,
    /// L(C) fitted over the rungs' seeds.
    pub fit: Option<crate::stats::scaling::Fit>,
    /// Against the baseline family, when there is one.
    pub versus: Option<GapVersus>,
}

/// One size of a family.
#[derive(Debug, Clone, Serialize)]
pub struct RungReport {
    /// The seed group's label.
    pub label: String,
    /// Training FLOPs (mean over its runs; `summary.json` `compute.flops`).
    pub compute: f64,
    /// Non-embedding parameters N.
    pub params: Option<f64>,
    /// Seeds.
    pub n: usize,
    /// Mean final validation loss (nats).
    pub mean: f64,
    /// Lowest over seeds.
    pub min: f64,
    /// Highest over seeds.
    pub max: f64,
    /// The verdict of its final-loss comparison with the baseline at the same size, with its
    /// evidence (`None` for the baseline or without a comparison).
    pub verdict: Option<String>,
    /// Its runs.
    pub runs: Vec<String>,
}

/// A family against its baseline family.
#[derive(Debug, Clone, Serialize)]
pub struct GapVersus {
    /// The baseline family's label.
    pub baseline: String,
    /// The gap at each shared size and its trend per decade of compute (`None` with fewer than
    /// two shared sizes).
    pub trend: Option<crate::stats::scaling::GapTrend>,
    /// Shrinking, growing, steady within the margin, or not resolved.
    pub direction: Option<crate::stats::scaling::Trend>,
    /// How much compute the baseline needs to reach this family's loss at its largest size,
    /// or why that cannot be read off the baseline's fit.
    pub multiplier: Result<crate::stats::scaling::Multiplier, String>,
}
