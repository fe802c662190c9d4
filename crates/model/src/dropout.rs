//! Dropout as nanoGPT has it: on the embeddings (`transformer.drop`), on the attention weights
//! after the softmax (`attn_dropout`) and on both residual branches (`resid_dropout` after the
//! attention's output projection, `dropout` after the MLP), only while training. A kept value is
//! scaled by `1 / (1 - p)` (inverted dropout, as `torch.nn.Dropout`), so evaluation needs none.
//!
//! Masks are counter-based: the mask of one site at one step is a pure function of
//! `(seed, step, site)`, read from ChaCha8 keyed by the run seed (salted), stream `step`, and
//! word position `site << 40` (each site has 2^40 words per step, far more than any mask). No
//! generator state exists to save: a resumed run at step `s` draws exactly the masks an
//! uninterrupted one draws at `s`, and masks do not depend on the thread count or on the order
//! in which layers run. An element is kept when its 32-bit word `u` is `>= round(p * 2^32)`, so
//! the drop rate is `p` to within `2^-32`.
//!
//! Dropout multiplies by a mask tensor (`x * m`, candle's `mul`), so its backward is
//! `grad * m`, whatever route computed `x`.

use candle_core::{Result, Tensor, bail};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mixed into the run seed so the dropout stream never shares a key with the trainer's batch
/// generator (`ChaCha8Rng::seed_from_u64(seed)`).
const SALT: u64 = 0xD5A9_0C1E_7B3F_4E21;

/// Words reserved for one site within one step's stream (`2^40`).
const SITE_SHIFT: u32 = 40;

/// Which training step's masks to draw: the run seed and the 0-based step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropoutKey {
    /// The run seed.
    pub seed: u64,
    /// The 0-based optimiser step being computed.
    pub step: u64,
}

/// Where in the model a mask is applied (each site draws its own mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// Token (plus position) embeddings `(b, t, c)`.
    Embedding,
    /// Attention weights `(b, h, t, t)` of block `l`, after the softmax.
    AttnWeights(usize),
    /// The attention branch `(b, t, c)` of block `l`, after `o_proj`.
    AttnResid(usize),
    /// The MLP branch `(b, t, c)` of block `l`, after `proj`.
    MlpResid(usize),
}

impl Site {
    /// The site's index in the step's stream: 0 for the embeddings, then three per block.
    fn index(self) -> u64 {
        match self {
            Site::Embedding => 0,
            Site::AttnWeights(l) => 1 + 3 * l as u64,
            Site::AttnResid(l) => 2 + 3 * l as u64,
            Site::MlpResid(l) => 3 + 3 * l as u64,
        }
    }
}

/// Dropout with probability `p` at one step: what a layer needs to draw its masks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Drop probability, `0 <= p < 1`.
    pub p: f64,
    /// Which step's masks.
    pub key: DropoutKey,
}

impl Dropout {
    /// Dropout of probability `p` for `key`; `None` when `p == 0` (nothing to do: the model
    /// then runs exactly as without dropout). Errors for `p` outside `[0, 1)`.
    pub fn new(p: f64, key: DropoutKey) -> Result<Option<Self>> {
        check_p(p)?;
        Ok((p > 0.0).then_some(Self { p, key }))
    }

    /// `x * m` with `m` the mask of `site` ([`keep_scales`]), same shape as `x`; differentiable.
    pub fn apply(&self, x: &Tensor, site: Site) -> Result<Tensor> {
        let m = keep_scales(self.p, self.key, site, x.elem_count())?;
        let m = Tensor::from_vec(m, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&m)
    }
}

/// Rejects a drop probability outside `[0, 1)`, naming `model.dropout`.
pub fn check_p(p: f64) -> Result<()> {
    if !(p.is_finite() && (0.0..1.0).contains(&p)) {
        bail!("model.dropout must be in [0, 1), got {p}")
    }
    Ok(())
}

/// The mask of `site` at `key`: `n` values, each `0` (dropped, probability `p`) or `1 / (1 - p)`
/// (kept), in row-major order of the tensor it multiplies.
pub fn keep_scales(p: f64, key: DropoutKey, site: Site, n: usize) -> Result<Vec<f32>> {
    check_p(p)?;
    let threshold = (p * 4_294_967_296.0).round() as u64; // drop when u < threshold
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(key.seed ^ SALT);
    rng.set_stream(key.step);
    rng.set_word_pos(u128::from(site.index()) << SITE_SHIFT);
    let mut words = vec![0u32; n];
    for w in words.iter_mut() {
        *w = rng.next_u32();
    }
    Ok(words.into_iter().map(|u| if u64::from(u) < threshold { 0.0 } else { scale }).collect())
}
