//! Reductions written so that they vectorise: [`LANES`] independent partial results, combined
//! at the end. A plain `iter().sum()` over `f32` is one serial chain of additions (floating-point
//! addition is not associative, so the compiler may not reorder it), four cycles per element.

/// Partial results kept side by side (two AVX-512 or four AVX2 registers).
const LANES: usize = 32;

/// `sum_i f(i)` for `i < n`, with `f` evaluated in lane-wide chunks.
#[inline(always)]
pub(super) fn fold_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let full = n / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    let mut tail = 0f32;
    for i in full..n {
        tail += f(i);
    }
    acc.iter().sum::<f32>() + tail
}

/// `x_i <- f(x_i)` for every `i`; returns `sum_i f(x_i)` (one pass instead of two).
#[inline(always)]
pub(super) fn map_sum(x: &mut [f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c.iter_mut()) {
            *v = f(*v);
            *a += *v;
        }
    }
    let mut tail = 0f32;
    for v in chunks.into_remainder() {
        *v = f(*v);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

/// `sum_i x_i`.
#[inline(always)]
pub(super) fn sum(x: &[f32]) -> f32 {
    fold_sum(x.len(), |i| x[i])
}

/// `sum_i a_i b_i` over the shorter of the two.
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    fold_sum(n, |i| a[i] * b[i])
}

/// `sum_i (x_i - c)^2`.
#[inline(always)]
pub(super) fn sum_sq_dev(x: &[f32], c: f32) -> f32 {
    fold_sum(x.len(), |i| (x[i] - c) * (x[i] - c))
}

/// `max_i x_i` (`-inf` for an empty slice; NaN entries are skipped, as by `f32::max`).
#[inline(always)]
pub(super) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    acc.iter().copied().fold(tail, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_match_plain_loops_for_every_length_around_the_lane_count() {
        for n in [0usize, 1, 5, 31, 32, 33, 64, 100, 129] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.25).collect();
            let y: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
            assert!(close(sum(&x), x.iter().sum()), "sum n={n}");
            assert!(close(dot(&x, &y), x.iter().zip(&y).map(|(a, b)| a * b).sum()), "dot n={n}");
            assert!(close(sum_sq_dev(&x, 0.3), x.iter().map(|v| (v - 0.3) * (v - 0.3)).sum()), "sq n={n}");
            assert_eq!(max(&x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max), "max n={n}");
            let mut m = x.clone();
            let s = map_sum(&mut m, |v| v * v + 1.0);
            assert!(m.iter().zip(&x).all(|(a, b)| *a == b * b + 1.0), "map n={n}");
            assert!(close(s, x.iter().map(|v| v * v + 1.0).sum()), "map_sum n={n}");
        }
        assert_eq!(max(&[f32::NEG_INFINITY, -1.0]), -1.0);
    }
}
