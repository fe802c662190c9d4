//! **The quantity table**: one row per number the report compares or tabulates, the
//! counterpart of the model crate's metric table. A row names its key in a run's numbers, its
//! header, unit, digits, direction (is higher better?), its equivalence margin δ (the
//! difference within which it counts as the same as the baseline's), which part of the question
//! its comparison informs, and how it is computed: stored in `summary.json`, derived from a
//! stored number (bits from nats), or read from each attention head's geometry and aggregated
//! over heads.
//!
//! A task's columns ([`Column`], declared in the train crate) become rows with
//! [`Quantity::of_column`]; the attention-geometry rows are [`GEOMETRY`]. Numbers
//! ([`crate::numbers`], [`head_numbers`]), comparisons ([`crate::comparisons`]), the Markdown
//! tables and the findings all iterate over these rows. A new diagnostic is one function (in
//! [`crate::diagnostics`] or [`crate::geometry`], filling a [`HeadGeometry`] field) and one row
//! here.

use attnlab_train::tasks::report::{Column, Margin, Question, Source, Unit};
use serde::Serialize;

use crate::diagnostics::{NEAR_UNIFORM, SINK_THRESHOLD};
use crate::geometry::HeadGeometry;

/// Which way a quantity improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger is better (accuracy, throughput).
    HigherIsBetter,
    /// Smaller is better (loss, error, cost).
    LowerIsBetter,
    /// Neither is better: a description of the attention (entropy, key-norm dispersion).
    Neither,
}

/// How the per-head readings of a geometry quantity become one number per run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Mean over every layer and head.
    Mean,
    /// Largest over every layer and head.
    Max,
    /// Share of heads whose reading is at least the value.
    ShareAtLeast(f64),
    /// Share of heads whose reading is above the value.
    ShareAbove(f64),
}

impl Aggregate {
    /// The aggregate of `xs` (one reading per head); `None` for no head.
    pub fn of(self, xs: &[f64]) -> Option<f64> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len() as f64;
        let share = |keep: &dyn Fn(f64) -> bool| xs.iter().filter(|x| keep(**x)).count() as f64 / n;
        Some(match self {
            Aggregate::Mean => xs.iter().sum::<f64>() / n,
            Aggregate::Max => xs.iter().copied().fold(0.0, f64::max),
            Aggregate::ShareAtLeast(t) => share(&|x| x >= t),
            Aggregate::ShareAbove(t) => share(&|x| x > t),
        })
    }
}

/// How a quantity's value is obtained for a run.
#[derive(Debug, Clone, Copy)]
pub enum Compute {
    /// The number stored under the key (in `summary.json`, or derived from `metrics.jsonl`
    /// while a run has no summary).
    Stored,
    /// Bits from the cross-entropy in nats stored under this key.
    BitsFromNats(&'static str),
    /// One reading per attention head, aggregated over the run's layers and heads.
    Heads {
        /// The reading of one head.
        read: fn(&HeadGeometry) -> f64,
        /// How the readings become one number.
        over: Aggregate,
    },
}

/// One row of the quantity table.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Quantity {
    /// Dotted key into a run's numbers (`final_val_loss`, `geometry.tv_to_dot`).
    pub key: &'static str,
    /// Header in the report.
    pub header: &'static str,
    /// What the number measures.
    pub unit: Unit,
    /// Decimals of its values in the final tables.
    pub digits: usize,
    /// Decimals of its means and differences in the comparison tables and findings.
    pub diff_digits: usize,
    /// Which way it improves.
    pub direction: Direction,
    /// Equivalence margin δ: `None` for a quantity not compared with the baseline (step count,
    /// wall time, counts of heads).
    pub margin: Option<Margin>,
    /// The part of the question its comparison informs, if a findings sentence reports it.
    pub question: Option<Question>,
    /// How its value is obtained.
    #[serde(skip)]
    pub compute: Compute,
}

