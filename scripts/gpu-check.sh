#!/usr/bin/env bash
# The one prepared run of tessera's CUDA backend on a GPU machine (an H100 or H200 with
# CUDA 13, driver 580; torch optional). The machine has no Rust toolchain: everything it
# runs was built and packed by scripts/gpu-prepare.sh into .gpu/ (carry [".gpu"]). Steps,
# each failing loudly:
#   1. the machine: nvidia-smi, NVRTC, CUDA headers, cuBLAS (found or reported missing);
#   2. unpack the prepared binaries (.gpu/bin.tar.xz, with python3);
#   3. correctness: tests/cuda_run.rs (samples fused/eager/built-in GEMM, CUDA cases, ONNX
#      node tests vs the reference interpreter at GraphNet t=-5 f32, t=-3 f16/bf16, arena
#      poisoned before every run);
#   4. timing: benches/cuda.rs on the bundled samples and the corpus models in .gpu/models
#      (tessera compiled vs built-in GEMM vs CUDA eager, device time around CUDA-graph
#      replays, the biggest memory-bound kernel's bandwidth), outputs checked first;
#   5. PyTorch eager and torch.compile through graphnet-bench/scripts/torch_baseline.py on
#      the same graphs, when torch with CUDA is importable (per-sample time limit);
#   6. a short table, printed last.
# Full results go under $OUT (default target/gpu-check): gpu-check.log, tessera-cuda.json,
# torch/<sample>/torch-{eager,compile}.json, summary.txt.
#
# Budget: 8 minutes on the H200. Step 5 is cut short (and says so) when time runs out.
# Usage: scripts/gpu-check.sh            (from any directory)
#        OUT=/some/dir scripts/gpu-check.sh
#        GPU_CHECK_DRY_RUN=1 scripts/gpu-check.sh   (here, without a GPU: every step runs as
#        far as it can; the CUDA steps must fail with the clear "no CUDA driver" error)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
cd "$repo_root"

OUT="${OUT:-target/gpu-check}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
exec > >(tee "$OUT/gpu-check.log") 2>&1

# Seconds the whole script may take, and a margin kept for the table.
BUDGET="${GPU_CHECK_BUDGET:-470}"
SECONDS=0
step() { printf '\n== [%3ds] %s\n' "$SECONDS" "$*"; }
die() { printf '\nGPU CHECK FAILED: %s\n' "$*" >&2; exit 1; }
# Seconds left in the budget (at least 10, so that `timeout` always gets a positive limit).
left() { local l=$((BUDGET - SECONDS)); echo $((l > 10 ? l : 10)); }

DRY="${GPU_CHECK_DRY_RUN:-}"
step "machine"
date -u +"date: %Y-%m-%dT%H:%M:%SZ"
if [ -n "$DRY" ]; then
    echo "DRY RUN: no GPU expected; CUDA steps must fail with a clear error"
    card="(dry run)"
    driver="(dry run)"
else
    command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this is not a GPU machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
        || die "nvidia-smi cannot query the GPU"
    card="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
    driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1)"
fi

python="$(command -v python3 || true)"
site_dirs=""
if [ -n "$python" ]; then
    site_dirs="$("$python" -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null || true)"
fi

