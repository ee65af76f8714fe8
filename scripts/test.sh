#!/usr/bin/env bash
# The whole test suite on a fresh machine: prepares the generated fixtures (Python venv
# with onnx/onnxruntime, the ONNX node tests), then runs every workspace test with
# snapshots locked (a changed snapshot fails instead of being written).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fixtures.sh
INSTA_UPDATE=no cargo test --workspace --locked "$@"
