#!/usr/bin/env bash
# The whole test suite on a fresh machine: prepares the generated fixtures (Python venv
# with onnx/onnxruntime, the ONNX node tests) and the CUDA compile toolchain (NVRTC,
# headers and ptxas from the CUDA 13.0 wheels, no GPU needed), then runs every workspace
# test with the `cuda` feature and snapshots locked (a changed snapshot fails instead of
# being written).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fixtures.sh
scripts/install-cuda-wheels.sh
export LD_LIBRARY_PATH="$PWD/.cuda/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
INSTA_UPDATE=no cargo test --workspace --locked --features cuda "$@"
