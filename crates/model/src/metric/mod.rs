//! The attention metrics: per-head queries and keys in, attention scores and weights out.
//!
//! Shapes: `q` is `(b, h, tq, d)`, `k` is `(b, h, tk, d)`, scores are `(b, h, tq, tk)`.
//!
//! Every distance comes from one matrix product and two norms,
//! `d2 = max(0, |q|^2 + |k|^2 - 2 q.k)`; no `(tq, tk, d)` tensor of differences is ever built.
//! With `x = d2 + delta` (delta keeps gradients finite at q == k) and `dist^p = x^(p/2)`:
//!
//! | metric | score |
//! |---|---|
//! | `dot` | `scale * q.k` (scale `attn_scale`, `1/sqrt(d)` by default; per head with `learn_scale`) |
//! | `cosine` | `tau_h * q.k / (|q| |k|)`, tau a per-head temperature |
//! | `neg_sq_euclid` | `-scale * d2` |
//! | `neg_euclid` | `-scale * x^(p/2)`, p = 1 by default: the Euclidean distance |
//! | `idw` (`neglog`) | `-log(eps + x^(p/2))`, p optionally learned per head |
//! | `inv_dist` | `1 / (eps + x^(p/2))` |
//! | `rbf` | `exp(-x^(p/2) / 2)` |
//!
//! Identities the tests check: `-d2 = 2 q.k - |q|^2 - |k|^2`, and softmax ignores the query term,
//! so `neg_sq_euclid` is dot-product attention of scale `2/sqrt(d)` plus a key bias
//! `-|k|^2/sqrt(d)`; it equals dot-product attention when all keys share one norm. The softmax of
//! `idw` scores is `(eps + dist^p)^-1` normalised: Shepard's (1968) inverse distance weighting.
//!
//! Modules: [`kind`] (the enum and its names), [`table`] (what each metric computes, the one
//! place a new metric's formulas go), [`num`] (the number types formulas run on), [`distance`] (distances and powers), [`unit`] (unit rows of
//! `cosine`), [`spec`] (config), [`layer`] ([`MetricLayer`]), [`mask`] (additive masks).
//!
//! Adding a metric: a variant in [`kind`]'s list, its row (type, [`table::Metric`] impl and
//! `with_metric!` arm) in [`table`], and its naive-reference case in `tests/metric.rs`.

pub mod cuda_row;
pub mod distance;
pub mod kind;
pub mod layer;
pub mod mask;
pub mod num;
pub mod spec;
pub mod table;
pub mod unit;

pub use distance::sq_dists;
pub use kind::MetricKind;
pub use layer::MetricLayer;
pub use mask::{MaskCache, MaskShape, causal_mask, context_mask};
pub use spec::MetricSpec;
