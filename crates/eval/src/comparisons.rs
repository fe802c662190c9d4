//! The quantities compared with the baseline in each task group, and the tables of those
//! comparisons (see [`crate::stats::compare`]).

use crate::group::TaskGroup;
use attnlab_train::tasks::Column;

use crate::numbers::Numbers;
use crate::stats::compare::{Arm, ComparisonTable, comparison_table};

/// A compared quantity: key into a run's numbers, header, decimals.
pub type Quantity = (String, String, usize);

/// Geometry quantities compared across metrics: key, header, decimals.
pub const GEOMETRY_QUANTITIES: [(&str, &str, usize); 7] = [
    ("geometry.key_norm_cv", "key-norm CV", 3),
    ("geometry.tv_to_dot", "TV to dot (same effective scale)", 3),
    ("geometry.entropy_ratio", "entropy / uniform entropy", 3),
    ("geometry.sink_mass", "attention-sink mass", 3),
    ("geometry.unselected_keys", "unselected keys", 3),
    ("geometry.max_logit", "max |score|", 2),
    ("geometry.mean_distance", "mean attention distance", 2),
];

/// The quantities of a task group: the columns its task declares except step count and wall
/// time, then the geometry quantities.
pub fn quantities(columns: &[Column]) -> Vec<Quantity> {
    let mut out: Vec<Quantity> = columns
        .iter()
        .filter(|c| !matches!(c.key, "steps" | "wall_s"))
        .map(|c| (c.key.to_string(), c.header.to_string(), c.digits.max(3)))
        .collect();
    out.extend(GEOMETRY_QUANTITIES.iter().map(|(k, h, d)| (k.to_string(), h.to_string(), *d)));
    out
}

/// One table per quantity: each seed group against its baseline (`baselines[i]`, see
/// [`crate::baseline::baselines`]); `numbers[i]` and `names[i]` are the runs of seed group `i`.
pub fn tables(
    group: &TaskGroup,
    baselines: &[Option<usize>],
    numbers: &[Vec<Numbers>],
    names: &[Vec<String>],
    quantities: &[Quantity],
) -> Vec<ComparisonTable> {
    let arm = |i: usize, key: &str| {
        let (runs, values): (Vec<String>, Vec<f64>) = names[i]
            .iter()
            .zip(&numbers[i])
            .filter_map(|(n, nums)| Some((n.clone(), *nums.get(key)?)))
            .unzip();
        Arm { label: group.seed_groups[i].label.clone(), runs, values }
    };
    quantities
        .iter()
        .filter_map(|(key, header, _)| {
            let pairs: Vec<(Arm, Arm)> = baselines
                .iter()
                .enumerate()
                .filter_map(|(i, b)| Some((arm(i, key), arm((*b)?, key))))
                .collect();
            let table = comparison_table(key, header, &pairs);
            (!table.rows.is_empty()).then_some(table)
        })
        .collect()
}
