#!/usr/bin/env bash
# The GPU check of the CUDA flash attention (issue 15), in one call on a machine with an NVIDIA
# GPU: the model crate's CUDA tests, then `attnlab bench --device cuda` at block 1024 and 4096
# for every metric, flash route and composed dot, with peak device memory.
#
# Usage: scripts/gpu-check.sh BIN_DIR [OUT_DIR]
#   BIN_DIR holds `attnlab` (cargo build --release -p attnlab --features cuda) and `model-tests`
#   (the model crate's test binary: cargo test --release -p attnlab-model --features cuda --no-run).
#   Logs and JSON land in OUT_DIR (default $OUT, else gpu-check-out).
# The CUDA libraries (cuBLAS, cuRAND, NVRTC, runtime 13) are taken from the system, else from
# python3's nvidia packages (PyTorch's). STEPS / WARMUP override the benchmark's step counts,
# TEST_TIMEOUT the tests' time limit (s).
set -uo pipefail
BIN=${1:?usage: scripts/gpu-check.sh BIN_DIR [OUT_DIR]}
OUT_DIR=${2:-${OUT:-gpu-check-out}}
mkdir -p "$OUT_DIR"
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
export RUST_BACKTRACE=1

libdirs=$(find /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu /opt /usr/local/lib -name 'libcublasLt.so.13*' \
  -o -name 'libnvrtc.so.13*' -o -name 'libcurand.so.10*' -o -name 'libcudart.so.13*' 2>/dev/null \
  | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:-}"
{
  echo "== machine"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd "$BIN/attnlab" | grep -E 'cu|nvrtc|not found'
} 2>&1 | tee "$OUT_DIR/env.log"

status=0
echo "== tests (model crate, CUDA module)" | tee "$OUT_DIR/tests.log"
timeout "${TEST_TIMEOUT:-200}" "$BIN/model-tests" cuda:: --test-threads 1 2>&1 | tee -a "$OUT_DIR/tests.log" || status=1

bench() { # name, time limit (s), then bench arguments
  local name=$1 limit=$2; shift 2
  echo "== bench $name: $*" | tee -a "$OUT_DIR/bench.log"
  timeout "$limit" "$BIN/attnlab" bench --device cuda --steps "$STEPS" --warmup "$WARMUP" "$@" 2>&1 \
    | tee -a "$OUT_DIR/bench.log" || status=1
}
bench "1024 flash" 80 --block-size 1024 --batch-size 4
bench "1024 composed dot" 40 --block-size 1024 --batch-size 4 --metrics dot --fused none
bench "4096 flash" 120 --block-size 4096 --batch-size 4
bench "4096 composed dot" 60 --block-size 4096 --batch-size 4 --metrics dot --fused none
echo "== exit status $status" | tee -a "$OUT_DIR/bench.log"
exit $status