impl Quantity {
    /// The row of a task's column: its declared key, header, unit, digits, direction, margin
    /// and question; differences of throughput in whole items per second, of step times in
    /// hundredths of a millisecond, others at 4 decimals.
    pub fn of_column(c: &Column) -> Self {
        let diff_digits = match c.unit {
            Unit::ItemsPerSecond => 0,
            Unit::Milliseconds => 2,
            Unit::Nats
            | Unit::BitsPerChar
            | Unit::BitsPerToken
            | Unit::Fraction
            | Unit::SquaredError
            | Unit::AbsoluteError
            | Unit::Distance
            | Unit::Steps
            | Unit::Seconds
            | Unit::Ratio
            | Unit::Score
            | Unit::Positions => 4,
        };
        Self {
            key: c.key,
            header: c.header,
            unit: c.unit,
            digits: c.digits,
            diff_digits,
            direction: if c.higher_is_better { Direction::HigherIsBetter } else { Direction::LowerIsBetter },
            margin: c.margin,
            question: c.question,
            compute: match c.source {
                Source::Stored => Compute::Stored,
                Source::BitsFromNats(nats) => Compute::BitsFromNats(nats),
            },
        }
    }

    /// The row compared with the baseline, equivalent within `margin`.
    pub const fn within(self, margin: Margin) -> Self {
        Self { margin: Some(margin), ..self }
    }

    /// The row whose comparison the findings report under `question`.
    pub const fn informs(self, question: Question) -> Self {
        Self { question: Some(question), ..self }
    }

    /// A quantity on a ratio scale (a true zero: losses, errors, distances, costs), whose ratio
    /// to the baseline's mean the report gives; fractions and dimensionless shares are not.
    pub fn ratio_scale(&self) -> bool {
        match self.unit {
            Unit::Nats
            | Unit::BitsPerChar
            | Unit::BitsPerToken
            | Unit::SquaredError
            | Unit::AbsoluteError
            | Unit::Distance
            | Unit::Steps
            | Unit::ItemsPerSecond
            | Unit::Milliseconds
            | Unit::Seconds
            | Unit::Score
            | Unit::Positions => true,
            Unit::Fraction | Unit::Ratio => false,
        }
    }

    /// The words of a ratio below and above 1: `closer` / `farther` for distances, `lower` /
    /// `higher` otherwise.
    pub fn ratio_words(&self) -> (&'static str, &'static str) {
        match self.unit {
            Unit::Distance => ("closer", "farther"),
            Unit::Nats
            | Unit::BitsPerChar
            | Unit::BitsPerToken
            | Unit::SquaredError
            | Unit::AbsoluteError
            | Unit::Steps
            | Unit::ItemsPerSecond
            | Unit::Milliseconds
            | Unit::Seconds
            | Unit::Score
            | Unit::Positions
            | Unit::Fraction
            | Unit::Ratio => ("lower", "higher"),
        }
    }

    /// Compared with the baseline: it declares a margin.
    pub fn compared(&self) -> bool {
        self.margin.is_some()
    }

    /// "better" / "worse" for a difference of sign `diff` (mean minus baseline), or
    /// "higher" / "lower" for a quantity with no better direction.
    pub fn change_word(&self, diff: f64) -> &'static str {
        match (self.direction, diff > 0.0) {
            (Direction::HigherIsBetter, true) | (Direction::LowerIsBetter, false) => "better",
            (Direction::HigherIsBetter, false) | (Direction::LowerIsBetter, true) => "worse",
            (Direction::Neither, true) => "higher",
            (Direction::Neither, false) => "lower",
        }
    }
}

/// A geometry row, read per head and aggregated: no margin (not compared) until
/// [`Quantity::within`], no findings sentence until [`Quantity::informs`].
const fn heads(
    key: &'static str,
    header: &'static str,
    unit: Unit,
    digits: usize,
    read: fn(&HeadGeometry) -> f64,
    over: Aggregate,
) -> Quantity {
    Quantity {
        key,
        header,
        unit,
        digits,
        diff_digits: digits,
        direction: Direction::Neither,
        margin: None,
        question: None,
        compute: Compute::Heads { read, over },
    }
}

