//! Singular values of small dense matrices (row-major `f64`), by one-sided Jacobi rotations.

/// Singular values of the `m x n` row-major matrix `a`, largest first.
///
/// One-sided Jacobi (Hestenes): rotate pairs of columns until all are orthogonal; the singular
/// values are then the column norms. Accurate to about machine precision for the small
/// (`<= 512`) matrices of attention layers.
pub fn singular_values(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    assert_eq!(a.len(), m * n, "singular_values: {} elements for a {m} x {n} matrix", a.len());
    // Work on the orientation with fewer columns: singular values of A and A^T agree.
    let (_rows, cols, mut cols_data) = if n <= m {
        (m, n, (0..n).map(|j| (0..m).map(|i| a[i * n + j]).collect::<Vec<f64>>()).collect::<Vec<_>>())
    } else {
        (n, m, (0..m).map(|i| a[i * n..(i + 1) * n].to_vec()).collect::<Vec<_>>())
    };
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..cols {
            for q in p + 1..cols {
                let (alpha, beta, gamma) = {
                    let (x, y) = (&cols_data[p], &cols_data[q]);
                    let alpha: f64 = x.iter().map(|v| v * v).sum();
                    let beta: f64 = y.iter().map(|v| v * v).sum();
                    let gamma: f64 = x.iter().zip(y).map(|(u, v)| u * v).sum();
                    (alpha, beta, gamma)
                };
                if gamma.abs() <= 1e-15 * (alpha * beta).sqrt() || gamma == 0.0 {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                let (lo, hi) = cols_data.split_at_mut(q);
                for (u, v) in lo[p].iter_mut().zip(hi[0].iter_mut()) {
                    let (x, y) = (*u, *v);
                    *u = c * x - s * y;
                    *v = s * x + c * y;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut sv: Vec<f64> = cols_data.iter().map(|c| c.iter().map(|v| v * v).sum::<f64>().sqrt()).collect();
    sv.sort_by(|x, y| y.total_cmp(x));
    sv
}

/// Frobenius norm `sqrt(sum a_ij^2)`.
pub fn frobenius(a: &[f64]) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Row-major product of `a` (`m x k`) and `b` (`k x n`).
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for l in 0..k {
            let x = a[i * k + l];
            if x != 0.0 {
                for j in 0..n {
                    out[i * n + j] += x * b[l * n + j];
                }
            }
        }
    }
    out
}

/// Transpose of the row-major `m x n` matrix `a`.
pub fn transpose(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    (0..n).flat_map(|j| (0..m).map(move |i| a[i * n + j])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_and_known_2x2() {
        let sv = singular_values(&[3.0, 0.0, 0.0, 0.0, -5.0, 0.0], 2, 3);
        assert!((sv[0] - 5.0).abs() < 1e-12 && (sv[1] - 3.0).abs() < 1e-12, "{sv:?}");
        // [[1, 1], [0, 1]]: singular values (1 ± sqrt 5) / 2 in absolute value = golden ratio pair.
        let sv = singular_values(&[1.0, 1.0, 0.0, 1.0], 2, 2);
        let phi = (1.0 + 5f64.sqrt()) / 2.0;
        assert!((sv[0] - phi).abs() < 1e-12 && (sv[1] - 1.0 / phi).abs() < 1e-12, "{sv:?}");
    }

    #[test]
    fn rank_one_and_frobenius_identity() {
        // u v^T has one singular value |u||v|.
        let u = [1.0, 2.0, 2.0];
        let v = [3.0, 4.0];
        let a: Vec<f64> = u.iter().flat_map(|x| v.iter().map(move |y| x * y)).collect();
        let sv = singular_values(&a, 3, 2);
        assert!((sv[0] - 15.0).abs() < 1e-10 && sv[1].abs() < 1e-10, "{sv:?}");
        // sum sigma^2 = |A|_F^2 on an arbitrary matrix.
        let b: Vec<f64> = (0..35).map(|i| ((i * 7919) % 23) as f64 / 7.0 - 1.5).collect();
        let sv = singular_values(&b, 5, 7);
        let s2: f64 = sv.iter().map(|s| s * s).sum();
        assert!((s2 - frobenius(&b).powi(2)).abs() < 1e-9);
        let svt = singular_values(&transpose(&b, 5, 7), 7, 5);
        assert!(sv.iter().zip(&svt).all(|(x, y)| (x - y).abs() < 1e-10), "{sv:?} vs {svt:?}");
        // A matmul against a hand-computed product.
        assert_eq!(
            matmul(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2, 2, 2),
            vec![19.0, 22.0, 43.0, 50.0]
        );
    }
}
