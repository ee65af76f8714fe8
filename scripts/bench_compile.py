#!/usr/bin/env python3
"""Benchmark tessera's compile time against graph size.

For each model (arguments: .onnx files, directories of .onnx files, or sample directories
holding model.onnx), reports the imported graph's node count and, as medians of --runs
runs (each a fresh process):

  compile_s   what `tessera bench MODEL --json` reports: `tessera::compile` (pass pipeline,
              fusion planning, kernel building, JIT, memory plan), import excluded;
  passes_s    the pass pipeline alone, summed from the pass table `tessera compile` prints;
  plan_s      wall time of `tessera compile MODEL --emit plan > /dev/null` (import, passes,
              CPU compile, printing the fusion and memory plans; --no-plan skips it).

A model tessera cannot import is listed with the reason. Prints a Markdown table; with
--json, writes every measurement. Needs only the Python standard library.

Usage:
    python3 scripts/bench_compile.py MODEL.onnx|DIR ... [--runs 3] [--threads 2]
        [--tessera target/release/tessera] [--no-plan] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def models_of(args: list[str]) -> list[tuple[str, str]]:
    """(name, path) for each argument; directories contribute their .onnx files."""
    out = []
    for a in args:
        if os.path.isfile(os.path.join(a, "model.onnx")):
            out.append((os.path.basename(os.path.normpath(a)), a))
        elif os.path.isdir(a):
            for f in sorted(os.listdir(a)):
                if f.endswith(".onnx"):
                    out.append((f[: -len(".onnx")], os.path.join(a, f)))
        else:
            out.append((os.path.basename(a).removesuffix(".onnx"), a))
    return out


def run(cmd: list[str], stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True)


def fail_reason(res: subprocess.CompletedProcess) -> str:
    """The unsupported op types of a failed import, or the first line of the error."""
    ops = sorted(set(re.findall(r'^\s+node "[^"]*": (\S+) \(', res.stderr, re.M)))
    if ops:
        return "unsupported " + ", ".join(ops)
    lines = [l.strip() for l in res.stderr.splitlines() if l.strip()]
    return lines[0].removeprefix("error: ")[:160] if lines else f"exit status {res.returncode}"


def node_count(exe: str, model: str) -> tuple[int, int] | str:
    """(computing nodes, all nodes incl. constants) of the imported graph, or why not."""
    res = run([exe, "inspect", model])
    if res.returncode != 0:
        return fail_reason(res)
    m = re.search(r": (\d+) nodes,", res.stdout)
    if not m:
        return "no node count in `tessera inspect` output"
    total = int(m.group(1))
    c = re.search(r"^\s+constant\s+(\d+)", res.stdout, re.M | re.I)
    return total - (int(c.group(1)) if c else 0), total


def bench_compile_s(exe: str, model: str, threads: int) -> float | str:
    res = run([exe, "bench", model, "--json", "--runs", "1", "--warmup", "0", "--threads", str(threads)])
    if res.returncode != 0:
        return fail_reason(res)
    return float(json.loads(res.stdout.strip().splitlines()[-1])["compile_s"])


PASS_ROW = re.compile(r"^\d+\s+\S+\s+(?:yes|no)\s+\d+ -> \d+\s+([\d.]+) ms", re.M)


def plan_wall_s(exe: str, model: str) -> tuple[float, float] | str:
    """(wall seconds of `compile --emit plan`, seconds in passes) or why not."""
    t = time.perf_counter()
    res = run([exe, "compile", model, "--emit", "plan"], stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        return fail_reason(res)
    return wall, sum(float(ms) for ms in PASS_ROW.findall(res.stderr)) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tessera", default=os.path.join(ROOT, "target", "release", "tessera"))
    ap.add_argument("--no-plan", action="store_true", help="skip timing `compile --emit plan`")
    ap.add_argument("--json", help="write every measurement here")
    a = ap.parse_args()
    if not os.path.isfile(a.tessera):
        sys.exit(f"{a.tessera}: no such binary (cargo build --release, or pass --tessera)")

    records = []
    print("| model | nodes (with constants) | compile_s | passes_s | `--emit plan` s | µs/node |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, path in models_of(a.models):
        rec: dict = {"model": name, "path": path}
        nodes = node_count(a.tessera, path)
        if isinstance(nodes, str):
            rec["error"] = nodes
            records.append(rec)
            print(f"| {name} | — | — | — | — | import failed: {nodes} |", flush=True)
            continue
        rec["nodes"], rec["nodes_with_constants"] = nodes
        compiles, plans, passes = [], [], []
        for _ in range(a.runs):
            c = bench_compile_s(a.tessera, path, a.threads)
            if isinstance(c, str):
                rec["error"] = c
                break
            compiles.append(c)
            if not a.no_plan:
                p = plan_wall_s(a.tessera, path)
                if isinstance(p, str):
                    rec["error"] = p
                    break
                plans.append(p[0])
                passes.append(p[1])
        rec.update(compile_s=compiles, plan_s=plans, passes_s=passes)
        records.append(rec)
        if "error" in rec:
            print(f"| {name} | {nodes[0]} ({nodes[1]}) | — | — | — | failed: {rec['error']} |", flush=True)
            continue
        med = statistics.median(compiles)
        fmt = lambda xs: f"{statistics.median(xs):.3f}" if xs else "—"  # noqa: E731
        print(
            f"| {name} | {nodes[0]} ({nodes[1]}) | {med:.3f} | {fmt(passes)} | {fmt(plans)} "
            f"| {1e6 * med / max(nodes[0], 1):.0f} |",
            flush=True,
        )
    print(f"\nmedians of {a.runs} runs; compile_s from `tessera bench --json --threads {a.threads}`")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
