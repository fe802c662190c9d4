//! What a task reports: the report it declares ([`TaskReport`]: table columns, pictures, the
//! plateau threshold, character-level reporting, the configuration line).
//!
//! Evaluation renders exactly what a task declares here and never tests task names. A leaf:
//! it imports no task and no registry.

use serde::Serialize;

/// What a number measures (shown in `report.json`; decides nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Cross-entropy in nats.
    Nats,
    /// Cross-entropy in bits per character.
    BitsPerChar,
    /// Cross-entropy in bits per token.
    BitsPerToken,
    /// A fraction in [0, 1] (accuracy).
    Fraction,
    /// Mean squared error of a regression.
    SquaredError,
    /// Absolute error of a regression (max, mean or root-mean-square).
    AbsoluteError,
    /// Euclidean distance in input space.
    Distance,
    /// Optimiser steps.
    Steps,
    /// Training items (tokens, points) per second.
    ItemsPerSecond,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
    /// A dimensionless ratio (a coefficient of variation, entropy over uniform entropy).
    Ratio,
    /// A pre-softmax attention score.
    Score,
    /// Sequence positions (attention distance).
    Positions,
}

/// An equivalence margin δ: a configuration whose difference to the baseline lies within `±δ`
/// (shown by TOST) counts as the same as the baseline for that quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Margin {
    /// `±δ` in the quantity's unit.
    Absolute(f64),
    /// `±δ` as a fraction of the baseline's mean (0.1: ±10% of it).
    Relative(f64),
}

impl Margin {
    /// δ in the quantity's unit for a baseline mean `baseline_mean`.
    pub fn delta(self, baseline_mean: f64) -> f64 {
        match self {
            Margin::Absolute(d) => d,
            Margin::Relative(f) => f * baseline_mean.abs(),
        }
    }

    /// `±0.02` / `±10%` of the baseline.
    pub fn text(self) -> String {
        match self {
            Margin::Absolute(d) => format!("±{d}"),
            Margin::Relative(f) => format!("±{}% of the baseline", 100.0 * f),
        }
    }

    /// A margin as a sweep file writes it: a number (absolute, `0.02`) or a percentage of the
    /// baseline's mean (`"10%"`). Errors name the value; δ must be positive and finite.
    pub fn parse(value: &toml::Value) -> anyhow::Result<Self> {
        let margin = match value {
            toml::Value::Float(x) => Margin::Absolute(*x),
            toml::Value::Integer(x) => Margin::Absolute(*x as f64),
            toml::Value::String(s) => {
                let pct = s.trim().strip_suffix('%').ok_or_else(|| {
                    anyhow::anyhow!(
                        "margin \"{s}\" must be a number (absolute) or a percentage such as \"10%\""
                    )
                })?;
                let f: f64 =
                    pct.trim().parse().map_err(|_| anyhow::anyhow!("margin \"{s}\" is not a percentage"))?;
                Margin::Relative(f / 100.0)
            }
            other => {
                anyhow::bail!("margin {other} must be a number (absolute) or a percentage such as \"10%\"")
            }
        };
        let (Margin::Absolute(d) | Margin::Relative(d)) = margin;
        if !(d.is_finite() && d > 0.0) {
            anyhow::bail!("margin {value} must be positive and finite")
        }
        Ok(margin)
    }
}

/// The part of attnlab's question a column's comparison with the baseline informs (the
/// findings report it there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Question {
    /// Statistical and geometric differences of the attention.
    Geometry,
    /// Training dynamics (final loss, logit growth).
    Dynamics,
    /// Cost (throughput, step time).
    Cost,
}

/// How a column's value is obtained from a run's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The number stored under the column's key (in `summary.json`, or derived from
    /// `metrics.jsonl` while a run has no summary).
    Stored,
    /// Bits from the cross-entropy in nats stored under this key ([`nats_to_bits`]).
    BitsFromNats(&'static str),
}

/// One column of a task's final table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Column {
    /// Dotted key into the run's numbers (`val_accuracy`, `franke.model.rms`).
    pub key: &'static str,
    /// Header text.
    pub header: &'static str,
    /// What the number measures.
    pub unit: Unit,
    /// Whether a larger value is better (accuracy) or worse (loss, error, cost).
    pub higher_is_better: bool,
    /// Decimals shown.
    pub digits: usize,
    /// Where the value comes from.
    pub source: Source,
    /// Its equivalence margin against the baseline; `None` for a column the report does not
    /// compare (step count, wall time).
    pub margin: Option<Margin>,
    /// The part of the question whose findings report its comparison, if any.
    pub question: Option<Question>,
}

impl Column {
    /// A stored number where lower is better.
    pub const fn lower(key: &'static str, header: &'static str, unit: Unit, digits: usize) -> Self {
        Self {
            key,
            header,
            unit,
            higher_is_better: false,
            digits,
            source: Source::Stored,
            margin: None,
            question: None,
        }
    }

    /// A stored number where higher is better.
    pub const fn higher(key: &'static str, header: &'static str, unit: Unit, digits: usize) -> Self {
        Self {
            key,
            header,
            unit,
            higher_is_better: true,
            digits,
            source: Source::Stored,
            margin: None,
            question: None,
        }
    }

    /// The column compared with the baseline, equivalent within `margin`.
    pub const fn within(self, margin: Margin) -> Self {
        Self { margin: Some(margin), ..self }
    }

