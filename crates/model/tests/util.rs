//! Helpers shared by the test modules: random tensors and distances between tensors.

use candle_core::{Device, Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The device every test runs on.
pub const DEV: Device = Device::Cpu;

/// Uniform values of standard deviation about `std` (seeded).
pub fn randn(rng: &mut ChaCha8Rng, shape: &[usize], std: f32) -> Result<Tensor> {
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * std * 1.7).collect();
    Tensor::from_vec(data, shape, &DEV)
}

/// `max |a - b|`.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// `max |a|`.
pub fn max_abs(a: &Tensor) -> Result<f32> {
    a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}
