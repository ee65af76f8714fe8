#!/usr/bin/env python3
"""Turn a plain .onnx model into a tessera sample directory.

Writes OUTDIR/model.onnx (a copy), seeded random inputs as inputs/<k>.pb (floats in
[-1, 1), integers in [1, 10): token ids, and attention masks with every position attended;
bools true), onnxruntime's outputs for them as outputs/<k>.pb (CPUExecutionProvider,
ORT_DISABLE_ALL, one thread: the same reference as the bundled samples) and meta.json.
scripts/gpu-prepare.sh converts corpus models this way so that the CUDA benchmark and
the PyTorch baselines read them like the bundled samples.

Symbolic input dimensions take their sizes from --shape (tessera's syntax), else 1.

Usage: model_to_sample.py MODEL.onnx OUTDIR [--seed 0] [--shape batch=1,seq=128]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", help="sizes of symbolic input dimensions, e.g. batch=1,seq=128")
    a = ap.parse_args(argv)
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from bench_vs_ort import feeds_of_model, parse_shapes, symbol_sizes
    from ort_reference import reference_description

    shapes = parse_shapes(a.shape)
    symbols = symbol_sizes(a.model)
    unknown = sorted(set(shapes) - set(symbols))
    if unknown:
        print(
            f"model_to_sample: warning: --shape names {', '.join(unknown)} are not symbolic "
            f"dimensions of {a.model} (its symbols: {', '.join(sorted(symbols)) or 'none'})",
            file=sys.stderr,
        )
    feeds = feeds_of_model(a.model, a.seed, shapes)
    os.makedirs(os.path.join(a.out, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "outputs"), exist_ok=True)
    shutil.copyfile(a.model, os.path.join(a.out, "model.onnx"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    meta = {
        "name": os.path.basename(os.path.normpath(a.out)),
        "source": os.path.basename(a.model),
        "dtype": "float32",
        "provenance": {"reference": reference_description(), "inputs": f"seeded random, seed {a.seed}"},
        "inputs": [],
        "outputs": [],
    }
    for i, (name, value) in enumerate(feeds.items()):
        f = f"inputs/{i}.pb"
        with open(os.path.join(a.out, f), "wb") as fh:
            fh.write(numpy_helper.from_array(value, name).SerializeToString())
        meta["inputs"].append({"name": name, "dtype": str(value.dtype), "shape": list(value.shape), "file": f})
    for i, (o, value) in enumerate(zip(sess.get_outputs(), outs)):
        value = np.asarray(value)
        f = f"outputs/{i}.pb"
        with open(os.path.join(a.out, f), "wb") as fh:
            fh.write(numpy_helper.from_array(value, o.name).SerializeToString())
        meta["outputs"].append({"name": o.name, "dtype": str(value.dtype), "shape": list(value.shape), "file": f})
    with open(os.path.join(a.out, "meta.json"), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
    onnx.checker.check_model(os.path.join(a.out, "model.onnx"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
