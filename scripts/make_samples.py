#!/usr/bin/env python3
"""Build tessera's bundled model samples (samples/<name>/) from GraphNet exports.

Developer script: it reads the ONNX exports of GraphNet samples (default
../shared/graphnet-samples next to the repository) and writes, per model,

    samples/<name>/model.onnx        byte copy of the export
    samples/<name>/meta.json         provenance, inputs, outputs (see samples/README.md)
    samples/<name>/inputs/<k>.pb     small inputs as ONNX TensorProto (raw_data)
    samples/<name>/outputs/<k>.pb    onnxruntime reference outputs

plus samples/README.md.  Large inputs are not stored: meta.json describes them
with a seeded SplitMix64 generator that tessera re-implements bit-exactly.  The
outputs are committed, so tests never need the shared folder or Python.

Usage: make_samples.py [--src DIR] [--out DIR] [--only NAME ...] [--self-test | --verify]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import shutil
import statistics
import struct
import sys

MODELS = (
    "mlp_iris",
    "resnet18_winputs",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "tiny_bert_cls",
    "tiny_gptj_cls",
    "tiny_vit",
)

# Inputs of at least this many bytes are described by a generator instead of a file.
FILE_LIMIT_BYTES = 256 * 1024
SEED_BASE = 1000  # input k of a sample gets seed SEED_BASE + k
ALT_SEED_BASE = 2000  # second draw, only used to measure input sensitivity
TIMED_RUNS = 5

# Float inputs without GraphNet statistics: uniform range per (model, input name),
# falling back to the model's "*" entry.
FLOAT_RANGES = {
    # iris measurements are lengths/widths in cm, roughly 0.1 .. 7.9
    "mlp_iris": {"*": (0.0, 8.0)},
    # un-normalized image in [0, 1): what GraphNet's own replay stats give
    # for torchvision images (mean 0.5, std 0.289), see resnet18's meta.json
    "shufflenet_v2_x0_5": {"*": (0.0, 1.0)},
    "squeezenet1_1": {"*": (0.0, 1.0)},
    # ViT image processors normalize pixels to [-1, 1]
    "tiny_vit": {"*": (-1.0, 1.0)},
    # hidden-state embeddings; the first LayerNorm rescales them anyway
    "tiny_gptj_cls": {"*": (-1.0, 1.0)},
}

# ---------------------------------------------------------------------------
# The generator ("splitmix64-uniform"); samples/README.md is the specification.

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
GENERATOR = "splitmix64-uniform"


class SplitMix64:
    """Reference implementation in plain Python integers."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + GOLDEN_GAMMA) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * MIX1) & MASK64
        z = ((z ^ (z >> 27)) * MIX2) & MASK64
        return z ^ (z >> 31)


def splitmix64_numpy(seed: int, count: int):
    """The first `count` outputs of SplitMix64(seed), vectorised (uint64 wraps)."""
    import numpy as np

    # The k-th state (k = 1, 2, ...) is seed + k * gamma modulo 2^64.
    z = np.uint64(seed & MASK64) + np.arange(1, count + 1, dtype=np.uint64) * np.uint64(GOLDEN_GAMMA)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def generate_python(spec: dict, dtype: str, count: int) -> list:
    """Element values of a generator input, the slow obvious way."""
    import numpy as np

    rng = SplitMix64(spec["seed"])
    out = []
    for _ in range(count):
        z = rng.next()
        if dtype in ("float32", "float64", "float16"):
            unit = (z >> 11) * 2.0**-53
            out.append(np.dtype(dtype).type(spec["low"] + (spec["high"] - spec["low"]) * unit))
        elif dtype == "bool":
            out.append((z >> 63) == 1)
        else:
            out.append(spec["low"] + z % (spec["high"] - spec["low"]))
    return out