# A directory holding $1 among the usual CUDA 13 locations, or nothing.
find_dir() {
    local name="$1" d
    local candidates=(
        "${CUDA_HOME:-/nonexistent}/lib64" "${CUDA_HOME:-/nonexistent}/lib"
        /usr/local/cuda/lib64 /usr/local/cuda-13.0/lib64 /usr/local/cuda/targets/x86_64-linux/lib
        /usr/lib/x86_64-linux-gnu "$repo_root/.cuda/nvidia/cu13/lib"
    )
    while IFS= read -r d; do
        [ -n "$d" ] && candidates+=("$d/nvidia/cu13/lib" "$d/nvidia/cuda_nvrtc/lib" "$d/nvidia/cublas/lib")
    done <<< "$site_dirs"
    for d in "${candidates[@]}"; do
        if compgen -G "$d/$name" >/dev/null; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# cudarc (built for CUDA 13) opens libnvrtc.so.13 / libcublas.so.13 by name.
libdirs=""
nvrtc_dir="$(find_dir 'libnvrtc.so.13*' || true)"
[ -n "$nvrtc_dir" ] || die "libnvrtc.so.13 not found (CUDA 13 toolkit, or pip nvidia-cuda-nvrtc==13.0.88); set CUDA_HOME"
libdirs="$nvrtc_dir"
echo "NVRTC: $nvrtc_dir"
cublas_dir="$(find_dir 'libcublas.so.13*' || true)"
if [ -n "$cublas_dir" ]; then
    echo "cuBLAS: $cublas_dir"
    libdirs="$libdirs:$cublas_dir"
else
    echo "cuBLAS: libcublas.so.13 NOT FOUND: products run on tessera's built-in GEMM kernel only"
fi
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [ -z "${CUDA_INCLUDE_DIR:-}" ]; then
    for d in "${CUDA_HOME:-/nonexistent}/include" /usr/local/cuda/include /usr/local/cuda-13.0/include \
        "$repo_root/.cuda/nvidia/cu13/include" $(printf '%s\n' "$site_dirs" | sed 's|$|/nvidia/cu13/include|'); do
        if [ -e "$d/cuda_fp16.h" ]; then
            CUDA_INCLUDE_DIR="$d"
            break
        fi
    done
fi
[ -n "${CUDA_INCLUDE_DIR:-}" ] || die "cuda_fp16.h not found: set CUDA_INCLUDE_DIR to the CUDA include directory"
export CUDA_INCLUDE_DIR
echo "CUDA headers: $CUDA_INCLUDE_DIR"

step "unpack the prepared binaries (.gpu, made by scripts/gpu-prepare.sh)"
[ -f .gpu/bin.tar.xz ] || die ".gpu/bin.tar.xz not found: run scripts/gpu-prepare.sh here first and carry .gpu"
rm -rf .gpu/bin
"${python:-python3}" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
    .gpu/bin.tar.xz .gpu || die "cannot unpack .gpu/bin.tar.xz"
chmod +x .gpu/bin/*
ls -la .gpu/bin
# The binaries were built in another copy of the tree: point them at this one.
export TESSERA_REPO="$repo_root" INSTA_WORKSPACE_ROOT="$repo_root" INSTA_UPDATE=no
export TESSERA_NODE_TESTS="$repo_root/.gpu/onnx-node"
# Outcome of a CUDA step: on a GPU it must pass; in a dry run it must fail saying why.
cuda_step() {
    local what="$1"; shift
    if [ -n "$DRY" ]; then
        if "$@" > "$OUT/dry-$what.txt" 2>&1; then
            cat "$OUT/dry-$what.txt"
            echo "dry run: $what passed (its GPU part reports it was skipped)"
        else
            cat "$OUT/dry-$what.txt"
            grep -q "CUDA" "$OUT/dry-$what.txt" || die "$what failed without naming CUDA"
            ! grep -q "panicked" "$OUT/dry-$what.txt" || die "$what panicked"
            echo "dry run: $what failed as expected without a GPU"
        fi
    else
        "$@" || die "$what failed (see above)"
    fi
}

step "tessera run --backend cuda samples/tiny_bert_cls"
cuda_step run .gpu/bin/tessera run --backend cuda samples/tiny_bert_cls
if [ -z "$DRY" ]; then
    .gpu/bin/tessera run --backend cuda samples/tiny_bert_cls > "$OUT/run-tiny_bert_cls.txt"
    grep -q "within atol 1e-5 / rtol 1.3e-6" "$OUT/run-tiny_bert_cls.txt" \
        || die "tiny_bert_cls on CUDA is outside GraphNet t=-5"
fi

step "correctness: tests/cuda_run.rs (every planned configuration vs the reference interpreter)"
cuda_step cuda_run timeout "$(left)" .gpu/bin/cuda_run --nocapture

step "timing: benches/cuda.rs (samples and corpus models: compiled vs built-in GEMM vs CUDA eager)"
cuda_step cuda_bench timeout "$(left)" .gpu/bin/cuda_bench --out "$OUT" --samples-dir .gpu/models

step "PyTorch eager and torch.compile (graphnet-bench/scripts/torch_baseline.py --device cuda)"
torch_note="not run"
if [ -n "$python" ] && "$python" -c 'import torch, onnx, numpy; assert torch.cuda.is_available()' 2>/dev/null; then
    torch_note="ran"
    mkdir -p "$OUT/torch"
    for dir in samples/*/ .gpu/models/*/; do
        [ -f "$dir/meta.json" ] || continue
        s="$(basename "$dir")"
        root="$(dirname "$dir")"
        remaining=$(( $(left) - 30 ))
        if [ "$remaining" -lt 20 ]; then
            echo "torch: out of time budget, skipped $s and the rest"
            torch_note="cut short by the time budget"
            break
        fi
        per=$(( remaining < 90 ? remaining : 90 ))
        if ! timeout "$per" "$python" graphnet-bench/scripts/torch_baseline.py --samples "$root" \
            --out "$OUT/torch/$s" --device cuda --warmup 10 --trials 50 --only "$s"; then
            echo "torch: $s failed or timed out after ${per}s"
            torch_note="some samples failed or timed out"
        fi
    done
else
    echo "SKIPPED: torch with CUDA (and onnx, numpy) is not importable here"
    torch_note="torch with CUDA not importable"
fi

step "summary"
if [ -n "$DRY" ]; then
    printf '\nGPU CHECK DRY RUN done in %ds: unpacking, paths and the no-GPU errors check out\n' "$SECONDS"
    exit 0
fi
"${python:-python3}" - "$OUT" "$card" "$driver" "$torch_note" <<'PY' | tee "$OUT/summary.txt"
import json, os, statistics, sys
out, card, driver, torch_note = sys.argv[1:5]
doc = json.load(open(os.path.join(out, "tessera-cuda.json")))
def torch_ms(sample, mode):
    p = os.path.join(out, "torch", sample, f"torch-{mode}.json")
    try:
        e = json.load(open(p))["samples"][sample]
        return statistics.median(e["trials_ms"]) if "trials_ms" in e else None
    except (OSError, KeyError, ValueError):
        return None
def cfg(s, label):
    return next((c for c in s["configs"] if c.get("label") == label), {})
def f(x):
    return f"{x:9.3f}" if isinstance(x, (int, float)) and x == x else "        -"
print(f"tessera CUDA on {card} (driver {driver}); ms per run, median")
print("device = CUDA events around a graph replay; wall = host clock, launch to completion")
print(f"torch: {torch_note} (host clock around each call, synchronized)")
print(f"{'sample':<20} {'eager dev':>9} {'comp dev':>9} {'comp wall':>9} {'torch-eag':>9} {'torch-cmp':>9} {'eag/comp':>8}  hottest memory-bound kernel")
for s in doc["samples"]:
    n = s["sample"]
    e, c = cfg(s, "eager"), cfg(s, "compiled")
    ed, cd, cw = e.get("median_ms"), c.get("median_ms"), c.get("wall_median_ms")
    ratio = f"{ed / cd:8.2f}" if ed and cd else "       -"
    hot = s.get("biggest_memory_bound_kernel") or {}
    hot_s = f"{hot['kernel']} {hot['bytes_per_s'] / 1e12:.2f} TB/s ({100 * hot['fraction_of_copy_rate']:.0f}% of 4.3)" if hot else "-"
    print(f"{n:<20} {f(ed)} {f(cd)} {f(cw)} {f(torch_ms(n, 'eager'))} {f(torch_ms(n, 'compile'))} {ratio}  {hot_s}")
PY
printf '\nGPU CHECK PASSED in %ds; results in %s\n' "$SECONDS" "$OUT"
