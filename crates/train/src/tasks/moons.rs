//! Two moons, generated as scikit-learn's `make_moons` does: per moon `n` angles
//! `t_i = pi i / (n - 1)`; the outer moon (class 0) at `(cos t, sin t)`, the inner one (class 1)
//! at `(1 - cos t, 1/2 - sin t)`, plus N(0, noise^2) on every coordinate.

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A labelled 2-D point set.
#[derive(Debug, Clone, PartialEq)]
pub struct Points {
    /// Points `(x, y)`.
    pub x: Vec<[f64; 2]>,
    /// Class of each point.
    pub label: Vec<u32>,
}

impl Points {
    /// Per-feature mean and (unbiased) standard deviation.
    pub fn stats(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.x.len() as f64;
        let mean: Vec<f64> = (0..2).map(|j| self.x.iter().map(|p| p[j]).sum::<f64>() / n).collect();
        let std = (0..2)
            .map(|j| {
                (self.x.iter().map(|p| (p[j] - mean[j]).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt()
            })
            .collect();
        (mean, std)
    }
}

/// `n_per_moon` points on each moon with Gaussian noise `noise`, drawn from stream `stream` of
/// a generator seeded with `seed`.
pub fn two_moons(n_per_moon: usize, noise: f64, seed: u64, stream: u64) -> Result<Points> {
    if n_per_moon == 0 {
        bail!("two moons need at least one point per moon")
    }
    let normal = match Normal::new(0.0, noise) {
        Ok(n) if noise.is_finite() => n,
        _ => bail!("task.noise must be a finite number >= 0, got {noise}"),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut pts = Points { x: Vec::with_capacity(2 * n_per_moon), label: Vec::with_capacity(2 * n_per_moon) };
    let step = std::f64::consts::PI / (n_per_moon.max(2) - 1) as f64;
    for class in 0..2u32 {
        for i in 0..n_per_moon {
            let t = i as f64 * step;
            let (x, y) = if class == 0 { (t.cos(), t.sin()) } else { (1.0 - t.cos(), 0.5 - t.sin()) };
            pts.x.push([x + normal.sample(&mut rng), y + normal.sample(&mut rng)]);
            pts.label.push(class);
        }
    }
    Ok(pts)
}
