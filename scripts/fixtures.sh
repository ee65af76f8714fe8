#!/usr/bin/env bash
# Prepare the test fixtures that are generated rather than committed:
#   1. the Python environment (.venv, via scripts/setup-python.sh);
#   2. the ONNX backend node tests in .fixtures/onnx-node/ (scripts/gen_node_tests.py);
#   3. small generated models with onnxruntime outputs in .fixtures/models/
#      (scripts/gen_test_models.py: a CNN with a symbolic batch dimension).
# All steps are stamped, so a second run is a fast no-op.  Any cwd.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/.." && pwd))"
cd "$repo_root"

start_ns=$(date +%s%N)
"$script_dir/setup-python.sh"
.venv/bin/python "$script_dir/gen_node_tests.py" .fixtures/onnx-node
.venv/bin/python "$script_dir/gen_test_models.py" .fixtures/models
end_ns=$(date +%s%N)
ms=$(( (end_ns - start_ns) / 1000000 ))
printf 'fixtures: ready in %d.%03d s (.fixtures/onnx-node, .fixtures/models)\n' $((ms / 1000)) $((ms % 1000))
