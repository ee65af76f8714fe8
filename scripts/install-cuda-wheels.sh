#!/usr/bin/env bash
# Installs the CUDA 13.0 compile toolchain tessera's CUDA tests need on a machine without
# a GPU: NVRTC (libnvrtc.so.13), the CUDA headers (cuda_fp16.h, cuda_bf16.h) and ptxas,
# from PyPI wheels, into .cuda/ (git-ignored). Idempotent and stamped: a second run is a
# no-op. Pinned to 13.0.x: the H200 machine's driver (580, CUDA 13.0) refuses PTX from a
# newer NVRTC. --no-deps because nvidia-cuda-nvcc pulls unpinned (newer) nvvm/crt.
#
# Afterwards:  export LD_LIBRARY_PATH="$PWD/.cuda/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# (scripts/test.sh and .ci/run do this). Any cwd.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/.." && pwd))"
cd "$repo_root"

target=.cuda
wheels=(nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvcc==13.0.88)
stamp="$target/.installed"
want="${wheels[*]}"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && [ -e "$target/nvidia/cu13/lib/libnvrtc.so.13" ] \
    && [ -e "$target/nvidia/cu13/include/cuda_fp16.h" ] \
    && [ -x "$target/nvidia/cu13/bin/ptxas" ]; then
    echo "cuda wheels: already installed in $target"
    exit 0
fi

python=python3
if [ -x .venv/bin/python ]; then
    python=.venv/bin/python
fi
start_ns=$(date +%s%N)
rm -rf "$target"
"$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$target" "${wheels[@]}"
for f in lib/libnvrtc.so.13 lib/libnvrtc-builtins.so.13.0 include/cuda_fp16.h include/cuda_bf16.h bin/ptxas; do
    if [ ! -e "$target/nvidia/cu13/$f" ]; then
        echo "cuda wheels: $target/nvidia/cu13/$f is missing after the install" >&2
        exit 1
    fi
done
echo "$want" > "$stamp"
end_ns=$(date +%s%N)
ms=$(( (end_ns - start_ns) / 1000000 ))
printf 'cuda wheels: installed in %d.%03d s (%s)\n' $((ms / 1000)) $((ms % 1000)) "$target"
