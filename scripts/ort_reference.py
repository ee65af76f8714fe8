#!/usr/bin/env python3
"""Run an ONNX model with onnxruntime and write its outputs as TensorProto files.

This is tessera's numerical reference: CPUExecutionProvider, all graph
optimizations disabled (ORT_DISABLE_ALL), one intra-op and one inter-op thread,
sequential execution, so results are reproducible run to run on one machine.

Usage:
    ort_reference.py MODEL.onnx --input NAME=FILE.pb [--input ...] --output-dir D

Every graph input (graph inputs that are not initializers) must be given.
Each output is written to D/<name>.pb, where <name> is the output name with
every character outside [A-Za-z0-9._-] replaced by "_".

With --all-outputs every intermediate tensor whose type onnx shape inference
knows is exposed as an extra graph output and written too, which lets a test
compare intermediates when a model's final output hides differences.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

REFERENCE_DESCRIPTION = "CPUExecutionProvider, graph optimizations disabled (ORT_DISABLE_ALL)"


def file_safe(name: str) -> str:
    """Map a tensor name to a file name stem: [A-Za-z0-9._-] kept, rest -> '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def reference_description() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__} {REFERENCE_DESCRIPTION}"


def expose_intermediates(model_path: str) -> bytes:
    """The model, serialized, with every typed node output added as a graph output."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(model_path))
    graph = model.graph
    typed = {vi.name: vi for vi in graph.value_info if vi.type.HasField("tensor_type")}
    present = {o.name for o in graph.output}
    for node in graph.node:
        for name in node.output:
            if name and name not in present and name in typed:
                graph.output.append(typed[name])
                present.add(name)
    return model.SerializeToString()


def make_session(model):
    """An onnxruntime session with tessera's reference settings.

    `model` is a path or serialized model bytes.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def run_reference(model, feeds: dict, session=None) -> tuple[list[str], list, float]:
    """Run the model on feeds (name -> numpy array).

    Returns (output names, output arrays, seconds spent in session.run).
    """
    sess = session if session is not None else make_session(model)
    expected = [i.name for i in sess.get_inputs()]
    missing = [n for n in expected if n not in feeds]
    unknown = [n for n in feeds if n not in expected]
    if missing or unknown:
        raise ValueError(f"inputs missing: {missing}; not graph inputs: {unknown}")
    names = [o.name for o in sess.get_outputs()]
    start = time.perf_counter()
    values = sess.run(names, feeds)
    return names, values, time.perf_counter() - start


def load_tensor(path: str):
    """Read a TensorProto file into a numpy array."""
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(onnx.load_tensor(path))


def save_tensor(array, name: str, path: str) -> None:
    """Write a numpy array as a TensorProto (raw_data, little-endian) file."""
    from onnx import numpy_helper

    proto = numpy_helper.from_array(array, name)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def _parse_input(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.pb, got {spec!r}")
    return name, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument(
        "--input", action="append", type=_parse_input, default=[], metavar="NAME=FILE.pb",
        help="graph input NAME read from the TensorProto file FILE.pb (repeat per input)",
    )
    parser.add_argument("--output-dir", required=True, help="directory for <output>.pb files")
    parser.add_argument("--all-outputs", action="store_true",
                        help="also write every intermediate tensor (via shape inference)")
    args = parser.parse_args(argv)

    feeds = {}
    for name, path in args.input:
        if name in feeds:
            parser.error(f"input {name!r} given twice")
        feeds[name] = load_tensor(path)

    try:
        model = expose_intermediates(args.model) if args.all_outputs else args.model
        names, values, seconds = run_reference(model, feeds)
    except ValueError as err:
        print(f"ort_reference: {err}", file=sys.stderr)
        return 2

    os.makedirs(args.output_dir, exist_ok=True)
    stems = [file_safe(n) for n in names]
    if len(set(stems)) != len(stems):
        print(f"ort_reference: output names collide after sanitizing: {names}", file=sys.stderr)
        return 2
    for name, stem, value in zip(names, stems, values):
        path = os.path.join(args.output_dir, f"{stem}.pb")
        save_tensor(value, name, path)
        if not args.all_outputs:
            print(f"{name}: {value.dtype} {list(value.shape)} -> {path}")
    if args.all_outputs:
        print(f"ort_reference: wrote {len(names)} tensors to {args.output_dir}")
    print(f"ort_reference: {reference_description()}; run {seconds * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
