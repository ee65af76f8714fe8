#!/usr/bin/env python3
"""Convert GraphNet torch samples into tessera's sample format (samples/README.md).

A GraphNet torch sample is a folder with ``model.py`` (``class GraphModule(torch.nn.Module)``
whose ``forward`` takes every parameter, buffer, input and SymInt as an argument) and
``weight_meta.py`` / ``input_meta.py`` (one class per argument: ``name, shape, dtype,
mean, std, data``, optional ``min_val, max_val``). For each sample this script

1. executes ``model.py`` with CUDA device literals rewritten to CPU;
2. builds every argument with GraphNet's recipe (seed 123): ``randn(shape)*std*0.2+mean``
   for floats, ``rand > 0.5`` for bool, ``randint(min, max+1)`` for integers with bounds,
   literal ``data`` when present, clamped to ``[min_val, max_val]``; SymInts become constants;
3. exports ONNX opset 18 with the dynamo exporter (TorchScript exporter as fallback),
   parameters and buffers as initializers (default) or as graph inputs (``--weights inputs``);
4. runs the module eagerly in PyTorch: its outputs are the sample's reference outputs
   ("the eager framework"), so tessera is compared with what GraphNet compares against;
5. writes ``OUT/<sample name>/{model.onnx, meta.json, inputs/<k>.pb, outputs/<k>.pb}``.

Needs torch, onnx, onnxscript (dynamo exporter) and numpy; never needed by CI. Usage::

    graphnet_to_samples.py GRAPHNET_SAMPLE_DIR... --out samples_graphnet [--weights inputs]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import json
import os
import re
import sys
import time
import types

NUMPY_DTYPE = {
    "torch.float32": "float32", "torch.float64": "float64", "torch.float16": "float16",
    "torch.bfloat16": "bfloat16", "torch.int64": "int64", "torch.int32": "int32",
    "torch.int8": "int8", "torch.uint8": "uint8", "torch.bool": "bool",
}


def load_meta(path: str) -> dict[str, dict]:
    """The `Program_weight_tensor_meta_*` classes of a meta file, by argument name."""
    if not os.path.exists(path):
        return {}
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                try:
                    fields[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                except ValueError:
                    fields[stmt.targets[0].id] = None
        if "name" in fields:
            out[fields["name"]] = fields
    return out


def load_module(sample_dir: str):
    """`GraphModule` from model.py, with CUDA device literals moved to the CPU."""
    src = open(os.path.join(sample_dir, "model.py"), encoding="utf-8").read()
    src = re.sub(r"device\(type=['\"]cuda['\"](, index=\d+)?\)", "device(type='cpu')", src)
    src = src.replace("'cuda:0'", "'cpu'").replace('"cuda:0"', '"cpu"')
    mod = types.ModuleType("graphnet_model")
    exec(compile(src, os.path.join(sample_dir, "model.py"), "exec"), mod.__dict__)
    return mod.GraphModule()


def replay(meta: dict, generator):
    """One argument by GraphNet's recipe (graph_net_bench/torch/utils.py::replay_tensor)."""
    import torch

    dtype = getattr(torch, meta["dtype"].split(".")[-1])
    shape = list(meta.get("shape") or [])
    if meta.get("data") is not None:
        t = torch.tensor(meta["data"], dtype=dtype).reshape(shape)
    elif dtype == torch.bool:
        t = torch.rand(shape, generator=generator) > 0.5
    elif not dtype.is_floating_point:
        lo = int(meta.get("min_val") or 0)
        hi = int(meta.get("max_val") if meta.get("max_val") is not None else lo + 1)
        t = torch.randint(lo, hi + 1, shape, generator=generator, dtype=dtype)
    else:
        t = torch.randn(shape, generator=generator, dtype=torch.float32) * float(meta.get("std") or 0.0) * 0.2
        t = (t + float(meta.get("mean") or 0.0)).to(dtype)
    if dtype.is_floating_point:
        lo, hi = meta.get("min_val"), meta.get("max_val")
        if lo is not None or hi is not None:
            t = t.clamp(min=lo, max=hi)
        t = torch.nan_to_num(t).clamp(-100, 100)
    return t


def is_weight(name: str) -> bool:
    return "_parameters_" in name or "_buffers_" in name


def save_tensor(path: str, array, name: str) -> None:
    from onnx import numpy_helper

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(array, name).SerializeToString())


