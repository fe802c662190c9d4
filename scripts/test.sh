#!/usr/bin/env bash
# The project's test command (README, CI): formatting, clippy, then every test of the
# workspace, including the one that runs a sweep on a real one-node Slurm cluster. That test
# needs root and Debian's `slurm-wlm` and `munge`; this script installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq slurm-wlm munge >/dev/null
    else
        echo "scripts/test.sh: the Slurm test needs slurm-wlm and munge; as root: apt-get install -y slurm-wlm munge" >&2
        exit 1
    fi
fi
set -x
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
