//! [`MetricKind`]: the closed set of attention metrics and their config names.
//!
//! The enum, [`MetricKind::ALL`] and the names come from one list (the `metric_kinds!` call
//! below), so a new variant cannot be left out of `ALL`. What each metric computes is in
//! [`super::table`]; the compiler then names every other place to touch.

use candle_core::{Result, bail};
use serde::{Deserialize, Serialize};

use super::table::{HeadParam, Input, Metric, with_metric};

/// Declares `MetricKind`, `MetricKind::ALL` and `MetricKind::name` from one list.
macro_rules! metric_kinds {
    ($( $(#[$attr:meta])* $variant:ident = $name:literal $(, alias $alias:literal)?; )*) => {
        /// Which similarity turns a query and a key into a score (config names in snake case).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum MetricKind {
            $(
                $(#[$attr])*
                #[serde(rename = $name $(, alias = $alias)?)]
                $variant,
            )*
        }

        impl MetricKind {
            /// Every metric, in the order reports list them.
            pub const ALL: [MetricKind; [$($name),*].len()] = [$(MetricKind::$variant),*];

            /// The config name (`dot`, `neg_sq_euclid`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(MetricKind::$variant => $name,)*
                }
            }

            /// The metric named `name`, also by its alias (`neglog` for `idw`).
            fn by_name(name: &str) -> Option<Self> {
                match name {
                    $($name $(| $alias)? => Some(MetricKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

metric_kinds! {
    /// `scale * q.k` (the default).
    #[default]
    Dot = "dot";
    /// `tau * q.k / (|q| |k|)` with a per-head temperature tau.
    Cosine = "cosine";
    /// `-scale * |q - k|^2`.
    NegSqEuclid = "neg_sq_euclid";
    /// `-scale * |q - k|^p`, p = 1 by default (the Euclidean distance).
    NegEuclid = "neg_euclid";
    /// `-log(eps + |q - k|^p)`: softmax gives Shepard's inverse distance weighting.
    Idw = "idw", alias "neglog";
    /// `1 / (eps + |q - k|^p)`.
    InvDist = "inv_dist";
    /// `exp(-|q - k|^p / 2)`.
    Rbf = "rbf";
}

impl MetricKind {
    /// Parses a config name (accepts the alias `neglog`); the error lists every name.
    pub fn parse(name: &str) -> Result<Self> {
        match Self::by_name(name) {
            Some(m) => Ok(m),
            None => bail!(
                "unknown attention metric `{name}` (expected one of: {})",
                MetricKind::ALL.map(|m| m.name()).join(", ")
            ),
        }
    }

    /// What the score is a function of (the table's [`Metric::INPUT`]).
    pub fn input(self) -> Input {
        with_metric!(self, M => M::INPUT)
    }

    /// Whether the score is a function of the distance `|q - k|` alone.
    pub fn is_distance(self) -> bool {
        self.input().is_distance()
    }

    /// The per-head parameter the metric takes (the table's [`Metric::HEAD`]).
    pub fn head_param(self) -> HeadParam {
        with_metric!(self, M => M::HEAD)
    }

    /// The power p used when the config gives none (the table's [`Metric::DEFAULT_POWER`]).
    pub fn default_power(self) -> f64 {
        with_metric!(self, M => M::DEFAULT_POWER)
    }
}

impl std::fmt::Display for MetricKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::MetricKind;

    #[test]
    fn every_name_parses_back_and_serde_agrees() {
        for m in MetricKind::ALL {
            assert_eq!(MetricKind::parse(m.name()).ok(), Some(m));
            let json = serde_json::to_string(&m).expect("serialise");
            assert_eq!(json, format!("\"{}\"", m.name()));
        }
        assert_eq!(MetricKind::parse("neglog").ok(), Some(MetricKind::Idw));
        assert_eq!(MetricKind::default(), MetricKind::Dot);
    }
}
