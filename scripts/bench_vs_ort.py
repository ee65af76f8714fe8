#!/usr/bin/env python3
"""Benchmark tessera's compiled CPU backend against its own eager mode and onnxruntime.

For each model (default: every bundled sample; arguments may be sample directories, .onnx
files, or directories of .onnx files such as ../shared/models), rounds alternate between
onnxruntime with all graph optimizations (ORT_ENABLE_ALL), onnxruntime with none
(ORT_DISABLE_ALL) and `tessera bench --json` (which itself interleaves tessera's eager
and compiled runs), all at the same intra-op thread count. onnxruntime times are the
median of every timed run; tessera's are the median of its per-round medians.

Usage:
    .venv/bin/python scripts/bench_vs_ort.py [SAMPLE_DIR|MODEL.onnx|MODELS_DIR ...]
        [--threads 2] [--rounds 5] [--runs 10] [--tessera target/release/tessera]
        [--json out.json] [--shape batch=1,seq=128]

A plain .onnx model gets seeded random inputs (floats in [-1, 1), integers in [1, 10):
token ids, and attention masks with every position attended; symbolic dimensions sized by
--shape, else 1); tessera gets the same values as .pb files and specializes to their shapes. A model tessera cannot import is listed with the reason and left out
of the geomeans.

Prints a Markdown table (ratios > 1 mean tessera's compiled backend is faster) and,
with --json, writes every measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def feeds_of(sample_dir: str) -> dict:
    from make_samples import GENERATOR, generate
    from ort_reference import load_tensor

    with open(os.path.join(sample_dir, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    feeds = {}
    for entry in meta["inputs"]:
        if "file" in entry:
            feeds[entry["name"]] = load_tensor(os.path.join(sample_dir, entry["file"]))
        else:
            if entry["random"]["generator"] != GENERATOR:
                raise SystemExit(f"{sample_dir}: unknown generator for {entry['name']}")
            feeds[entry["name"]] = generate(entry["random"], entry["dtype"], entry["shape"])
    return feeds


ONNX_DTYPES = {1: "float32", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


def parse_shapes(text: str | None) -> dict:
    """`batch=1,seq=128` (tessera's --shape syntax) as a dict of symbol sizes."""
    out = {}
    for item in (text or "").split(","):
        if item.strip():
            name, size = item.split("=", 1)
            out[name.strip()] = int(size)
    return out


def symbol_sizes(model: str, shapes: dict | None = None) -> dict:
    """The size of every symbolic input dimension of `model`: from `shapes`, else 1. An
    unnamed unknown dimension is the symbol `INPUT.AXIS`, as tessera names it."""
    import onnx

    m = onnx.load(model, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    sizes = {}
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        for axis, d in enumerate(inp.type.tensor_type.shape.dim):
            if not d.HasField("dim_value"):
                sym = d.dim_param or f"{inp.name}.{axis}"
                sizes[sym] = (shapes or {}).get(sym, 1)
    return sizes


def feeds_of_model(model: str, seed: int = 0, shapes: dict | None = None) -> dict:
    """Seeded random inputs for every graph input of a plain .onnx model; symbolic
    dimensions take their sizes from `shapes` (symbol -> size), 1 otherwise."""
    import numpy as np
    import onnx

    m = onnx.load(model, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        dims = [
            d.dim_value if d.HasField("dim_value") else (shapes or {}).get(d.dim_param or f"{inp.name}.{k}", 1)
            for k, d in enumerate(tt.shape.dim)
        ]
        dtype = ONNX_DTYPES.get(tt.elem_type)
        if dtype is None:
            raise SystemExit(f"{model}: input {inp.name} has an unsupported element type {tt.elem_type}")
        if dtype.startswith("float"):
            feeds[inp.name] = rng.uniform(-1.0, 1.0, dims).astype(dtype)
        elif dtype == "bool":
            feeds[inp.name] = np.ones(dims, dtype=bool)
        else:
            feeds[inp.name] = rng.integers(1, 10, dims).astype(dtype)
    return feeds


def write_inputs(feeds: dict, directory: str) -> list[str]:
    """The feeds as TensorProto files, as `--input NAME=FILE` arguments for tessera."""
    from onnx import numpy_helper

    os.makedirs(directory, exist_ok=True)
    args = []
    for i, (name, value) in enumerate(feeds.items()):
        path = os.path.join(directory, f"{i}.pb")
        with open(path, "wb") as f:
            f.write(numpy_helper.from_array(value, name).SerializeToString())
        args += ["--input", f"{name}={path}"]
    return args


def models_of(args: list[str]) -> list[tuple[str, str, str | None]]:
    """(name, model path, sample dir or None) for each argument."""
    out = []
    for a in args:
        if os.path.isfile(os.path.join(a, "meta.json")):
            out.append((os.path.basename(os.path.normpath(a)), os.path.join(a, "model.onnx"), a))
        elif os.path.isdir(a):
            for f in sorted(os.listdir(a)):
                if f.endswith(".onnx"):
                    out.append((f[: -len(".onnx")], os.path.join(a, f), None))
        else:
            out.append((os.path.basename(a)[: -len(".onnx")], a, None))
    return out


def session(model: str, threads: int, optimize: bool):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def time_runs(sess, feeds: dict, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def tessera_bench(exe: str, target: str, extra: list[str], threads: int, runs: int, warmup: int) -> dict:
    cmd = [exe, "bench", target, "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup), "--json"]
    res = subprocess.run(cmd + extra, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def shape_flag(sizes: dict) -> list[str]:
    """tessera's `--shape` argument for these symbol sizes (none for a static model)."""
    return ["--shape", ",".join(f"{k}={v}" for k, v in sizes.items())] if sizes else []


def tessera_imports(exe: str, model: str, shapes: dict | None = None) -> str | None:
    """None if tessera imports the model (symbolic dimensions sized by `shapes`, else 1),
    else the reason."""
    flag = shape_flag(symbol_sizes(model, shapes)) if model.endswith(".onnx") else []
    res = subprocess.run([exe, "inspect", model] + flag, capture_output=True, text=True)
    return None if res.returncode == 0 else res.stderr.strip().splitlines()[-1]


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tessera", default=os.path.join(ROOT, "target", "release", "tessera"))
    ap.add_argument("--json")
    ap.add_argument("--shape", help="sizes of symbolic input dimensions, e.g. batch=1,seq=128 (default 1)")
    a = ap.parse_args(argv)
    shapes = parse_shapes(a.shape)
    import onnxruntime as ort

    samples = a.samples or sorted(
        os.path.join(ROOT, "samples", d)
        for d in os.listdir(os.path.join(ROOT, "samples"))
        if os.path.isfile(os.path.join(ROOT, "samples", d, "meta.json"))
    )
    rows, skipped = [], []
    for name, model, sample in models_of(samples):
        why = tessera_imports(a.tessera, model, shapes)
        if why is not None:
            skipped.append((name, why))
            print(f"{name}: skipped: {why}", file=sys.stderr)
            continue
        if sample is not None:
            feeds, target, extra = feeds_of(sample), sample, []
        else:
            feeds = feeds_of_model(model, shapes=shapes)
            target = model
            extra = write_inputs(feeds, os.path.join(ROOT, "target", "bench-inputs", name))
        s_all, s_none = session(model, a.threads, True), session(model, a.threads, False)
        for s in (s_all, s_none):
            time_runs(s, feeds, a.warmup)
        t_all, t_none, t_eager, t_comp, last = [], [], [], [], {}
        for _ in range(a.rounds):
            t_all += time_runs(s_all, feeds, a.runs)
            t_none += time_runs(s_none, feeds, a.runs)
            time.sleep(0.2)  # let onnxruntime's spinning threads go idle
            last = tessera_bench(a.tessera, target, extra, a.threads, a.runs, a.warmup)
            t_eager.append(last["eager_ms"])
            t_comp.append(last["compiled_ms"])
        row = {
            "sample": name,
            "threads": a.threads,
            "ort_enable_all_ms": statistics.median(t_all),
            "ort_disable_all_ms": statistics.median(t_none),
            "eager_ms": statistics.median(t_eager),
            "compiled_ms": statistics.median(t_comp),
            "compile_s": last.get("compile_s"),
            "mem_kernel": last.get("mem_kernel"),
            "mem_kernel_gbps": last.get("mem_kernel_gbps"),
            "copy_gbps": last.get("copy_gbps"),
            "copy_same_size_gbps": last.get("copy_same_size_gbps"),
        }
        rows.append(row)
        print(f"{name}: {row}", file=sys.stderr)
    print(f"onnxruntime {ort.__version__}, {a.threads} threads, {a.rounds} rounds x {a.runs} runs, medians (ms)\n")
    print("| sample | compiled | eager | ORT ENABLE_ALL | ORT DISABLE_ALL | vs eager | vs ORT all | vs ORT none |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        c = r["compiled_ms"]
        print(
            f"| {r['sample']} | {c:.3f} | {r['eager_ms']:.3f} | {r['ort_enable_all_ms']:.3f} | "
            f"{r['ort_disable_all_ms']:.3f} | {r['eager_ms'] / c:.2f}x | "
            f"{r['ort_enable_all_ms'] / c:.2f}x | {r['ort_disable_all_ms'] / c:.2f}x |"
        )
    gm = lambda k: geomean([r[k] / r["compiled_ms"] for r in rows])  # noqa: E731
    print(
        f"| **geomean** | | | | | **{gm('eager_ms'):.2f}x** | **{gm('ort_enable_all_ms'):.2f}x** | "
        f"**{gm('ort_disable_all_ms'):.2f}x** |"
    )
    print("\n| sample | largest memory-bound kernel | achieved GB/s | copy GB/s (64 MiB) | copy GB/s (same size) |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        if r["mem_kernel"]:
            print(
                f"| {r['sample']} | {r['mem_kernel']} | {r['mem_kernel_gbps']:.2f} | {r['copy_gbps']:.2f} | "
                f"{r['copy_same_size_gbps']:.2f} |"
            )
    if skipped:
        print("\nNot imported by tessera (left out of the geomeans):\n")
        for name, why in skipped:
            print(f"- {name}: {why}")
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "skipped": skipped}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