    /// The column whose comparison the findings report under `question`.
    pub const fn informs(self, question: Question) -> Self {
        Self { question: Some(question), ..self }
    }
}

/// A picture of what the models of a task learned (rendered by evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Picture {
    /// 2-D prototype networks: keys over the training data and the decision regions.
    PrototypeMaps,
    /// 2-D interpolators: |error| maps of Franke's F1 beside the classical baselines.
    FrankeErrorMaps,
    /// In-context regressors: squared error against the number of in-context examples, one
    /// line per configuration and per classical baseline (Garg et al. 2022, Figure 2).
    ErrorByContextSize,
}

/// What counts as "got there" on a task: the first validation line past it is where a run
/// leaves its plateau (the report's "steps to threshold").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// A validation line's `accuracy` above the value (recall: leaving the plateau).
    AccuracyAbove(f64),
    /// Validation loss below the value (nats).
    LossBelow(f64),
}

impl Threshold {
    /// `val accuracy > 0.9` / `val loss < 2`.
    pub fn text(self) -> String {
        match self {
            Threshold::AccuracyAbove(x) => format!("val accuracy > {x}"),
            Threshold::LossBelow(x) => format!("val loss < {x}"),
        }
    }
}

/// What the report shows for a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskReport {
    /// The final table's columns, in order.
    pub columns: Vec<Column>,
    /// The task's pictures.
    pub pictures: Vec<Picture>,
    /// The plateau threshold, if the task has one.
    pub threshold: Option<Threshold>,
    /// Whether a token is a character (losses are then read as bits per character).
    pub char_level: bool,
    /// Keys of the task configuration left out of `config_text` (settings at the defaults the
    /// task's documentation states).
    pub config_omit: Vec<&'static str>,
    /// The task configuration as the report header shows it (compact JSON); the registry
    /// fills it in (`TaskConfig::report`), a task leaves it empty.
    pub config_text: String,
}

impl TaskReport {
    /// The loss columns, `task_columns`, the cost columns (with throughput when `throughput`)
    /// and `pictures`; no threshold, not character-level, the whole configuration shown.
    pub fn of(task_columns: &[Column], throughput: bool, pictures: Vec<Picture>) -> Self {
        let columns = [loss_columns(), task_columns.to_vec(), cost_columns(throughput)].concat();
        TaskReport {
            columns,
            pictures,
            threshold: None,
            char_level: false,
            config_omit: Vec::new(),
            config_text: String::new(),
        }
    }

    /// The report with the plateau threshold `threshold`.
    pub fn with_threshold(self, threshold: Threshold) -> Self {
        Self { threshold: Some(threshold), ..self }
    }

    /// The report of a character-level task when `char_level`.
    pub fn with_char_level(self, char_level: bool) -> Self {
        Self { char_level, ..self }
    }

    /// The report leaving the configuration key `key` out of the header.
    pub fn omitting(mut self, key: &'static str) -> Self {
        self.config_omit.push(key);
        self
    }
}

/// Bits from a cross-entropy in nats: `nats / ln 2` (the one conversion of the project).
pub fn nats_to_bits(nats: f64) -> f64 {
    nats / std::f64::consts::LN_2
}

/// Key of the final validation loss (nats), the first column of every task.
pub const FINAL_VAL_LOSS: &str = "final_val_loss";

/// Margin of a cross-entropy in nats: ±0.02 nats, about a tenth of the gap between nanoGPT's
/// baby recipe and the modern one.
pub const LOSS_MARGIN: Margin = Margin::Absolute(0.02);
/// Margin of a fraction (accuracy): ±1 point.
pub const FRACTION_MARGIN: Margin = Margin::Absolute(0.01);
/// Margin of a distance, an error or a cost: ±10% of the baseline's mean.
pub const RELATIVE_MARGIN: Margin = Margin::Relative(0.10);

/// Validation and best validation loss, the first columns of every task.
pub fn loss_columns() -> Vec<Column> {
    vec![
        Column::lower(FINAL_VAL_LOSS, "val loss", Unit::Nats, 4)
            .within(LOSS_MARGIN)
            .informs(Question::Dynamics),
        Column::lower("best_val_loss", "best val", Unit::Nats, 4).within(LOSS_MARGIN),
    ]
}

/// Cost columns, the last of every task: steps, throughput (when it means something for the
/// task) and wall time.
pub fn cost_columns(throughput: bool) -> Vec<Column> {
    let mut cols = vec![Column::lower("steps", "steps", Unit::Steps, 0)];
    if throughput {
        cols.push(
            Column::higher("tokens_per_s", "tokens/s", Unit::ItemsPerSecond, 0)
                .within(RELATIVE_MARGIN)
                .informs(Question::Cost),
        );
        cols.push(
            Column::lower("ms_per_step", "ms/step", Unit::Milliseconds, 1)
                .within(RELATIVE_MARGIN)
                .informs(Question::Cost),
        );
    }
    cols.push(Column::lower("wall_s", "wall s", Unit::Seconds, 1));
    cols
}

/// The report of runs whose task configuration cannot be read: losses and cost only.
pub fn generic_report(config_text: String) -> TaskReport {
    TaskReport { config_text, ..TaskReport::of(&[], true, Vec::new()) }
}
