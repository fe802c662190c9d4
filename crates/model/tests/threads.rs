//! Thread-count independence: a set regressor (context mask, `n + m` not a multiple of the
//! attention block, more than 512 rows in the batch) with every fused kernel gives bit-identical
//! predictions and gradients under 1, 2 and 3 CPU threads.
//!
//! candle reads its thread counts (`RAYON_NUM_THREADS`, `CANDLE_NUM_THREADS`) once per process
//! for its worker pool, so the test runs [`thread_count_child`] in child processes of this test
//! binary, one per thread count, and compares the digests they print.

use std::process::Command;

use attnlab_model::{MetricKind, MetricSpec, Model, ModelConfig, ParamStore, SetRegressorConfig, fused};
use candle_core::{Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::util::{DEV, randn};

/// The child's full test name (module path inside the one test binary).
const CHILD: &str = "threads::thread_count_child";

/// FNV-1a over the bits of every element of `t`.
fn digest(t: &Tensor) -> Result<u64> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in t.flatten_all()?.to_vec1::<f32>()? {
        for byte in v.to_bits().to_le_bytes() {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(h)
}

/// `name digest` lines for the predictions and the gradient of every variable of a small set
/// regressor (`inv_dist`, 2 heads of 16) on 5 sets of 100 context and 20 query points (600 rows,
/// so the weight gradients reduce over more than one 512-row block of the matrix kernels).
fn digests() -> Result<Vec<String>> {
    let mut cfg = SetRegressorConfig::small(2);
    (cfg.n_layer, cfg.n_head, cfg.n_embd) = (1, 2, 32);
    cfg.attention = MetricSpec::of(MetricKind::InvDist);
    let store = ParamStore::new(5, &DEV);
    let model = Model::new(&ModelConfig::SetRegressor(cfg), &store)?;
    let Model::SetRegressor(net) = &model else { unreachable!("built a set regressor") };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (context, queries) = (randn(&mut rng, &[5, 100, 3], 1.0)?, randn(&mut rng, &[5, 20, 2], 1.0)?);
    let probe = randn(&mut rng, &[5, 20], 1.0)?;
    let y = net.forward(&context, &queries)?;
    let grads = (&y * &probe)?.sum_all()?.backward()?;
    let mut out = vec![format!("predictions {:016x}", digest(&y)?)];
    for (name, v) in store.vars() {
        let g = grads
            .get(v.as_tensor())
            .ok_or_else(|| candle_core::Error::Msg(format!("no gradient for {name}")))?;
        out.push(format!("{name} {:016x}", digest(g)?));
    }
    Ok(out)
}

/// Run by [`set_regressor_is_bit_identical_under_1_2_and_3_threads`] in a child process with the
/// thread count set; prints the digests. Ignored in ordinary runs (it checks nothing by itself).
#[test]
#[ignore = "child process of set_regressor_is_bit_identical_under_1_2_and_3_threads"]
fn thread_count_child() -> Result<()> {
    let lines = fused::with_enabled(fused::parse_kernels("all")?, digests)?;
    for line in lines {
        println!("DIGEST {line}");
    }
    Ok(())
}

/// The digests printed by a child running under `threads` CPU threads.
fn child_digests(threads: usize) -> Vec<String> {
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args([CHILD, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("CANDLE_NUM_THREADS", threads.to_string())
        .env_remove("ATTNLAB_FUSED")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child ({threads} threads) failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> =
        stdout.lines().filter_map(|l| l.strip_prefix("DIGEST ")).map(str::to_string).collect();
    assert!(lines.len() > 10, "child ({threads} threads) printed too few digests: {stdout}");
    lines
}

#[test]
fn set_regressor_is_bit_identical_under_1_2_and_3_threads() {
    let one = child_digests(1);
    for threads in [2, 3] {
        let other = child_digests(threads);
        let differ: Vec<String> =
            one.iter().zip(&other).filter(|(a, b)| a != b).map(|(a, b)| format!("{a} vs {b}")).collect();
        assert_eq!(one.len(), other.len());
        assert!(differ.is_empty(), "1 vs {threads} threads differ in {}", differ.join("; "));
    }
}
