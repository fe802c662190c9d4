//! Process defaults for fast CPU training, applied at the start of `main`: allocator and threads.
//!
//! The binary allocates through mimalloc (`main.rs`). By default mimalloc hands freed memory back
//! to the OS after 10 ms; a training step frees and re-allocates the same large activation
//! buffers every few milliseconds, so each step paid page faults and kernel page zeroing (28% of
//! a step's cycles in `perf`). attnlab keeps freed memory (purge delay -1): peak memory is the
//! same, the faults disappear. `MIMALLOC_PURGE_DELAY` in the environment still wins.
//!
//! candle reads `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS` (pool sizes) and
//! `CANDLE_BARRIER_POOL_SPIN_LIMIT` (how long idle element-wise workers spin) once, when its pools
//! are first used (candle-core `src/utils.rs`). Spinning workers compete with the matrix-product
//! threads for the cores, so attnlab turns spinning off unless the user set it.

/// `mi_option_purge_delay` in mimalloc v3's `mimalloc.h` (libmimalloc-sys names no constant).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Turns off mimalloc's purging and sets the thread variables for this process and its children: `threads` (from `--threads`)
/// sizes both pools; without it the user's environment or candle's default (physical cores) holds.
/// Must run at the start of `main`, before any other thread exists.
pub fn apply(threads: Option<usize>) -> anyhow::Result<()> {
    if threads == Some(0) {
        anyhow::bail!("--threads must be at least 1")
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: plain FFI setter of a global option; any value is valid for this option.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    let mut vars: Vec<(&str, String)> = Vec::new();
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        vars.push(("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0".into()));
    }
    if let Some(n) = threads {
        vars.push(("RAYON_NUM_THREADS", n.to_string()));
        vars.push(("CANDLE_NUM_THREADS", n.to_string()));
    }
    for (k, v) in vars {
        // SAFETY: called at the start of `main`, before the process starts any other thread
        // (candle's pools are created lazily on first tensor work), so nothing reads the
        // environment concurrently.
        unsafe { std::env::set_var(k, v) };
    }
    Ok(())
}
