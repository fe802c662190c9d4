//! Cumulative wall time of the fused kernels by op kind and pass, for `attnlab bench`: which
//! share of a training step goes to matrix products, element-wise kernels and attention.
//!
//! Off by default: then a kernel pays one relaxed atomic load per call. [`set_profiling`]
//! switches it on for the process; [`OpTimes::now`] reads the running totals, and the difference
//! of two readings is the time spent in between. Each kernel is timed on the thread that calls
//! it, around all of its work (also the part spread over the worker pool), so with candle's
//! one-op-at-a-time graph execution no two timed spans overlap.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// What a kernel computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Matrix products of the linear maps ([`super::linear`] and its backward).
    MatMul = 0,
    /// Element-wise and row kernels: norms, GELU, cross-entropy, qk-norm / RoPE.
    Elementwise = 1,
    /// The attention kernels (scores, mask, softmax, values; all three routes).
    Attention = 2,
}

/// Forward or backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// A kernel of the forward pass.
    Forward = 0,
    /// A kernel that computes gradients.
    Backward = 1,
}

static ON: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Switches the timers on or off for the whole process.
pub fn set_profiling(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Running totals of kernel wall time, seconds, indexed `[kind][pass]`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpTimes(pub [[f64; 2]; 3]);

impl OpTimes {
    /// The totals so far (all zero while profiling was never on).
    pub fn now() -> Self {
        let mut t = [[0.0; 2]; 3];
        for (i, row) in t.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = NANOS[2 * i + j].load(Ordering::Relaxed) as f64 * 1e-9;
            }
        }
        Self(t)
    }

    /// Seconds spent in `kind`'s kernels of `pass`.
    pub fn get(&self, kind: OpKind, pass: Pass) -> f64 {
        self.0[kind as usize][pass as usize]
    }

    /// Seconds spent in every timed kernel of `pass`.
    pub fn total(&self, pass: Pass) -> f64 {
        self.0.iter().map(|row| row[pass as usize]).sum()
    }

    /// `self - earlier`, element by element: the time spent between two readings.
    pub fn since(&self, earlier: &Self) -> Self {
        let mut t = self.0;
        for (row, e) in t.iter_mut().zip(&earlier.0) {
            for (v, e) in row.iter_mut().zip(e) {
                *v -= e;
            }
        }
        Self(t)
    }
}

/// A running span of `(kind, pass)`: started by [`Timer::start`], added to the totals when
/// dropped (nothing when profiling was off at the start).
pub(crate) struct Timer {
    slot: usize,
    t0: Option<Instant>,
}

impl Timer {
    /// Starts timing a kernel of `kind` in `pass`.
    #[inline]
    pub(crate) fn start(kind: OpKind, pass: Pass) -> Self {
        let t0 = ON.load(Ordering::Relaxed).then(Instant::now);
        Self { slot: 2 * kind as usize + pass as usize, t0 }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(t0) = self.t0 {
            let ns = t0.elapsed().as_nanos().min(u64::MAX as u128) as u64;
            NANOS[self.slot].fetch_add(ns, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_count_only_when_on_and_by_kind() {
        // No other test switches profiling on, so nothing counts while it is off.
        let before = OpTimes::now();
        {
            let _t = Timer::start(OpKind::MatMul, Pass::Forward);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(OpTimes::now().since(&before).total(Pass::Forward), 0.0);
        set_profiling(true);
        let before = OpTimes::now();
        {
            let _t = Timer::start(OpKind::Attention, Pass::Backward);
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        set_profiling(false);
        let d = OpTimes::now().since(&before);
        assert!(d.get(OpKind::Attention, Pass::Backward) >= 3e-3, "{d:?}");
        assert!(d.total(Pass::Backward) >= d.get(OpKind::Attention, Pass::Backward));
    }
}