def convert(sample_dir: str, out_root: str, weights: str) -> dict:
    import torch

    torch.manual_seed(123)
    gen = torch.Generator().manual_seed(123)
    metas = {**load_meta(os.path.join(sample_dir, "weight_meta.py")), **load_meta(os.path.join(sample_dir, "input_meta.py"))}
    module = load_module(sample_dir).eval()
    params = [p for p in inspect.signature(module.forward).parameters if p != "self"]
    missing = [p for p in params if p not in metas]
    if missing:
        raise ValueError(f"no meta for forward arguments {missing}")
    values = {p: replay(metas[p], gen) for p in params}
    # SymInts (GraphNet names them s0, s77, ...) are plain ints: constants of the export.
    symints = {p: int(values[p].reshape(-1)[0]) for p in params if re.fullmatch(r"s\d+", p)}
    as_inputs = [p for p in params if p not in symints and (weights == "inputs" or not is_weight(p))]
    as_consts = [p for p in params if p not in symints and p not in as_inputs]

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module
            for i, p in enumerate(as_consts):
                self.register_buffer(f"c{i}", values[p])

        def forward(self, *args):
            kw = dict(zip(as_inputs, args))
            kw.update({p: getattr(self, f"c{i}") for i, p in enumerate(as_consts)})
            kw.update(symints)
            out = self.inner(**kw)
            return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    wrapped = Wrapped().eval()
    args = tuple(values[p] for p in as_inputs)
    with torch.no_grad():
        eager = wrapped(*args)
    name = os.path.basename(os.path.normpath(sample_dir))
    out_dir = os.path.join(out_root, name)
    os.makedirs(out_dir, exist_ok=True)
    onnx_path = os.path.join(out_dir, "model.onnx")
    t0 = time.perf_counter()
    exporter = "dynamo"
    try:
        torch.onnx.export(wrapped, args, onnx_path, input_names=as_inputs, opset_version=18, dynamo=True)
    except Exception:
        exporter = "torchscript"
        torch.onnx.export(wrapped, args, onnx_path, input_names=as_inputs, opset_version=18, dynamo=False)
    export_s = time.perf_counter() - t0

    import onnx

    model = onnx.load(onnx_path)
    graph_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    graph_outputs = [o.name for o in model.graph.output]
    if len(graph_inputs) != len(args) or len(graph_outputs) != len(eager):
        raise ValueError(f"export changed the signature: {len(graph_inputs)} inputs, {len(graph_outputs)} outputs")
    meta = {
        "name": name,
        "source": f"PaddlePaddle/GraphNet (MIT): {os.path.normpath(sample_dir)}",
        "dtype": str(eager[0].dtype).replace("torch.", "") if eager else "float32",
        "provenance": {
            "exporter": f"torch.onnx.export ({exporter})",
            "torch": torch.__version__,
            "opset": 18,
            "weights": f"random (GraphNet recipe, seed 123); {'graph inputs' if weights == 'inputs' else 'initializers'}",
            "reference": f"PyTorch {torch.__version__} eager on the CPU",
            "export_s": round(export_s, 2),
        },
        "inputs": [],
        "outputs": [],
    }
    for k, (gname, value) in enumerate(zip(graph_inputs, args)):
        rel = f"inputs/{k}.pb"
        save_tensor(os.path.join(out_dir, rel), value.detach().numpy(), gname)
        meta["inputs"].append({"name": gname, "dtype": NUMPY_DTYPE[str(value.dtype)], "shape": list(value.shape), "file": rel})
    for k, (gname, value) in enumerate(zip(graph_outputs, eager)):
        rel = f"outputs/{k}.pb"
        save_tensor(os.path.join(out_dir, rel), value.detach().numpy(), gname)
        meta["outputs"].append({"name": gname, "dtype": NUMPY_DTYPE[str(value.dtype)], "shape": list(value.shape), "file": rel})
    with open(os.path.join(out_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", nargs="+", help="GraphNet sample folders (with model.py)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--weights", choices=["initializers", "inputs"], default="initializers")
    args = ap.parse_args(argv)
    failed = 0
    for d in args.samples:
        try:
            m = convert(d, args.out, args.weights)
            print(f"{m['name']}: {len(m['inputs'])} inputs, {len(m['outputs'])} outputs, {m['provenance']['exporter']}", file=sys.stderr)
        except Exception as e:  # one bad sample does not stop the batch
            failed += 1
            print(f"{d}: FAILED {type(e).__name__}: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