/// Key-norm dispersion, `geometry.key_norm_cv`.
pub const KEY_NORM_CV: &str = "geometry.key_norm_cv";
/// TV to dot attention at the same effective scale, `geometry.tv_to_dot`.
pub const TV_TO_DOT: &str = "geometry.tv_to_dot";
/// Share of near-uniform heads, `geometry.near_uniform_heads`.
pub const NEAR_UNIFORM_HEADS: &str = "geometry.near_uniform_heads";

/// Margin of a share or a distance between distributions (TV, sink mass): ±0.02.
const SHARE_MARGIN: Margin = Margin::Absolute(0.02);

/// The attention-geometry rows, per run from its heads ([`head_numbers`]); the compared ones in
/// the order of their comparison tables.
pub const GEOMETRY: [Quantity; 9] = [
    heads(KEY_NORM_CV, "key-norm CV", Unit::Ratio, 3, |h| h.key_norm_cv, Aggregate::Mean)
        .within(SHARE_MARGIN),
    heads(TV_TO_DOT, "TV to dot (same effective scale)", Unit::Fraction, 3, |h| h.tv_to_dot, Aggregate::Mean)
        .within(SHARE_MARGIN),
    heads(
        "geometry.entropy_ratio",
        "entropy / uniform entropy",
        Unit::Ratio,
        3,
        HeadGeometry::entropy_ratio,
        Aggregate::Mean,
    )
    .within(SHARE_MARGIN)
    .informs(Question::Geometry),
    heads("geometry.sink_mass", "attention-sink mass", Unit::Fraction, 3, |h| h.sink_mass, Aggregate::Mean)
        .within(SHARE_MARGIN)
        .informs(Question::Geometry),
    heads(
        "geometry.unselected_keys",
        "unselected keys",
        Unit::Fraction,
        3,
        |h| h.unselected_keys,
        Aggregate::Mean,
    )
    .within(SHARE_MARGIN)
    .informs(Question::Geometry),
    heads("geometry.max_logit", "max |score|", Unit::Score, 2, |h| h.max_logit, Aggregate::Max)
        .within(Margin::Relative(0.10))
        .informs(Question::Dynamics),
    heads(
        "geometry.mean_distance",
        "mean attention distance",
        Unit::Positions,
        2,
        |h| h.mean_distance,
        Aggregate::Mean,
    )
    .within(Margin::Relative(0.10)),
    heads(
        NEAR_UNIFORM_HEADS,
        "near-uniform heads",
        Unit::Fraction,
        3,
        HeadGeometry::entropy_ratio,
        Aggregate::ShareAtLeast(1.0 - NEAR_UNIFORM),
    ),
    heads(
        "geometry.sink_heads",
        "sink heads",
        Unit::Fraction,
        3,
        |h| h.sink_mass,
        Aggregate::ShareAbove(SINK_THRESHOLD),
    ),
];

/// A run's geometry numbers from its heads: one per [`GEOMETRY`] row (none without heads).
pub fn head_numbers(heads: &[HeadGeometry]) -> Vec<(String, f64)> {
    GEOMETRY
        .iter()
        .filter_map(|q| match q.compute {
            Compute::Heads { read, over } => {
                let xs: Vec<f64> = heads.iter().map(read).collect();
                Some((q.key.to_string(), over.of(&xs)?))
            }
            Compute::Stored | Compute::BitsFromNats(_) => None,
        })
        .collect()
}

/// The rows of a task group: its task's columns, then the geometry rows.
pub fn table(columns: &[Column]) -> Vec<Quantity> {
    columns.iter().map(Quantity::of_column).chain(GEOMETRY).collect()
}
