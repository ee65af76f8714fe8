#!/usr/bin/env python3
"""PyTorch eager and torch.compile (TorchInductor) measurements of tessera samples.

Each sample's ONNX graph is executed op by op with PyTorch (eager), and the same
executor under ``torch.compile`` (TorchDynamo traces the straight-line node loop, so
TorchInductor compiles the whole graph). Both follow GraphNet's protocol: one untimed
call whose outputs are kept, ``--warmup`` untimed calls, ``--trials`` timed calls with a
device synchronisation around each, repeated while IQR/median > 0.2 (up to
``--max-remeasure`` times). Results go to baseline files that ``graphnet-bench run``
reads:

    OUT/torch-eager.json      {"label": "torch-eager", "samples": {name: {...}}}
    OUT/torch-compile.json    {"label": "torch-compile", ...}
    OUT/outputs/<mode>/<sample>/<k>.pb   outputs of the untimed call (TensorProto)

A sample entry is ``{"trials_ms": [...], "compile_s": s, "outputs": [paths]}`` or
``{"error": "..."}``. Then, for example::

    graphnet-bench run --samples samples --backend cpu --baseline OUT/torch-eager.json \\
        --label tessera-cpu-vs-torch-eager
    graphnet-bench run --samples samples --backend OUT/torch-compile.json \\
        --baseline OUT/torch-eager.json
    graphnet-bench score results/* --svg curves.svg

Needs torch, onnx and numpy (never needed by CI). Usage::

    torch_baseline.py --samples samples --out results/torch [--device cpu|cuda]
        [--threads N] [--warmup 3] [--trials 5] [--modes eager,compile] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "scripts"))


def onnx_dtype_to_torch(code: int):
    import torch

    table = {
        1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32,
        7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16,
    }
    if code not in table:
        raise NotImplementedError(f"ONNX element type {code}")
    return table[code]


def attrs_of(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


def _pads(pads, spatial: int):
    """ONNX [b1, b2, ..., e1, e2, ...] -> torch F.pad order (last dim first)."""
    out = []
    for i in reversed(range(spatial)):
        out += [pads[i], pads[spatial + i]]
    return out


class OnnxExecutor:
    """Runs an ONNX graph node by node with torch ops. Constants become tensors on the
    device once; `__call__` takes the graph inputs (in order) and returns the outputs."""

    def __init__(self, model, device):
        import torch
        from onnx import numpy_helper

        g = model.graph
        self.device = device
        self.consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()).to(device) for t in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in self.consts]
        self.outputs = [o.name for o in g.output]
        self.nodes = [(n.op_type, list(n.input), list(n.output), attrs_of(n)) for n in g.node]
        for op, _, _, _ in self.nodes:
            if not hasattr(self, "op_" + op):
                raise NotImplementedError(f"no torch translation for ONNX {op}")
        self.node = 0

        # Shape operands (Reshape targets, Slice bounds, ...) as Python ints, per (node,
        # input), filled by the first call. Later calls, including those traced by
        # torch.compile, read them from here, so the traced code has no data-dependent
        # `.tolist()` (shapes are static) and compiles as one graph.
        self.frozen = {}

    def ints(self, key, t):
        """Input `key = (node, slot)`'s value `t` as a list of Python ints (frozen)."""
        if key not in self.frozen:
            self.frozen[key] = [int(x) for x in t.reshape(-1).tolist()]
        return self.frozen[key]

    def __call__(self, *args):
        env = dict(self.consts)
        env.update(zip(self.inputs, args))
        for k, (op, ins, outs, at) in enumerate(self.nodes):
            vals = [env[i] if i else None for i in ins]
            self.node = k
            res = getattr(self, "op_" + op)(vals, at, len(outs))
            if not isinstance(res, (list, tuple)):
                res = [res]
            for name, v in zip(outs, res):
                if name:
                    env[name] = v
        return tuple(env[o] for o in self.outputs)

    # Elementwise.
    def op_Add(self, v, a, n): return v[0] + v[1]
    def op_Sub(self, v, a, n): return v[0] - v[1]
    def op_Mul(self, v, a, n): return v[0] * v[1]

    def op_Div(self, v, a, n):
        import torch
        if v[0].dtype.is_floating_point:
            return v[0] / v[1]
        return torch.div(v[0], v[1], rounding_mode="trunc")

    def op_Pow(self, v, a, n):
        import torch
        return torch.pow(v[0], v[1]).to(v[0].dtype)

    def op_Neg(self, v, a, n): return -v[0]
    def op_Abs(self, v, a, n): return v[0].abs()
    def op_Exp(self, v, a, n): return v[0].exp()
    def op_Log(self, v, a, n): return v[0].log()
    def op_Sqrt(self, v, a, n): return v[0].sqrt()
    def op_Reciprocal(self, v, a, n): return v[0].reciprocal()
    def op_Erf(self, v, a, n): return v[0].erf()
    def op_Tanh(self, v, a, n): return v[0].tanh()
    def op_Sigmoid(self, v, a, n): return v[0].sigmoid()
    def op_Relu(self, v, a, n): return v[0].relu()
    def op_Sin(self, v, a, n): return v[0].sin()
    def op_Cos(self, v, a, n): return v[0].cos()
    def op_Not(self, v, a, n): return ~v[0]
    def op_IsNaN(self, v, a, n): return v[0].isnan()
    def op_Equal(self, v, a, n): return v[0] == v[1]
    def op_Less(self, v, a, n): return v[0] < v[1]
    def op_Greater(self, v, a, n): return v[0] > v[1]
    def op_And(self, v, a, n): return v[0] & v[1]
    def op_Or(self, v, a, n): return v[0] | v[1]
    def op_Identity(self, v, a, n): return v[0]

    def op_Dropout(self, v, a, n):
        import torch
        return [v[0], torch.ones_like(v[0], dtype=torch.bool)][:n]

    def op_Where(self, v, a, n):
        import torch
        return torch.where(v[0], v[1], v[2])

    def op_Max(self, v, a, n):
        import torch
        out = v[0]
        for x in v[1:]:
            out = torch.maximum(out, x)
        return out

    def op_Min(self, v, a, n):
        import torch
        out = v[0]
        for x in v[1:]:
            out = torch.minimum(out, x)
        return out

    def op_Sum(self, v, a, n):
        out = v[0]
        for x in v[1:]:
            out = out + x
        return out

    def op_Clip(self, v, a, n):
        lo = v[1] if len(v) > 1 and v[1] is not None else a.get("min")
        hi = v[2] if len(v) > 2 and v[2] is not None else a.get("max")
        return v[0].clamp(min=lo, max=hi)

    def op_Gelu(self, v, a, n):
        import torch.nn.functional as F
        return F.gelu(v[0], approximate=a.get("approximate", "none"))

    def op_Cast(self, v, a, n): return v[0].to(onnx_dtype_to_torch(a["to"]))

    # Contractions and windows.
    def op_MatMul(self, v, a, n): return v[0] @ v[1]

    def op_Gemm(self, v, a, n):
        x = v[0].T if a.get("transA", 0) else v[0]
        w = v[1].T if a.get("transB", 0) else v[1]
        y = a.get("alpha", 1.0) * (x @ w)
        if len(v) > 2 and v[2] is not None:
            y = y + a.get("beta", 1.0) * v[2]
        return y

    def op_Conv(self, v, a, n):
        import torch.nn.functional as F
        x, w = v[0], v[1]
        b = v[2] if len(v) > 2 else None
        sp = x.dim() - 2
        pads = a.get("pads", [0] * 2 * sp)
        if a.get("auto_pad", "NOTSET") != "NOTSET":
            raise NotImplementedError("Conv auto_pad")
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[sp]
        sym = all(pads[i] == pads[sp + i] for i in range(sp))
        if not sym:
            x = F.pad(x, _pads(pads, sp))
        return conv(x, w, b, stride=a.get("strides", [1] * sp), padding=pads[:sp] if sym else 0,
                    dilation=a.get("dilations", [1] * sp), groups=a.get("group", 1))

    def op_MaxPool(self, v, a, n):
        import torch.nn.functional as F
        sp = v[0].dim() - 2
        k = a["kernel_shape"]
        pads = a.get("pads", [0] * 2 * sp)
        pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[sp]
        return pool(v[0], k, stride=a.get("strides", [1] * sp), padding=pads[:sp],
                    dilation=a.get("dilations", [1] * sp), ceil_mode=bool(a.get("ceil_mode", 0)))

    def op_AveragePool(self, v, a, n):
        import torch.nn.functional as F
        sp = v[0].dim() - 2
        pads = a.get("pads", [0] * 2 * sp)
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[sp]
        return pool(v[0], a["kernel_shape"], stride=a.get("strides", [1] * sp), padding=pads[:sp],
                    ceil_mode=bool(a.get("ceil_mode", 0)), count_include_pad=bool(a.get("count_include_pad", 0)))

    def op_GlobalAveragePool(self, v, a, n):
        return v[0].mean(dim=tuple(range(2, v[0].dim())), keepdim=True)

    def op_BatchNormalization(self, v, a, n):
        import torch.nn.functional as F
        return F.batch_norm(v[0], v[3], v[4], v[1], v[2], training=False, eps=a.get("epsilon", 1e-5))

    def op_LayerNormalization(self, v, a, n):
        import torch.nn.functional as F
        x = v[0]
        ax = _axis(a.get("axis", -1), x.dim())
        b = v[2] if len(v) > 2 else None
        return F.layer_norm(x, x.shape[ax:], v[1], b, eps=a.get("epsilon", 1e-5))

    def op_Softmax(self, v, a, n): return v[0].softmax(dim=a.get("axis", -1))
    def op_LogSoftmax(self, v, a, n): return v[0].log_softmax(dim=a.get("axis", -1))

    def _reduce(self, v, a, fn):
        x = v[0]
        axes = a.get("axes")
        if axes is None and len(v) > 1 and v[1] is not None:
            axes = self.ints((self.node, 1), v[1])
        keep = bool(a.get("keepdims", 1))
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.dim()))
        return fn(x, tuple(_axis(i, x.dim()) for i in axes), keep)

    def op_ReduceMean(self, v, a, n): return self._reduce(v, a, lambda x, d, k: x.mean(dim=d, keepdim=k))
    def op_ReduceSum(self, v, a, n): return self._reduce(v, a, lambda x, d, k: x.sum(dim=d, keepdim=k))
    def op_ReduceMax(self, v, a, n): return self._reduce(v, a, lambda x, d, k: x.amax(dim=d, keepdim=k))

    # Shapes and data movement. Shape operands are small constants: read them as lists.
    def op_Reshape(self, v, a, n):
        shape = self.ints((self.node, 1), v[1])
        if not a.get("allowzero", 0):
            shape = [v[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return v[0].reshape(shape)

    def op_Flatten(self, v, a, n):
        ax = _axis(a.get("axis", 1), v[0].dim())
        return v[0].reshape(math.prod(v[0].shape[:ax]), -1)

    def op_Transpose(self, v, a, n):
        perm = a.get("perm", list(reversed(range(v[0].dim()))))
        return v[0].permute(*perm)

    def op_Squeeze(self, v, a, n):
        axes = a.get("axes") if "axes" in a else (self.ints((self.node, 1), v[1]) if len(v) > 1 and v[1] is not None else None)
        if axes is None:
            return v[0].squeeze()
        x = v[0]
        for ax in sorted((_axis(i, x.dim()) for i in axes), reverse=True):
            x = x.squeeze(ax)
        return x

    def op_Unsqueeze(self, v, a, n):
        axes = a.get("axes") if "axes" in a else self.ints((self.node, 1), v[1])
        rank = v[0].dim() + len(axes)
        x = v[0]
        for ax in sorted(_axis(i, rank) for i in axes):
            x = x.unsqueeze(ax)
        return x

    def op_Concat(self, v, a, n):
        import torch
        return torch.cat([x for x in v if x is not None], dim=a["axis"])

    def op_Split(self, v, a, n):
        import torch
        ax = a.get("axis", 0)
        sizes = a.get("split") or (self.ints((self.node, 1), v[1]) if len(v) > 1 and v[1] is not None else None)
        if sizes is None:
            return v[0].split(math.ceil(v[0].shape[ax] / n), dim=ax)
        return v[0].split(list(sizes), dim=ax)

    def op_Slice(self, v, a, n):
        x = v[0]
        starts, ends = self.ints((self.node, 1), v[1]), self.ints((self.node, 2), v[2])
        axes = self.ints((self.node, 3), v[3]) if len(v) > 3 and v[3] is not None else list(range(len(starts)))
        steps = self.ints((self.node, 4), v[4]) if len(v) > 4 and v[4] is not None else [1] * len(starts)
        idx = [slice(None)] * x.dim()
        flips = []
        for s, e, ax, st in zip(starts, ends, axes, steps):
            ax = _axis(ax, x.dim())
            dim = x.shape[ax]
            if st > 0:
                idx[ax] = slice(max(min(s if s >= 0 else s + dim, dim), 0), max(min(e if e >= 0 else e + dim, dim), 0), st)
            else:
                raise NotImplementedError("negative Slice steps")
        out = x[tuple(idx)]
        return out

    def op_Gather(self, v, a, n):
        import torch
        ax = _axis(a.get("axis", 0), v[0].dim())
        idx = v[1].long()
        idx = torch.where(idx < 0, idx + v[0].shape[ax], idx)
        out = v[0].index_select(ax, idx.reshape(-1))
        shape = list(v[0].shape[:ax]) + list(v[1].shape) + list(v[0].shape[ax + 1:])
        return out.reshape(shape)

    def op_GatherElements(self, v, a, n):
        import torch
        ax = _axis(a.get("axis", 0), v[0].dim())
        idx = v[1].long()
        idx = torch.where(idx < 0, idx + v[0].shape[ax], idx)
        return v[0].gather(ax, idx)

    def op_Expand(self, v, a, n):
        import torch
        shape = self.ints((self.node, 1), v[1])
        return v[0].expand(torch.broadcast_shapes(v[0].shape, tuple(shape)))

    def op_Tile(self, v, a, n): return v[0].repeat(*self.ints((self.node, 1), v[1]))

    def op_Shape(self, v, a, n):
        import torch
        s = list(v[0].shape)[a.get("start", 0):a.get("end", None)]
        return torch.tensor(s, dtype=torch.int64, device=self.device)

    def op_Constant(self, v, a, n):
        import torch
        from onnx import numpy_helper
        if "value" in a:
            return torch.from_numpy(numpy_helper.to_array(a["value"]).copy()).to(self.device)
        for key, dt in (("value_float", torch.float32), ("value_int", torch.int64),
                        ("value_floats", torch.float32), ("value_ints", torch.int64)):
            if key in a:
                return torch.tensor(a[key], dtype=dt, device=self.device)
        raise NotImplementedError("Constant without a value")

    def op_ConstantOfShape(self, v, a, n):
        import torch
        from onnx import numpy_helper
        value = numpy_helper.to_array(a["value"]) if "value" in a else None
        fill = value.reshape(-1)[0].item() if value is not None else 0.0
        dt = torch.from_numpy(value.reshape(-1)[:1].copy()).dtype if value is not None else torch.float32
        return torch.full(self.ints((self.node, 0), v[0]), fill, dtype=dt, device=self.device)


def load_sample(sample_dir: str):
    """Inputs (numpy, graph order) and the meta of a tessera sample."""
    from make_samples import generate
    from ort_reference import load_tensor

    with open(os.path.join(sample_dir, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    values = []
    for entry in meta["inputs"]:
        if "file" in entry:
            values.append(load_tensor(os.path.join(sample_dir, entry["file"])))
        else:
            values.append(generate(entry["random"], entry["dtype"], entry["shape"]))
    return meta, values


def timed(fn, args, sync, warmup: int, trials: int, max_remeasure: int):
    """GraphNet's protocol: untimed call (outputs kept), warmups, trials (re-measured while
    IQR/median > 0.2). Returns (outputs, trials_ms)."""
    outputs = fn(*args)
    sync()
    for _ in range(warmup):
        fn(*args)
    sync()
    times = []
    for _ in range(max_remeasure + 1):
        times = []
        for _ in range(max(trials, 1)):
            sync()
            t0 = time.perf_counter()
            fn(*args)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
        med = statistics.median(times)
        if med <= 0 or (q[2] - q[0]) / med <= 0.2:
            break
    return outputs, times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--max-remeasure", type=int, default=3)
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args(argv)

    import onnx
    import torch
    from onnx import numpy_helper

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    modes = [m for m in args.modes.split(",") if m]
    names = sorted(
        os.path.relpath(root, args.samples)
        for root, _, files in os.walk(args.samples)
        if "meta.json" in files
    )
    if args.only:
        names = [n for n in names if n in args.only]
    files = {m: {"label": f"torch-{m}", "device": args.device, "torch": torch.__version__, "samples": {}} for m in modes}
    for name in names:
        sample_dir = os.path.join(args.samples, name)
        meta, values = load_sample(sample_dir)
        model = onnx.load(os.path.join(sample_dir, "model.onnx"))
        for mode in modes:
            entry = {}
            try:
                executor = OnnxExecutor(model, device)
                inputs = [torch.from_numpy(v.copy()).to(device) for v in values]
                with torch.no_grad():
                    executor(*inputs)  # freezes the shape operands
                t0 = time.perf_counter()
                fn = executor if mode == "eager" else torch.compile(executor, dynamic=False, fullgraph=True)
                with torch.no_grad():
                    if mode != "eager":
                        fn(*inputs)  # compile now, so compile time is measured apart
                        sync()
                    entry["compile_s"] = time.perf_counter() - t0
                    outputs, trials = timed(fn, inputs, sync, args.warmup, args.trials, args.max_remeasure)
                entry["trials_ms"] = trials
                entry["outputs"] = []
                for k, out in enumerate(outputs):
                    rel = os.path.join("outputs", mode, name, f"{k}.pb")
                    path = os.path.join(args.out, rel)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    array = out.detach().cpu().numpy()
                    with open(path, "wb") as f:
                        f.write(numpy_helper.from_array(array, meta["outputs"][k]["name"]).SerializeToString())
                    entry["outputs"].append(rel)
            except Exception as e:  # recorded per sample; the run goes on
                entry = {"error": f"{type(e).__name__}: {e}"[:2000]}
            files[mode]["samples"][name] = entry
            status = "ok" if "error" not in entry else entry["error"][:100]
            med = statistics.median(entry["trials_ms"]) if "trials_ms" in entry else float("nan")
            print(f"{name:24} torch-{mode:8} median {med:9.3f} ms  {status}", file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    for mode, content in files.items():
        path = os.path.join(args.out, f"torch-{mode}.json")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(content, f, indent=1)
        os.replace(tmp, path)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