def generate(spec: dict, dtype: str, shape: list[int]):
    """Element values of a generator input as a numpy array (row-major)."""
    import numpy as np

    count = math.prod(shape)
    z = splitmix64_numpy(spec["seed"], count)
    if dtype in ("float32", "float64", "float16"):
        unit = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
        low, high = float(spec["low"]), float(spec["high"])
        values = (low + (high - low) * unit).astype(dtype)
    elif dtype == "bool":
        values = (z >> np.uint64(63)) == np.uint64(1)
    elif dtype in ("int64", "int32", "int8", "uint8", "int16", "uint16", "uint32", "uint64"):
        low, high = int(spec["low"]), int(spec["high"])
        if not high > low:
            raise ValueError(f"integer range needs high > low: {spec}")
        offset = z % np.uint64(high - low)
        values = (np.int64(low) + offset.astype(np.int64)).astype(dtype)
    else:
        raise ValueError(f"generator does not support dtype {dtype}")
    return values.reshape(shape)


def check_generator(spec: dict, dtype: str, count: int = 1000) -> None:
    """Assert the numpy and plain-Python generators agree bit for bit."""
    import numpy as np

    fast = generate(spec, dtype, [count])
    slow = np.array(generate_python(spec, dtype, count), dtype=dtype)
    if fast.tobytes() != slow.tobytes():
        bad = int(np.flatnonzero(fast.view(np.uint8) != slow.view(np.uint8))[0]) // fast.itemsize
        raise AssertionError(f"generator mismatch for {spec} {dtype} at element {bad}")


def self_test() -> dict:
    """Check the generator on a few cases; return test vectors for the README."""
    # Published SplitMix64 values for seed 1234567 (Rosetta Code's Splitmix64 task).
    rng = SplitMix64(1234567)
    expected = [6457827717110365317, 3203168211198807973, 9817491932198370423]
    got = [rng.next() for _ in expected]
    assert got == expected, f"SplitMix64 reference values differ: {got}"
    for seed in (0, 1, SEED_BASE, 0xFFFFFFFFFFFFFFFF):
        check_generator({"seed": seed, "low": -1.0, "high": 1.0}, "float32")
        check_generator({"seed": seed, "low": 0.0, "high": 8.1}, "float32")
        check_generator({"seed": seed, "low": 0, "high": 1124}, "int64")
        check_generator({"seed": seed, "low": -5, "high": 7}, "int64")
        check_generator({"seed": seed, "low": 0, "high": 1}, "bool")
    rng = SplitMix64(SEED_BASE)
    return {
        "u64": [rng.next() for _ in range(3)],
        "float32": [float(v) for v in generate({"seed": SEED_BASE, "low": -1.0, "high": 1.0}, "float32", [3])],
        "int64": [int(v) for v in generate({"seed": SEED_BASE, "low": 0, "high": 1124}, "int64", [3])],
        "bool": [bool(v) for v in generate({"seed": SEED_BASE, "low": 0, "high": 1}, "bool", [8])],
    }


# ---------------------------------------------------------------------------
# Model inspection


def round_sig(x: float, digits: int = 6) -> float:
    """Round to a short decimal so every JSON parser reads back the same f64."""
    return float(f"{x:.{digits}g}")


def value_info_type(vi) -> tuple[str, list[int]]:
    import numpy as np
    from onnx import helper

    tensor = vi.type.tensor_type
    dims = []
    for d in tensor.shape.dim:
        if not d.HasField("dim_value"):
            raise ValueError(f"{vi.name}: symbolic dimension {d.dim_param!r} not supported")
        dims.append(int(d.dim_value))
    return np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name, dims


def embedding_rows(graph, input_name: str) -> int | None:
    """Rows of the initializer table a Gather indexes with this input (via Casts)."""
    inits = {t.name: t for t in graph.initializer}
    aliases = {input_name}
    changed = True
    while changed:  # follow Cast/Identity chains starting at the input
        changed = False
        for node in graph.node:
            if node.op_type in ("Cast", "Identity") and node.input[0] in aliases and node.output[0] not in aliases:
                aliases.add(node.output[0])
                changed = True
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] in aliases:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            table = inits.get(node.input[0])
            if table is not None and axis == 0:
                return int(table.dims[0])
    return None


