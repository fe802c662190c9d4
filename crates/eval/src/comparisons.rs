//! The tables of a task group's comparisons with the baseline: one per compared row of the
//! quantity table ([`crate::quantity`]), see [`crate::stats::compare`].

use crate::group::TaskGroup;
use crate::numbers::Numbers;
use crate::quantity::Quantity;
use crate::stats::compare::{Arm, ComparisonTable, comparison_table};

/// One table per compared quantity (a row with a margin): each seed group against its baseline
/// (`baselines[i]`, see [`crate::baseline::baselines`]); `numbers[i]`, `names[i]` and
/// `seeds[i]` are the runs of seed group `i`. Quantities no run has are left out.
pub fn tables(
    group: &TaskGroup,
    baselines: &[Option<usize>],
    numbers: &[Vec<Numbers>],
    names: &[Vec<String>],
    seeds: &[Vec<Option<u64>>],
    quantities: &[Quantity],
) -> Vec<ComparisonTable> {
    let arm = |i: usize, key: &str| {
        let mut arm =
            Arm { label: group.seed_groups[i].label.clone(), runs: vec![], seeds: vec![], values: vec![] };
        for ((n, nums), seed) in names[i].iter().zip(&numbers[i]).zip(&seeds[i]) {
            if let Some(v) = nums.get(key) {
                arm.runs.push(n.clone());
                arm.seeds.push(*seed);
                arm.values.push(*v);
            }
        }
        arm
    };
    quantities
        .iter()
        .filter(|q| q.compared())
        .filter_map(|q| {
            let pairs: Vec<(Arm, Arm)> = baselines
                .iter()
                .enumerate()
                .filter_map(|(i, b)| Some((arm(i, q.key), arm((*b)?, q.key))))
                .collect();
            let table = comparison_table(q, &pairs);
            (!table.rows.is_empty()).then_some(table)
        })
        .collect()
}
