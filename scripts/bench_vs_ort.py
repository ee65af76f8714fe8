#!/usr/bin/env python3
"""Benchmark tessera's compiled CPU backend against its own eager mode and onnxruntime.

For each sample directory (default: every bundled sample), rounds alternate between
onnxruntime with all graph optimizations (ORT_ENABLE_ALL), onnxruntime with none
(ORT_DISABLE_ALL) and `tessera bench --json` (which itself interleaves tessera's eager
and compiled runs), all at the same intra-op thread count. onnxruntime times are the
median of every timed run; tessera's are the median of its per-round medians.

Usage:
    .venv/bin/python scripts/bench_vs_ort.py [SAMPLE_DIR ...] [--threads 2] [--rounds 5]
        [--runs 10] [--tessera target/release/tessera] [--json out.json]

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


def tessera_bench(exe: str, sample: str, threads: int, runs: int, warmup: int) -> dict:
    cmd = [exe, "bench", sample, "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup), "--json"]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


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
    a = ap.parse_args(argv)
    import onnxruntime as ort

    samples = a.samples or sorted(
        os.path.join(ROOT, "samples", d)
        for d in os.listdir(os.path.join(ROOT, "samples"))
        if os.path.isfile(os.path.join(ROOT, "samples", d, "meta.json"))
    )
    rows = []
    for sample in samples:
        name = os.path.basename(os.path.normpath(sample))
        model = os.path.join(sample, "model.onnx")
        feeds = feeds_of(sample)
        s_all, s_none = session(model, a.threads, True), session(model, a.threads, False)
        for s in (s_all, s_none):
            time_runs(s, feeds, a.warmup)
        t_all, t_none, t_eager, t_comp, last = [], [], [], [], {}
        for _ in range(a.rounds):
            t_all += time_runs(s_all, feeds, a.runs)
            t_none += time_runs(s_none, feeds, a.runs)
            time.sleep(0.2)  # let onnxruntime's spinning threads go idle
            last = tessera_bench(a.tessera, sample, a.threads, a.runs, a.warmup)
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
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