def identity_source(graph, name: str, input_names: set[str]) -> str | None:
    """The graph input that `name` is a copy of (through Identity nodes), if any."""
    producers = {out: node for node in graph.node for out in node.output}
    while name not in input_names:
        node = producers.get(name)
        if node is None or node.op_type != "Identity":
            return None
        name = node.input[0]
    return name


def gptj_sinusoidal_positions(num_pos: int, dim: int):
    """GPT-J's fixed rotary table: [sin(p * f), cos(p * f)], f = 10000^(-2i/dim)."""
    import numpy as np

    inv_freq = (1.0 / (10000.0 ** (np.arange(0, dim, 2, dtype=np.int64) / dim))).astype(np.float32)
    angles = np.arange(num_pos, dtype=np.float32)[:, None] * inv_freq[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


def plan_input(sample: str, graph, index: int, name: str, dtype: str, shape: list[int], stats: dict | None) -> dict:
    """Decide how input `index` gets its values.

    Returns {"random": spec, "force_random": bool} for generator inputs or
    {"array": ndarray, "note": str} for inputs with fixed natural values.
    """
    import numpy as np

    seed = SEED_BASE + index
    if stats is not None:  # GraphNet per-tensor statistics (resnet18_winputs)
        half_width = float(stats["std"]) * math.sqrt(3.0)
        low = round_sig(float(stats["mean"]) - half_width)
        high = round_sig(float(stats["mean"]) + half_width)
        if stats.get("min_val") is not None:
            low = max(low, float(stats["min_val"]))
        if stats.get("max_val") is not None:
            high = min(high, float(stats["max_val"]))
        spec = {"generator": GENERATOR, "seed": seed, "low": low, "high": high}
        note = f"uniform with GraphNet's mean {stats['mean']} / std {stats['std']}"
        if stats.get("min_val") is not None:
            note += f", low clamped to min_val {stats['min_val']}"
        return {"random": spec, "force_random": True, "note": note}

    if sample == "tiny_gptj_cls" and name.endswith("_attn_embed_positions"):
        num_pos, dim = shape
        return {"array": gptj_sinusoidal_positions(num_pos, dim),
                "note": f"GPT-J fixed rotary table: concat(sin, cos) of position * 10000^(-2i/{dim})"}
    if sample == "tiny_gptj_cls" and name.endswith("_attn_scale_attn"):
        head_dim = 8  # hidden 32 / 4 heads, see the [1, 4, 20, 8] key/value outputs
        return {"array": np.array(math.sqrt(head_dim), dtype=np.float32).reshape(shape),
                "note": f"GPT-J attention scale sqrt(head_dim) = sqrt({head_dim})"}

    if dtype.startswith("float"):
        ranges = FLOAT_RANGES[sample]
        low, high = ranges.get(name, ranges["*"])
        spec = {"generator": GENERATOR, "seed": seed, "low": low, "high": high}
        return {"random": spec, "force_random": False, "note": f"uniform in [{low}, {high})"}
    if dtype == "int64":
        if "attention_mask" in name:
            return {"array": np.ones(shape, dtype=np.int64), "note": "all ones (no padding)"}
        rows = embedding_rows(graph, name)
        if rows is None:
            raise ValueError(f"{sample}: no embedding Gather found for int64 input {name}")
        if "token_type" in name:
            high, note = min(2, rows), f"segment ids uniform in [0, {min(2, rows)}) (table has {rows} rows)"
        else:
            high, note = rows, f"token ids uniform in [0, {rows}) (vocabulary from the embedding Gather)"
        spec = {"generator": GENERATOR, "seed": seed, "low": 0, "high": high}
        return {"random": spec, "force_random": False, "note": note}
    if dtype == "bool":
        spec = {"generator": GENERATOR, "seed": seed, "low": 0, "high": 1}
        return {"random": spec, "force_random": False, "note": "uniform bits"}
    raise ValueError(f"{sample}: no value plan for input {name} of dtype {dtype}")


# ---------------------------------------------------------------------------
# Sample building


def build_sample(sample: str, src_dir: str, out_dir: str) -> dict:
    import numpy as np
    import onnx

    script_dir = os.path.dirname(os.path.abspath(__file__))
    if script_dir not in sys.path:
        sys.path.insert(0, script_dir)
    from ort_reference import make_session, reference_description, run_reference, save_tensor

    model_src = os.path.join(src_dir, f"{sample}.onnx")
    with open(os.path.join(src_dir, f"{sample}.report.json"), encoding="utf-8") as f:
        report = json.load(f)
    stats_path = os.path.join(src_dir, f"{sample}.meta.json")
    stats_all = None
    if os.path.exists(stats_path):
        with open(stats_path, encoding="utf-8") as f:
            stats_all = json.load(f)

    model = onnx.load(model_src)
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    graph_inputs = [vi for vi in graph.input if vi.name not in init_names]

    sample_dir = os.path.join(out_dir, sample)
    if os.path.isdir(sample_dir):
        shutil.rmtree(sample_dir)
    os.makedirs(os.path.join(sample_dir, "outputs"))
    shutil.copyfile(model_src, os.path.join(sample_dir, "model.onnx"))

    inputs_meta, feeds, alt_feeds, notes = [], {}, {}, []
    for k, vi in enumerate(graph_inputs):
        dtype, shape = value_info_type(vi)
        stats = stats_all.get(vi.name) if stats_all is not None else None
        plan = plan_input(sample, graph, k, vi.name, dtype, shape, stats)
        entry = {"name": vi.name, "dtype": dtype, "shape": shape}
        if "array" in plan:
            value = alt_value = plan["array"]
        else:
            spec = plan["random"]
            check_generator(spec, dtype)
            value = generate(spec, dtype, shape)
            alt_value = generate({**spec, "seed": ALT_SEED_BASE + k}, dtype, shape)
        nbytes = value.size * value.itemsize
        if "array" not in plan and (plan["force_random"] or nbytes >= FILE_LIMIT_BYTES):
            entry["random"] = plan["random"]
        else:
            os.makedirs(os.path.join(sample_dir, "inputs"), exist_ok=True)
            entry["file"] = f"inputs/{k}.pb"
            save_tensor(value, vi.name, os.path.join(sample_dir, entry["file"]))
        inputs_meta.append(entry)
        notes.append(plan["note"])
        feeds[vi.name] = value
        alt_feeds[vi.name] = alt_value

    session = make_session(model_src)
    names, values, _ = run_reference(model_src, feeds, session)
    times = [run_reference(model_src, feeds, session)[2] for _ in range(TIMED_RUNS)]
    _, alt_values, _ = run_reference(model_src, alt_feeds, session)
    repeat = run_reference(model_src, feeds, session)[1]
    deterministic = all(a.tobytes() == b.tobytes() for a, b in zip(values, repeat))

    outputs_meta, output_stats = [], []
    declared = [vi.name for vi in graph.output]
    if names != declared:
        raise RuntimeError(f"{sample}: ORT output order {names} != graph outputs {declared}")
    for k, (name, value) in enumerate(zip(names, values)):
        rel = f"outputs/{k}.pb"
        save_tensor(value, name, os.path.join(sample_dir, rel))
        outputs_meta.append({"name": name, "dtype": value.dtype.name, "shape": list(value.shape), "file": rel})
        v64 = value.astype(np.float64)
        diff = float(np.max(np.abs(v64 - alt_values[k].astype(np.float64)))) if value.size else 0.0
        output_stats.append({
            "min": float(v64.min()), "max": float(v64.max()), "std": float(v64.std()),
            "finite": bool(np.isfinite(v64).all()),
            "alt_input_max_abs_change": diff,
            "echoes_input": identity_source(graph, name, set(feeds)),
        })

    dtypes = sorted({o["dtype"] for o in outputs_meta})
    opset = {d: v for d, v in report.get("opset", [])}
    meta = {
        "name": sample,
        "source": f"PaddlePaddle/GraphNet (MIT): {report['sample']}",
        "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
        "provenance": {
            "exporter": f"torch.onnx.export ({report['exporter']})",
            "torch": report["torch"],
            "opset": opset.get("", opset.get("ai.onnx")),
            "weights": ("random (GraphNet replays parameters from per-tensor statistics); "
                        + ("stored as initializers" if report.get("weights") == "initializers"
                           else "passed as graph inputs")),
            "reference": reference_description(),
            "max_abs_diff": report["max_abs_diff"],
            "graphnet_strictest_passing_t": report["graphnet_strictest_passing_t"],
        },
        "inputs": inputs_meta,
        "outputs": outputs_meta,
    }
    with open(os.path.join(sample_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")

    ops = collections.Counter(n.op_type for n in graph.node)
    return {
        "meta": meta,
        "notes": notes,
        "nodes": len(graph.node),
        "initializers": len(graph.initializer),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "ort_ms_median": statistics.median(times) * 1e3,
        "ort_ms_min": min(times) * 1e3,
        "deterministic": deterministic,
        "output_stats": output_stats,
        "model_bytes": os.path.getsize(model_src),
        "committed_input_bytes": sum(
            os.path.getsize(os.path.join(sample_dir, e["file"])) for e in inputs_meta if "file" in e),
        "generated_elements": sum(math.prod(e["shape"]) for e in inputs_meta if "random" in e),
    }


# ---------------------------------------------------------------------------
# README

README_FORMAT = """\
# Bundled model samples

Real exported models with fixed inputs and reference outputs, committed so that
tessera's tests run without Python, network or the shared research folder.
Each sample is a computation graph from
[PaddlePaddle/GraphNet](https://github.com/PaddlePaddle/GraphNet) (MIT license),
exported to ONNX with torch {torch} (`torch.onnx.export`, dynamo exporter, opset 18).
**The weights are random**, not trained values: GraphNet ships graphs plus
per-tensor statistics, and the export replays parameters from those statistics.

Regenerate everything (developers only; needs `../shared/graphnet-samples`):

    scripts/setup-python.sh
    .venv/bin/python scripts/make_samples.py            # all samples + this README
    .venv/bin/python scripts/make_samples.py --only tiny_vit
    .venv/bin/python scripts/make_samples.py --self-test # generator checks only
    .venv/bin/python scripts/make_samples.py --verify    # committed samples vs onnxruntime

This README is written by `scripts/make_samples.py`; edit the script, not this file.

## Layout

    samples/<name>/model.onnx       the ONNX model, byte copy of the export
    samples/<name>/meta.json        description (below)
    samples/<name>/inputs/<k>.pb    input k when stored as a file
    samples/<name>/outputs/<k>.pb   reference value of output k

`<k>` is the 0-based position in the graph's input list (graph inputs that are
not initializers, in `GraphProto.input` order) or output list.  Every `.pb` file
is one serialized ONNX `TensorProto` with `name` = the graph input/output name,
`dims` = the shape, `data_type` = the ONNX element type and the elements packed
little-endian in `raw_data` (bool: one byte 0/1 per element).

## meta.json

```json
{{
 "name": "<sample name, = directory name>",
 "source": "PaddlePaddle/GraphNet (MIT): <path of the sample in the GraphNet repo>",
 "dtype": "<element type of the outputs, e.g. float32 (a list if they differ)>",
 "provenance": {{
  "exporter": "torch.onnx.export (dynamo)",
  "torch": "<torch version used for the export>",
  "opset": 18,
  "weights": "<random weights; initializers or graph inputs>",
  "reference": "onnxruntime <version> CPUExecutionProvider, graph optimizations disabled (ORT_DISABLE_ALL)",
  "max_abs_diff": "<f64: max |onnxruntime - torch eager| measured when the model was exported>",
  "graphnet_strictest_passing_t": "<int: strictest GraphNet tolerance level t that export check passed>"
 }},
 "inputs": [
  {{"name": "...", "dtype": "float32", "shape": [1, 3, 30, 30], "file": "inputs/0.pb"}},
  {{"name": "...", "dtype": "float32", "shape": [1, 3, 224, 224],
   "random": {{"generator": "splitmix64-uniform", "seed": 1000, "low": 0.0, "high": 1.0}}}}
 ],
 "outputs": [
  {{"name": "...", "dtype": "float32", "shape": [1, 1000], "file": "outputs/0.pb"}}
 ]
}}
```

* `inputs` / `outputs`: one entry per graph input / output, in graph order.
  `dtype` is the numpy name of the ONNX element type (`float32`, `int64`, `bool`, ...);
  `shape` is the full static shape (`[]` = scalar).
* An input has **exactly one** of `file` (path relative to the sample directory) or
  `random` (regenerate the values as below).  Inputs under {limit} KiB are stored as
  files; larger ones, and all of resnet18_winputs' weights, use `random` so that no
  large tensors are committed.  Values of file inputs were drawn the same way
  (seed {seed_base} + input index) except attention masks (all ones) and GPT-J's
  fixed rotary tables / attention scale (their natural values).
* Outputs always have `file`: onnxruntime {ort} on exactly these inputs
  (CPUExecutionProvider, `GraphOptimizationLevel.ORT_DISABLE_ALL`, 1 intra-op and
  1 inter-op thread, sequential).  They are a reference, not bit-exact targets:
  compare with a tolerance (e.g. GraphNet's float32 level t, or rtol 1e-4 / atol 1e-5).

## The `splitmix64-uniform` generator

`random = {{"generator": "splitmix64-uniform", "seed": S, "low": L, "high": H}}`.
`S` is a u64; for float inputs `L`, `H` are f64 (written with at most 6 significant
digits, so any correct JSON parser reads the same f64); for integer inputs they
are integers; for bool they are ignored (0, 1).

SplitMix64, all arithmetic wrapping modulo 2^64:

    state = S
    next():
        state = state + 0x9E3779B97F4A7C15
        z = state
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB
        return z ^ (z >> 31)

Elements are produced in row-major order, one `next()` per element:

* float (float32): `f32(L + (H - L) * ((next() >> 11) * 2^-53))`, evaluated in f64
  (`H - L` first, then multiply, then add; no fused multiply-add), then rounded
  to nearest-even f32 (Rust: `as f32`).
* integer (int64): `L + (next() % (H - L))` with the modulo on u64 and `H > L`.
* bool: `(next() >> 63) == 1`.

Test vectors (seed {seed_base}): `next()` = {vec_u64};
float32 in [-1, 1): {vec_f32} (bits {vec_f32_bits}); int64 in [0, 1124): {vec_i64};
bool: {vec_bool}.
`scripts/make_samples.py --self-test` checks a vectorised numpy implementation
against a plain-integer one (1000 values per seed/dtype) and against published
SplitMix64 values.

## Samples

Per sample: input and output tables, node count and op histogram of the model, and
the onnxruntime run time with the reference settings on the machine that built the
samples (2-core x86-64 VM).  Output columns min/max/std describe the reference
values; "max change, 2nd input draw" is max |output(inputs) - output(inputs')| where
inputs' uses seeds {alt_seed_base} + k instead of {seed_base} + k (fixed-value inputs unchanged): a
value near 0 means the output hardly depends on the input.

"""


def format_shape(shape: list[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def sample_section(info: dict) -> str:
    meta = info["meta"]
    prov = meta["provenance"]
    lines = [
        f"### {meta['name']}",
        "",
        f"Source graph `{meta['source'].split(': ', 1)[1]}` from PaddlePaddle/GraphNet, license MIT; "
        f"weights random ({'initializers' if 'initializers' in prov['weights'] else 'graph inputs'}); "
        f"exported by {prov['exporter']} with torch {prov['torch']}, opset {prov['opset']}; "
        f"export check max |ORT - torch| = {prov['max_abs_diff']:.3g} "
        f"(GraphNet t = {prov['graphnet_strictest_passing_t']}).",
        "",
        f"{info['nodes']} nodes, {info['initializers']} initializers, model {info['model_bytes']:,} bytes; "
        f"committed input files {info['committed_input_bytes']:,} bytes; "
        f"{info['generated_elements']:,} input elements from the generator.",
        "",
        "| input | dtype | shape | values |",
        "|---|---|---|---|",
    ]
    inputs = meta["inputs"]
    shown = inputs if len(inputs) <= 14 else inputs[:6] + [None] + inputs[-3:]
    for entry in shown:
        if entry is None:
            lines.append(f"| ... {len(inputs) - 9} more ... | | | |")
            continue
        note = info["notes"][inputs.index(entry)]
        if "random" in entry:
            r = entry["random"]
            where = f"generator seed {r['seed']} [{r['low']}, {r['high']}): {note}"
        else:
            where = f"`{entry['file']}`: {note}"
        lines.append(f"| `{entry['name']}` | {entry['dtype']} | {format_shape(entry['shape'])} | {where} |")
    lines += ["", "| output | dtype | shape | file | min | max | std | max change, 2nd input draw |",
              "|---|---|---|---|---|---|---|---|"]
    for entry, st in zip(meta["outputs"], info["output_stats"]):
        lines.append(
            f"| `{entry['name']}` | {entry['dtype']} | {format_shape(entry['shape'])} | `{entry['file']}` | "
            f"{st['min']:.4g} | {st['max']:.4g} | {st['std']:.4g} | {st['alt_input_max_abs_change']:.3g} |")
    ops = ", ".join(f"{op} {n}" for op, n in info["ops"].items())
    flat = [e["name"] for e, st in zip(meta["outputs"], info["output_stats"])
            if st["std"] > 0 and st["alt_input_max_abs_change"] < 1e-3 * st["std"]
            and st["echoes_input"] is None]
    if flat:
        lines += ["", f"**Caution:** {', '.join(f'`{n}`' for n in flat)} barely depends on the input "
                  "(a second input draw changes it by less than 1e-3 of its spread): the random weights "
                  "wash the input signal out layer by layer, and no input range fixes that. The reference "
                  "output still exercises every weight, but to test input handling compare intermediates "
                  "(`scripts/ort_reference.py --all-outputs`)."]
    echoes = [f"`{e['name']}` = input `{st['echoes_input']}`"
              for e, st in zip(meta["outputs"], info["output_stats"]) if st["echoes_input"]]
    if echoes:
        lines += ["", f"Outputs that pass an input through unchanged: {', '.join(echoes)}."]
    lines += [
        "",
        f"Ops: {ops}.",
        "",
        f"onnxruntime run time (reference settings, 1 thread): median {info['ort_ms_median']:.2f} ms "
        f"over {TIMED_RUNS} runs (min {info['ort_ms_min']:.2f} ms); "
        f"repeat runs bit-identical: {'yes' if info['deterministic'] else 'NO'}.",
        "",
    ]
    return "\n".join(lines)


def write_readme(path: str, infos: list[dict], vectors: dict) -> None:
    import onnxruntime as ort

    torch = sorted({i["meta"]["provenance"]["torch"] for i in infos})
    text = README_FORMAT.format(
        torch=", ".join(torch), alt_seed_base=ALT_SEED_BASE, limit=FILE_LIMIT_BYTES // 1024, seed_base=SEED_BASE, ort=ort.__version__,
        vec_u64=", ".join(f"`{v:#018x}`" for v in vectors["u64"]),
        vec_f32=", ".join(f"`{v!r}`" for v in vectors["float32"]),
        vec_f32_bits=", ".join(f"`{struct.unpack('<I', struct.pack('<f', v))[0]:#010x}`" for v in vectors["float32"]),
        vec_i64=", ".join(f"`{v}`" for v in vectors["int64"]),
        vec_bool=", ".join("1" if v else "0" for v in vectors["bool"]),
    )
    union = collections.Counter()
    for info in infos:
        union.update(info["ops"])
    text += "\n".join(sample_section(i) for i in infos)
    text += "\n## Op histogram over all samples\n\n| op | nodes | samples |\n|---|---|---|\n"
    for op, n in sorted(union.items(), key=lambda kv: (-kv[1], kv[0])):
        users = sum(op in i["ops"] for i in infos)
        text += f"| {op} | {n} | {users} |\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def verify_sample(sample_dir: str) -> tuple[bool, str]:
    """Rebuild a committed sample's inputs from meta.json alone, rerun onnxruntime
    and compare with the committed outputs.  Returns (ok, one-line summary)."""
    import numpy as np

    script_dir = os.path.dirname(os.path.abspath(__file__))
    if script_dir not in sys.path:
        sys.path.insert(0, script_dir)
    from ort_reference import load_tensor, run_reference

    with open(os.path.join(sample_dir, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    feeds = {}
    for entry in meta["inputs"]:
        if ("file" in entry) == ("random" in entry):
            return False, f"input {entry['name']}: needs exactly one of file/random"
        if "file" in entry:
            value = load_tensor(os.path.join(sample_dir, entry["file"]))
        else:
            if entry["random"]["generator"] != GENERATOR:
                return False, f"input {entry['name']}: unknown generator"
            value = generate(entry["random"], entry["dtype"], entry["shape"])
        if value.dtype.name != entry["dtype"] or list(value.shape) != entry["shape"]:
            return False, f"input {entry['name']}: {value.dtype} {value.shape} != meta"
        feeds[entry["name"]] = value
    names, values, _ = run_reference(os.path.join(sample_dir, "model.onnx"), feeds)
    if names != [o["name"] for o in meta["outputs"]]:
        return False, f"output names {names} != meta"
    worst, exact = 0.0, True
    for entry, value in zip(meta["outputs"], values):
        want = load_tensor(os.path.join(sample_dir, entry["file"]))
        if want.dtype != value.dtype or want.shape != value.shape:
            return False, f"output {entry['name']}: {value.dtype} {value.shape} != committed"
        exact &= want.tobytes() == value.tobytes()
        if value.size:
            worst = max(worst, float(np.max(np.abs(want.astype(np.float64) - value.astype(np.float64)))))
    ok = worst <= 1e-4
    return ok, f"{len(feeds)} inputs, {len(values)} outputs, bit-identical: {exact}, max abs diff {worst:.3g}"


def main(argv: list[str] | None = None) -> int:
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default=os.path.join(repo_root, "..", "shared", "graphnet-samples"),
                        help="folder with <name>.onnx / .report.json (/.meta.json) GraphNet exports")
    parser.add_argument("--out", default=os.path.join(repo_root, "samples"), help="samples folder")
    parser.add_argument("--only", nargs="+", choices=MODELS, help="rebuild only these samples")
    parser.add_argument("--self-test", action="store_true", help="only check the generator")
    parser.add_argument("--verify", action="store_true",
                        help="check the committed samples (meta.json + files only) against onnxruntime")
    args = parser.parse_args(argv)

    vectors = self_test()
    print(f"make_samples: generator self-test ok (seed {SEED_BASE}: {[hex(v) for v in vectors['u64']]})")
    if args.self_test:
        return 0
    if args.verify:
        failed = 0
        for sample in args.only or MODELS:
            ok, summary = verify_sample(os.path.join(args.out, sample))
            failed += not ok
            print(f"make_samples: verify {sample}: {'ok' if ok else 'FAILED'}: {summary}")
        return 1 if failed else 0

    infos = []
    for sample in MODELS:
        if args.only and sample not in args.only:
            meta_path = os.path.join(args.out, sample, "meta.json")
            if not os.path.exists(meta_path):
                parser.error(f"{sample} has not been built yet; run without --only")
            continue
        info = build_sample(sample, os.path.abspath(args.src), args.out)
        infos.append(info)
        print(f"make_samples: {sample}: {info['nodes']} nodes, {len(info['meta']['inputs'])} inputs "
              f"({info['generated_elements']:,} generated elements), ORT {info['ort_ms_median']:.1f} ms")
    if args.only:
        print("make_samples: --only given, samples/README.md not rewritten (run without --only to refresh it)")
    else:
        write_readme(os.path.join(args.out, "README.md"), infos, vectors)
        print(f"make_samples: wrote {os.path.join(args.out, 'README.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
