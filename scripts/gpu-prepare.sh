#!/usr/bin/env bash
# Builds and packs everything scripts/gpu-check.sh runs on the GPU machine, which has CUDA,
# PyTorch and Python but no Rust toolchain and no package registry. Run it here (a machine
# with cargo, the .venv of scripts/setup-python.sh and ../shared/models):
#
#   1. release binaries with --features cuda: the tessera CLI, the tests/cuda_run.rs test
#      binary, the benches/cuda.rs benchmark; stripped, then packed as .gpu/bin.tar.xz
#      (the device unpacks it with python3's tarfile);
#   2. the ONNX node tests the CUDA run plans (the test binary writes their names without a
#      GPU), copied to .gpu/onnx-node;
#   3. corpus models from ../shared/models turned into sample directories (seeded inputs,
#      onnxruntime outputs) under .gpu/models: by default one CNN and two transformers,
#      GPU_MODELS="convnext_s whisper_encoder_l2 qwen2_l2";
#   4. a size check: the working tree that travels (tracked files) plus .gpu must stay under
#      the device tool's 64 MiB.
#
# Then, on the device: carry [".gpu"] and run scripts/gpu-check.sh. Here, a dry run of the
# device half: GPU_CHECK_DRY_RUN=1 scripts/gpu-check.sh.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
cd "$repo_root"

PACK=.gpu
LIMIT=$((64 * 1024 * 1024))
MODELS="${GPU_MODELS:-convnext_s whisper_encoder_l2 qwen2_l2}"
SHARED="${SHARED_MODELS:-$repo_root/../shared/models}"
python=".venv/bin/python"
[ -x "$python" ] || scripts/setup-python.sh
[ -d .fixtures/onnx-node ] || scripts/fixtures.sh
scripts/install-cuda-wheels.sh
export LD_LIBRARY_PATH="$repo_root/.cuda/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

rm -rf "$PACK"
mkdir -p "$PACK/bin"

echo "== build (release, --features cuda)"
exe_of() { # the executable a cargo --message-format=json build reports last
    "$python" -c 'import json,sys
exe=None
for line in sys.stdin:
    try: m=json.loads(line)
    except ValueError: continue
    if m.get("reason")=="compiler-artifact" and m.get("executable"): exe=m["executable"]
print(exe or "")'
}
cargo build --release --locked --features cuda --bin tessera
cp target/release/tessera "$PACK/bin/tessera"
run_exe="$(cargo test --release --locked --features cuda --no-run --test cuda_run --message-format=json | exe_of)"
bench_exe="$(cargo bench --locked --features cuda --no-run --bench cuda --message-format=json | exe_of)"
[ -n "$run_exe" ] && [ -n "$bench_exe" ] || { echo "could not find the test and bench executables" >&2; exit 1; }
cp "$run_exe" "$PACK/bin/cuda_run"
cp "$bench_exe" "$PACK/bin/cuda_bench"
strip "$PACK"/bin/*
ls -la "$PACK/bin"

echo "== the node tests the CUDA run plans"
plan="$(mktemp)"
INSTA_UPDATE=no TESSERA_CUDA_PLAN_OUT="$plan" "$PACK/bin/cuda_run" --quiet
mkdir -p "$PACK/onnx-node"
touch "$PACK/onnx-node/.complete"
copied=0
while IFS= read -r name; do
    if [ -d ".fixtures/onnx-node/$name" ]; then
        cp -r ".fixtures/onnx-node/$name" "$PACK/onnx-node/"
        copied=$((copied + 1))
    fi
done < "$plan"
rm -f "$plan"
echo "$copied node tests"

echo "== corpus models as samples"
mkdir -p "$PACK/models"
for m in $MODELS; do
    [ -f "$SHARED/$m.onnx" ] || { echo "missing $SHARED/$m.onnx" >&2; exit 1; }
    "$python" scripts/model_to_sample.py "$SHARED/$m.onnx" "$PACK/models/$m"
done

echo "== pack the binaries"
"$python" - "$PACK" <<'PY'
import os, sys, tarfile
pack = sys.argv[1]
with tarfile.open(os.path.join(pack, "bin.tar.xz"), "w:xz", preset=6) as t:
    t.add(os.path.join(pack, "bin"), arcname="bin")
PY
rm -rf "$PACK/bin"

echo "== size (what travels: tracked files plus $PACK)"
tree_bytes="$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -n 1 | cut -f1)"
pack_bytes="$(du -sb "$PACK" | cut -f1)"
total=$((tree_bytes + pack_bytes))
printf 'tree %d MiB + %s %d MiB = %d MiB of %d MiB\n' \
    $((tree_bytes >> 20)) "$PACK" $((pack_bytes >> 20)) $((total >> 20)) $((LIMIT >> 20))
du -sh "$PACK"/*
if [ "$total" -gt "$LIMIT" ]; then
    echo "over the device tool's limit: pick fewer or smaller GPU_MODELS" >&2
    exit 1
fi
echo "ready: run scripts/gpu-check.sh on the device with carry [\"$PACK\"]"
