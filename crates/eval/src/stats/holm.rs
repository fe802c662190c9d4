//! Holm's step-down correction of p-values for multiple comparisons.
//!
//! With the `m` p-values sorted ascending, `p_(1) <= ... <= p_(m)`, the adjusted values are
//! `p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))` (Holm 1979, Scand. J. Statist. 6, 65–70).
//! Rejecting where `p~ < alpha` controls the family-wise error rate at `alpha`.

/// Holm-adjusted p-values in the input order; `None` entries (no test) are skipped and do not
/// count towards `m`.
pub fn holm(p: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut order: Vec<(usize, f64)> = p.iter().enumerate().filter_map(|(i, x)| Some((i, (*x)?))).collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    let m = order.len();
    let mut out = vec![None; p.len()];
    let mut running = 0.0f64;
    for (rank, (i, pv)) in order.into_iter().enumerate() {
        running = running.max(((m - rank) as f64 * pv).min(1.0));
        out[i] = Some(running);
    }
    out
}
