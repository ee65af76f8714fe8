#!/usr/bin/env python3
"""Benchmark tessera's latency search: `--search measure` and `--search model` against `off`.

Usage: scripts/bench_search.py [MODELS_DIR_OR_FILES...] [--threads 1] [--rounds 5] [--runs 10]
        [--shape batch=1,sequence=128] [--budget 30] [--json FILE]

First `tessera calibrate` at the same thread count (into a temporary directory). Per
model: one cold search (an empty measurement cache; its search time and decisions), a
second compile on the warm cache (search time again, and the calibrated model's agreement
with the measured picks), then `--rounds` rounds of `tessera bench --compare-search`,
which compiles the model with `--search off`, `model` and `measure` (warm cache) in one
process and times them interleaved run by run, medians of `--runs` runs. Prints a Markdown table of the medians over rounds and the ratios off /
measure and off / model (> 1: the search is faster), with geomeans. Inputs are made as
scripts/bench_vs_ort.py makes them.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_vs_ort as b  # noqa: E402


def bench(exe, target, extra, threads, runs, warmup, search, cache, budget, cal):
    cmd = [exe, "bench", target, "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup),
           "--json", "--search", search, "--cache", cache, "--budget", str(budget), "--calibration", cal]
    res = subprocess.run(cmd + extra, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", nargs="*")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--tessera", default=os.path.join(b.ROOT, "target", "release", "tessera"))
    ap.add_argument("--json")
    ap.add_argument("--shape")
    a = ap.parse_args(argv)
    shapes = b.parse_shapes(a.shape)
    samples = a.samples or sorted(
        os.path.join(b.ROOT, "samples", d)
        for d in os.listdir(os.path.join(b.ROOT, "samples"))
        if os.path.isfile(os.path.join(b.ROOT, "samples", d, "meta.json"))
    )
    tmp = tempfile.mkdtemp(prefix="tessera-search-")
    rows = []
    cal = os.path.join(tmp, "calibration.json")
    subprocess.run([a.tessera, "calibrate", "--threads", str(a.threads), "--out", cal], check=True,
                   capture_output=True, text=True)
    try:
        for name, model, sample in b.models_of(samples):
            why = b.tessera_imports(a.tessera, model, shapes)
            if why is not None:
                print(f"{name}: skipped: {why}", file=sys.stderr)
                continue
            if sample is not None:
                target, extra = sample, []
            else:
                feeds = b.feeds_of_model(model, shapes=shapes)
                target = model
                extra = b.write_inputs(feeds, os.path.join(b.ROOT, "target", "bench-inputs", name))
            cache = os.path.join(tmp, f"{name}.json")
            cold = bench(a.tessera, target, extra, a.threads, 1, 0, "measure", cache, a.budget, cal)
            warm = bench(a.tessera, target, extra, a.threads, 1, 0, "measure", cache, a.budget, cal)
            times = {"off": [], "model": [], "measure": []}
            for _ in range(a.rounds):
                j = bench(a.tessera, target, extra + ["--compare-search"], a.threads, a.runs, a.warmup,
                          "measure", cache, a.budget, cal)
                for mode, v in j["search_compare"].items():
                    times[mode].append(v["ms"])
            off, meas, model = times["off"], times["measure"], times["model"]
            s = cold["search"]
            row = {
                "model": name,
                "threads": a.threads,
                "off_ms": statistics.median(off),
                "measure_ms": statistics.median(meas),
                "model_ms": statistics.median(model),
                "agreement": warm["search"]["agreement"],
                "kernels_with_alternatives": len(s["decisions"]),
                "changed": s["changed"],
                "alternatives_timed": s["measured"],
                "over_budget": s["over_budget"],
                "search_cold_s": s["seconds"],
                "search_warm_s": warm["search"]["seconds"],
                "warm_measured": warm["search"]["measured"],
                "compile_cold_s": cold["compile_s"],
                "compile_warm_s": warm["compile_s"],
            }
            rows.append(row)
            print(f"{name}: {row}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{a.threads} threads, {a.rounds} rounds x {a.runs} runs, medians (ms); search budget {a.budget} s\n")
    print("| model | off | model | measure | off / model | off / measure | kernels with alternatives | changed | "
          "model agrees | search cold s | search warm s | compile cold s | compile warm s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        same, of = r["agreement"]
        print(
            f"| {r['model']} | {r['off_ms']:.3f} | {r['model_ms']:.3f} | {r['measure_ms']:.3f} | "
            f"{r['off_ms'] / r['model_ms']:.2f}x | {r['off_ms'] / r['measure_ms']:.2f}x | "
            f"{r['kernels_with_alternatives']} | {r['changed']} | {same}/{of} | {r['search_cold_s']:.2f} | "
            f"{r['search_warm_s']:.3f} | {r['compile_cold_s']:.2f} | {r['compile_warm_s']:.2f} |"
        )
    gm_meas = b.geomean([r["off_ms"] / r["measure_ms"] for r in rows])
    gm_model = b.geomean([r["off_ms"] / r["model_ms"] for r in rows])
    same = sum(r["agreement"][0] for r in rows)
    of = sum(r["agreement"][1] for r in rows)
    print(f"| **geomean** | | | | **{gm_model:.2f}x** | **{gm_meas:.2f}x** | | | {same}/{of} | | | | |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
