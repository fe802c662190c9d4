//! The flash kernels' CUDA source for one metric and head width, and its compilation: the
//! metric's row of [`crate::metric::table`] (input, normalisation and its [`CudaRow`]
//! expressions) becomes macros in front of `flash.cu`, which NVRTC compiles at run time once per
//! (metric, d, dv) and process; the PTX is loaded into the device's module cache by candle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::cuda_backend::cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};
use candle_core::{CudaDevice, Result, bail};

use crate::metric::MetricKind;
use crate::metric::table::{CudaRow, Input, Metric, Normalise, with_metric};

/// The kernel template (macros prepended by [`source`]).
const FLASH_CU: &str = include_str!("flash.cu");

/// Query rows per forward and dq block (one thread each).
pub(super) const BQ: usize = 64;

/// Widest head the kernels take (q/k and v rows are held in registers).
pub(super) const MAX_HEAD_DIM: usize = 128;

/// Tile sizes of one (d, dv): keys per shared-memory tile (also the threads of a dk/dv block)
/// and query rows per tile of the dk/dv kernel; wide heads take smaller tiles so that the
/// static shared memory stays under 48 KiB.
pub(super) fn tiles(d: usize, dv: usize) -> (usize, usize) {
    if d + dv <= 96 { (64, 64) } else { (32, 32) }
}

/// The metric row's compile-time constants: `(INPUT, NORMALISE, CudaRow)`.
fn row(kind: MetricKind) -> (u8, u8, CudaRow) {
    with_metric!(kind, M => {
        let input = match M::INPUT {
            Input::Dot => 0,
            Input::UnitDot => 1,
            Input::SqDist => 2,
            Input::DistPow => 3,
        };
        let normalise = match M::NORMALISE {
            Normalise::Softmax => 0,
            Normalise::SoftmaxBounded => 1,
            Normalise::Direct => 2,
        };
        (input, normalise, M::CUDA)
    })
}

/// The CUDA source of the flash kernels for `kind` with heads of width `d` (q, k) and `dv` (v).
pub(super) fn source(kind: MetricKind, d: usize, dv: usize) -> String {
    let (input, normalise, r) = row(kind);
    let (bk, bqb) = tiles(d, dv);
    format!(
        "// metric {kind}\n#define HD {d}\n#define HDV {dv}\n#define BQ {BQ}\n#define BK {bk}\n#define BQB {bqb}\n\
         #define INPUT {input}\n#define NORMALISE {normalise}\n#define SCORE(z) ({})\n\
         #define DSCORE(z, s) ({})\n#define DSCORE_DHEAD(z) ({})\n#define WEIGHT(z, s) ({})\n{FLASH_CU}",
        r.score, r.dscore, r.dscore_dhead, r.weight
    )
}

/// PTX per (metric, d, dv), compiled once per process.
type PtxCache = Mutex<HashMap<(MetricKind, usize, usize), Arc<String>>>;
static PTX: std::sync::OnceLock<PtxCache> = std::sync::OnceLock::new();

/// The compiled kernels for `kind`, `d`, `dv`: the module name under which candle caches them
/// on `dev` and their PTX. Errors name the metric and NVRTC's log.
pub(super) fn module(
    dev: &CudaDevice,
    kind: MetricKind,
    d: usize,
    dv: usize,
) -> Result<(String, Arc<String>)> {
    if d == 0 || dv == 0 || d > MAX_HEAD_DIM || dv > MAX_HEAD_DIM {
        bail!("CUDA flash attention takes head widths 1..={MAX_HEAD_DIM}, got d = {d}, dv = {dv}")
    }
    let name = format!("attnlab_flash_{kind}_{d}_{dv}");
    let cache = PTX.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ptx) = map.get(&(kind, d, dv)) {
        return Ok((name, ptx.clone()));
    }
    let (major, minor) =
        dev.cuda_stream().context().compute_capability().map_err(candle_core::Error::wrap)?;
    let options = vec![format!("--gpu-architecture=compute_{major}{minor}"), "-default-device".into()];
    let opts = CompileOptions { options, ..Default::default() };
    let ptx = compile_ptx_with_opts(source(kind, d, dv), opts)
        .map_err(|e| candle_core::Error::Msg(format!("NVRTC failed on the `{kind}` flash kernels: {e:?}")))?;
    let ptx = Arc::new(ptx.to_src());
    map.insert((kind, d, dv), ptx.clone());
    Ok((name, ptx))
}
