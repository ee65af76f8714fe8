#!/usr/bin/env python3
"""Write the small generated test models, each with onnxruntime's outputs.

Models written (all seeded, so a regenerated file is identical):

``cnn_dyn_batch``
    A CNN whose input is ``f32[batch,3,16,16]`` with ``batch`` a ``dim_param``, as
    dynamic-axis exports declare it: Conv + Relu, MaxPool, a strided Conv + Relu,
    GlobalAveragePool, then ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` (the
    shape subgraph exporters emit for ``x.view(x.size(0), -1)``) and Gemm to 10 classes;
    the output is ``f32[batch,10]``. Data sets 0 and 1 run it at batch 1 and 3.

Layout (that of the ONNX node tests)::

    OUT_DIR/<model>/model.onnx
    OUT_DIR/<model>/test_data_set_<N>/input_<K>.pb
    OUT_DIR/<model>/test_data_set_<N>/output_<K>.pb

Outputs come from onnxruntime (CPUExecutionProvider, graph optimizations disabled, one
thread: tessera's reference settings, see ort_reference.py). A stamp OUT_DIR/.complete
records this script's hash; a later run with the same script does nothing.

Usage: gen_test_models.py OUT_DIR [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys

STAMP_NAME = ".complete"


def cnn_dyn_batch():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(12)

    def w(name, *shape):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        a = rng.normal(0.0, (2.0 / fan_in) ** 0.5, shape).astype(np.float32)
        return numpy_helper.from_array(a, name)

    inits = [
        w("conv1.w", 8, 3, 3, 3),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "conv1.b"),
        w("conv2.w", 16, 8, 3, 3),
        numpy_helper.from_array(rng.normal(0, 0.1, 16).astype(np.float32), "conv2.b"),
        w("fc.w", 10, 16),
        numpy_helper.from_array(rng.normal(0, 0.1, 10).astype(np.float32), "fc.b"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus1"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.w", "conv1.b"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Shape", ["gap"], ["gap_shape"], name="shape"),
        helper.make_node("Gather", ["gap_shape", "zero"], ["n"], axis=0, name="batch_size"),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus1"], ["flat_shape"], axis=0, name="concat"),
        helper.make_node("Reshape", ["gap", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn_dyn_batch",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="gen_test_models.py")
    model.ir_version = 9
    feeds = [
        {"input": rng.uniform(-1.0, 1.0, (b, 3, 16, 16)).astype(np.float32)} for b in (1, 3)
    ]
    return model, feeds


MODELS = {"cnn_dyn_batch": cnn_dyn_batch}


def write(name, model, feeds, out_dir):
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    onnx.checker.check_model(model, full_check=True)
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for n, feed in enumerate(feeds):
        data = os.path.join(d, f"test_data_set_{n}")
        os.makedirs(data, exist_ok=True)
        outs = sess.run(None, feed)
        for k, (iname, value) in enumerate(feed.items()):
            with open(os.path.join(data, f"input_{k}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(value, iname).SerializeToString())
        for k, (o, value) in enumerate(zip(sess.get_outputs(), outs)):
            with open(os.path.join(data, f"output_{k}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(value, o.name).SerializeToString())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    with open(os.path.abspath(__file__), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(a.out_dir, STAMP_NAME)
    if not a.force and os.path.isfile(stamp):
        with open(stamp, encoding="utf-8") as f:
            if f.read().strip() == digest:
                print(f"gen_test_models: {a.out_dir} is up to date")
                return 0
    if os.path.isdir(a.out_dir):
        shutil.rmtree(a.out_dir)
    os.makedirs(a.out_dir)
    for name, make in MODELS.items():
        model, feeds = make()
        write(name, model, feeds, a.out_dir)
    with open(stamp, "w", encoding="utf-8") as f:
        f.write(digest + "\n")
    print(f"gen_test_models: wrote {', '.join(MODELS)} to {a.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
