//! Fused CPU kernels written as candle custom ops with their own backward pass.
//!
//! Each kernel replaces a chain of element-wise candle ops (each allocating a tensor and a graph
//! node) by one pass over the data, forward and backward. The backward passes are first-order:
//! they are computed by kernels without a backward of their own, which is all training needs.
//!
//! | kernel | replaces |
//! |---|---|
//! | [`attention`] (`tiles.rs`) | the whole `softmax(score(q, k) + mask) v`, per head in tiles, no `(b, h, t, t)` tensor kept |
//! | [`self_attention`] (`packed.rs`) | the same from packed `[q | k | v]` projections `(b, t, 3c)` to `(b, t, c)`: no head transposes |
//! | [`QkFn`] (`qk.rs`) | qk-norm and RoPE on each query and key row, applied by [`self_attention`] as it gathers them |
//! | [`attention_weights`] (`weights.rs`) | metric transform of `q.k` and the norms, mask, softmax |
//! | [`layer_norm`] / [`rms_norm`] | mean, centring, variance, rsqrt, scale |
//! | [`gelu`] | `gelu_erf` and its ten-op backward |
//! | [`cross_entropy`] | log-softmax + gather + mean |
//! | [`linear`] | candle's five-node `Linear` (reshape, transpose, matmul, reshape, bias add) |
//!
//! The three attention kernels share the per-row metric kernels of `rows.rs` (formulas from
//! [`crate::metric::table`]); which one runs is chosen in [`crate::route`].
//!
//! Kernels run on the CPU for contiguous `f32` tensors; on any other device or dtype the public
//! functions return the composed (unfused) result (or `None`), so models work unchanged on CUDA.
//! [`set_enabled`] (or the environment variable `ATTNLAB_FUSED`) switches kernels off, e.g. to
//! measure what each one gains: `ATTNLAB_FUSED=none`, `all` (default) or a comma list of
//! `weights`, `tiles`, `norm`, `gelu`, `ce`, `linear` (`attn` and `flash` are the old names of
//! `weights` and `tiles`). [`with_enabled`] switches them for one thread only (tests).

mod gelu;
mod lanes;
mod linear;
mod loss;
mod mm;
mod norm;
mod packed;
pub mod profile;
mod qk;
mod rowmask;
pub(crate) mod rows;
mod tiles;
mod weights;

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{CpuStorage, DType, Layout, Result, Tensor, bail};

pub use gelu::gelu;
pub use linear::{linear, linear_backward};
pub use loss::cross_entropy;
pub use norm::{layer_norm, rms_norm};
pub use packed::{PackedQk, self_attention};
pub use qk::{NormFn, QkFn, RopeTables};
pub use rows::MetricFn;
pub use tiles::attention;
pub use weights::attention_weights;

/// One group of fused kernels that can be switched on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// The weights kernel: metric scores + mask + softmax, `(b, h, tq, tk)` weights out.
    Weights = 1,
    /// Layer norm and RMS norm.
    Norm = 2,
    /// GELU (erf).
    Gelu = 4,
    /// Cross-entropy loss.
    Ce = 8,
    /// Whole attention `softmax(score + mask) v` per head in tiles (no `(b, h, t, t)` tensor
    /// kept); with [`Kernel::Linear`] also packed self-attention.
    Tiles = 16,
    /// Linear map `x w^T + b` as one node.
    Linear = 32,
}

const ALL: u8 = 63;
const UNSET: u8 = 255;
static ENABLED: AtomicU8 = AtomicU8::new(UNSET);

/// Parses `all`, `none` or a comma list of `weights`, `tiles`, `norm`, `gelu`, `ce`, `linear`
/// (`attn`, `flash`: old names of `weights`, `tiles`) into a kernel bit set.
pub fn parse_kernels(list: &str) -> Result<u8> {
    match list.trim() {
        "all" | "" => return Ok(ALL),
        "none" => return Ok(0),
        _ => {}
    }
    let mut bits = 0;
    for name in list.split(',').map(str::trim) {
        bits |= match name {
            "weights" | "attn" => Kernel::Weights as u8,
            "norm" => Kernel::Norm as u8,
            "gelu" => Kernel::Gelu as u8,
            "ce" => Kernel::Ce as u8,
            "tiles" | "flash" => Kernel::Tiles as u8,
            "linear" => Kernel::Linear as u8,
            other => bail!(
                "unknown fused kernel `{other}` (expected all, none, or weights,tiles,norm,gelu,ce,linear)"
            ),
        };
    }
    Ok(bits)
}

/// Switches the fused kernels on or off for the whole process (`bits` from [`parse_kernels`]).
pub fn set_enabled(bits: u8) {
    ENABLED.store(bits & ALL, Ordering::Relaxed);
}

