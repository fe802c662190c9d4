//! Additive attention masks `(tq, tk)`: 0 where a query may see a key, `-inf` elsewhere.

use std::sync::{Arc, Mutex};

use candle_core::{Device, Result, Tensor};

/// Additive causal mask `(t, t)`: 0 where key <= query, `-inf` above the diagonal.
pub fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> =
        (0..t).flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(data, (t, t), device)
}

/// Additive set mask `(n + m, n + m)` for `n` context points followed by `m` queries: every
/// point sees the context points and nothing else.
pub fn context_mask(n_context: usize, n_query: usize, device: &Device) -> Result<Tensor> {
    let t = n_context + n_query;
    let data: Vec<f32> = (0..t)
        .flat_map(|_| (0..t).map(move |j| if j < n_context { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(data, (t, t), device)
}

/// Which additive mask: [`causal_mask`] of `t` positions or [`context_mask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskShape {
    /// `causal_mask(t)`.
    Causal(usize),
    /// `context_mask(n_context, n_query)`.
    Context(usize, usize),
}

impl MaskShape {
    /// Builds the mask on `device`.
    fn build(self, device: &Device) -> Result<Tensor> {
        match self {
            MaskShape::Causal(t) => causal_mask(t, device),
            MaskShape::Context(n, m) => context_mask(n, m, device),
        }
    }
}

/// The last mask a model built, reused by forwards of the same shape on the same device
/// (building one costs `t^2` host work and a copy to the device, and a kept mask lets the CUDA
/// route keep its reading of it, [`crate::gpu`]). Clones share the cache.
#[derive(Debug, Clone, Default)]
pub struct MaskCache(Arc<Mutex<Option<(MaskShape, Tensor)>>>);

impl MaskCache {
    /// The mask `shape` on `device`: the kept one when it matches, else a new one (then kept).
    pub fn get(&self, shape: MaskShape, device: &Device) -> Result<Tensor> {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, m)) = last.as_ref()
            && *s == shape
            && m.device().same_device(device)
        {
            return Ok(m.clone());
        }
        let m = shape.build(device)?;
        *last = Some((shape, m.clone()));
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_reuses_a_mask_of_the_same_shape_and_rebuilds_for_another() -> Result<()> {
        let cache = MaskCache::default();
        let a = cache.get(MaskShape::Causal(4), &Device::Cpu)?;
        let b = cache.get(MaskShape::Causal(4), &Device::Cpu)?;
        assert_eq!(a.id(), b.id(), "same shape: the kept tensor");
        let c = cache.get(MaskShape::Context(3, 1), &Device::Cpu)?;
        let want = context_mask(3, 1, &Device::Cpu)?;
        assert_eq!(c.to_vec2::<f32>()?, want.to_vec2::<f32>()?);
        let d = cache.get(MaskShape::Causal(5), &Device::Cpu)?;
        assert_eq!(d.dims(), &[5, 5]);
        Ok(())
    }
}
