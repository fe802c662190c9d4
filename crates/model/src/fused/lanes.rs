//! Reductions written so that they vectorise: [`LANES`] independent partial results, combined
//! at the end. A plain `iter().sum()` over `f32` is one serial chain of additions (floating-point
//! addition is not associative, so the compiler may not reorder it), four cycles per element.

/// Partial results kept side by side (two AVX-512 or four AVX2 registers).
const LANES: usize = 32;

/// `sum_i f(x_0[i], .., x_{K-1}[i])` over the shortest of the `K` slices, evaluated in
/// lane-wide chunks of fixed length (so the loop has no bounds checks and vectorises).
#[inline(always)]
pub(super) fn sum_by<const K: usize>(xs: [&[f32]; K], f: impl Fn([f32; K]) -> f32) -> f32 {
    let n = xs.iter().map(|x| x.len()).min().unwrap_or(0);
    let full = n / LANES * LANES;
    let mut acc = [0f32; LANES];
    for base in (0..full).step_by(LANES) {
        let c: [&[f32; LANES]; K] = xs.map(|x| x[base..base + LANES].try_into().expect("a full chunk"));
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(c.map(|c| c[l]));
        }
    }
    let mut tail = 0f32;
    for i in full..n {
        tail += f(xs.map(|x| x[i]));
    }
    combine(acc, |a, b| a + b) + tail
}

/// `o_i <- f(x_0[i], ..).0` for every `i < o.len()` (every `x_k` at least as long as `o`);
/// returns `sum_i f(x_0[i], ..).1`: a map and a reduction in one vectorised pass.
#[inline(always)]
pub(super) fn map_sum_by<const K: usize>(
    o: &mut [f32],
    xs: [&[f32]; K],
    f: impl Fn([f32; K]) -> (f32, f32),
) -> f32 {
    let n = o.len();
    let xs = xs.map(|x| &x[..n]);
    let full = n / LANES * LANES;
    let mut acc = [0f32; LANES];
    for (ci, oc) in o.chunks_exact_mut(LANES).enumerate() {
        let base = ci * LANES;
        let c: [&[f32; LANES]; K] = xs.map(|x| x[base..base + LANES].try_into().expect("a full chunk"));
        for (l, (a, ov)) in acc.iter_mut().zip(oc.iter_mut()).enumerate() {
            let (v, r) = f(c.map(|c| c[l]));
            *ov = v;
            *a += r;
        }
    }
    let mut tail = 0f32;
    for (i, ov) in o.iter_mut().enumerate().skip(full) {
        let (v, r) = f(xs.map(|x| x[i]));
        *ov = v;
        tail += r;
    }
    combine(acc, |a, b| a + b) + tail
}

/// Folds the lanes pairwise (halves combined elementwise: five vector steps for 32 lanes)
/// instead of in one serial chain of 31 operations (about 120 cycles of latency, which
/// dominated short rows such as one head's 32 dimensions).
#[inline(always)]
fn combine(mut acc: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] = op(acc[i], acc[i + w]);
        }
    }
    acc[0]
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
    combine(acc, |a, b| a + b) + tail
}

/// `sum_i x_i`.
#[inline(always)]
pub(super) fn sum(x: &[f32]) -> f32 {
    sum_by([x], |[v]| v)
}

/// `sum_i a_i b_i` over the shorter of the two.
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    sum_by([a, b], |[x, y]| x * y)
}

/// `sum_i (x_i - c)^2`.
#[inline(always)]
pub(super) fn sum_sq_dev(x: &[f32], c: f32) -> f32 {
    sum_by([x], |[v]| (v - c) * (v - c))
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
    combine(acc, f32::max).max(tail)
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
            let mut o = vec![f32::NAN; n];
            let r = map_sum_by(&mut o, [&x, &y], |[a, b]| (a - b, a * b * 2.0));
            assert!(o.iter().zip(&x).zip(&y).all(|((o, a), b)| *o == a - b), "map_sum_by map n={n}");
            assert!(
                close(r, 2.0 * x.iter().zip(&y).map(|(a, b)| a * b).sum::<f32>()),
                "map_sum_by sum n={n}"
            );
        }
        assert_eq!(max(&[f32::NEG_INFINITY, -1.0]), -1.0);
    }
}