thread_local! {
    /// This thread's override of the process-wide switches ([`with_enabled`]).
    static THREAD_BITS: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Runs `f` with the kernels `bits` on for this thread only (the process-wide setting and other
/// threads are untouched): lets tests compare routes side by side in one process.
pub fn with_enabled<R>(bits: u8, f: impl FnOnce() -> R) -> R {
    let before = THREAD_BITS.with(|b| b.replace(Some(bits & ALL)));
    let out = f();
    THREAD_BITS.with(|b| b.set(before));
    out
}

/// Whether kernel `k` is on: set for this thread by [`with_enabled`], else by [`set_enabled`],
/// else by `ATTNLAB_FUSED`, else on.
pub fn enabled(k: Kernel) -> bool {
    if let Some(bits) = THREAD_BITS.with(Cell::get) {
        return bits & k as u8 != 0;
    }
    let mut bits = ENABLED.load(Ordering::Relaxed);
    if bits == UNSET {
        bits = std::env::var("ATTNLAB_FUSED").ok().and_then(|s| parse_kernels(&s).ok()).unwrap_or(ALL);
        ENABLED.store(bits, Ordering::Relaxed);
    }
    bits & k as u8 != 0
}

/// `e^x` in `f32`, branch-free so that loops over it vectorise (libm's `expf` is a call per
/// element): Cephes' `expf` polynomial after range reduction `x = n ln 2 + r`, exact 0 below
/// -87.3 (also for `-inf`); about 1 ulp. Inputs above 88 saturate at `e^88`.
#[inline(always)]
pub(crate) fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.3, 88.0);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let y = p * z + r + 1.0;
    // `t`'s low mantissa bits hold n (two's complement); 2^n built from the exponent field.
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    if x < -87.3 { 0.0 } else { y * scale }
}

/// Whether `t` can go through a fused CPU kernel: an `f32` tensor on the CPU.
pub(crate) fn cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The contiguous `f32` data of a CPU storage.
fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let Some((lo, hi)) = l.contiguous_offsets() else { bail!("fused kernel needs a contiguous tensor") };
    Ok(&s.as_slice::<f32>()?[lo..hi])
}

/// The contiguous `f32` data of a CPU tensor, copied (for small tensors: norms, parameters).
fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// A raw pointer that worker threads may share; each writes a disjoint part.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: used only by `par_rows`, whose workers write disjoint rows.
unsafe impl Sync for SharedMut {}
unsafe impl Send for SharedMut {}
impl SharedMut {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Below this many output elements a kernel runs on the calling thread.
const PAR_MIN: usize = 1 << 14;

/// Calls `f(r, row)` for every row `r` of `out` (rows of `row_len` elements), spread over
/// candle's CPU worker pool when the total `work` (elements touched) is large enough.
fn par_rows<F: Fn(usize, &mut [f32]) + Sync>(out: &mut [f32], row_len: usize, work: usize, f: F) {
    if row_len == 0 {
        return;
    }
    let n_rows = out.len() / row_len;
    if work < PAR_MIN || n_rows < 2 {
        out.chunks_mut(row_len).enumerate().for_each(|(r, row)| f(r, row));
        return;
    }
    let ptr = SharedMut(out.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(n_rows, |range| {
        for r in range {
            // SAFETY: `r < n_rows`, so the row lies inside `out`; every row index is handed to
            // exactly one worker, so no two threads touch the same elements.
            let row = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(r * row_len), row_len) };
            f(r, row);
        }
    });
}

/// Calls `f(u)` for every unit `u < n_units`, spread over candle's CPU worker pool when the total
/// `work` is large enough; returns the first error.
fn par_units<F: Fn(usize) -> Result<()> + Sync>(n_units: usize, work: usize, f: F) -> Result<()> {
    if work < PAR_MIN || n_units < 2 {
        return (0..n_units).try_for_each(f);
    }
    let first_err = std::sync::Mutex::new(None);
    candle_core::utils::barrier_pool().execute_chunked(n_units, |range| {
        for u in range {
            if let Err(e) = f(u) {
                let mut slot = first_err.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(e);
            }
        }
    });
    match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A per-thread scratch buffer, grown on demand and kept for the thread's lifetime.
type Scratch = std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>;

/// Runs `f` with the first `n` elements of the per-thread buffer `key` (contents unspecified:
/// whatever the last use left, so `f` must write every element before it reads it). Distinct
/// keys can be nested. Debug builds (tests) fill the buffer with NaN first, so a read before a
/// write shows as NaN in the fused-vs-composed tests instead of as a result that depends on
/// which unit ran last on the thread.
fn with_scratch<R>(key: &'static Scratch, n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    key.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < n {
            buf.resize(n, 0.0);
        }
        if cfg!(debug_assertions) {
            buf[..n].fill(f32::NAN);
        }
        f(&mut buf[..n])
    })
}

/// A mutable sub-slice `[at, at + len)` of the buffer behind `ptr` (of `total` elements).
///
/// # Safety
/// `at + len <= total`, the buffer outlives the slice, and no other live slice overlaps it.
unsafe fn part<'a>(ptr: SharedMut, total: usize, at: usize, len: usize) -> &'a mut [f32] {
    debug_assert!(at + len <= total);
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts_mut(ptr.get().add(at), len) }
}

#[cfg(test)]
mod tests {
    use super::fast_exp;

    #[test]
    fn fast_exp_is_within_two_ulp_of_std_and_zero_far_below() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (fast_exp(x), x.exp());
            assert!(((a - b) / b).abs() < 2.5e-7, "exp({x}) = {a}, std {b}");
            x += 0.0173;
        }
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(fast_exp(-100.0), 0.0);
        assert!(fast_exp(f32::NAN).is_nan());
    }
}
