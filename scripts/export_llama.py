#!/usr/bin/env python3
"""Export Llama-style decoders with random weights at several depths, for the compile-time
benchmark in BENCHMARKS.md ("Compile time").

No weights are downloaded: each model is built from a transformers `LlamaConfig` with a fixed
seed. Same exporter as the corpus (../shared/models/export_corpus.py):
torch.onnx.export(dynamo=True, opset 18, optimize=True), weights embedded, static shapes,
inputs int64 [1, SEQ] (input_ids, attention_mask all ones), one output (logits). Every file
is checked with onnx.checker and, when onnxruntime is installed, run against eager torch.

Usage:
    /tmp/tvenv/bin/python scripts/export_llama.py [OUTDIR] [--layers 4,8,16,32] [--seq 32]
writes OUTDIR/llama_l{N}.onnx (default OUTDIR /tmp/llama) and prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

OPSET = 18
HIDDEN = 128
INTERMEDIATE = 256
HEADS = 4
KV_HEADS = 2
VOCAB = 1024


class Logits(torch.nn.Module):
    """Wrap the HF model so the exported graph has one plain tensor output."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)["logits"]


def build(layers: int, seq: int) -> torch.nn.Module:
    import transformers as tf

    cfg = tf.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=layers,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=max(2 * seq, 128),
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return Logits(tf.LlamaForCausalLM(cfg)).eval()


def export_one(layers: int, seq: int, outdir: str) -> dict:
    import onnx

    model = build(layers, seq)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (1, seq), generator=g, dtype=torch.int64)
    mask = torch.ones(1, seq, dtype=torch.int64)
    args, in_names = (ids, mask), ["input_ids", "attention_mask"]
    path = os.path.join(outdir, f"llama_l{layers}.onnx")
    t0 = time.time()
    with torch.no_grad():
        ref = model(*args)
        torch.onnx.export(model, args, path, dynamo=True, opset_version=OPSET, input_names=in_names,
                          output_names=["output"], external_data=False, optimize=True)
    export_s = time.time() - t0
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    info = dict(name=f"llama_l{layers}", layers=layers, seq=seq, file_bytes=os.path.getsize(path),
                nodes=len(m.graph.node), functions=len(m.functions),
                params=sum(int(np.prod(t.dims)) for t in m.graph.initializer),
                output_shape=list(ref.shape), export_s=round(export_s, 1))
    try:
        import onnxruntime as ort
    except ImportError:
        return info
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: a.numpy() for n, a in zip(in_names, args)})[0]
    info["max_abs_diff_vs_torch"] = float(np.max(np.abs(got - ref.numpy())))
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", default="/tmp/llama")
    ap.add_argument("--layers", default="4,8,16,32", help="comma-separated layer counts")
    ap.add_argument("--seq", type=int, default=32, help="static sequence length")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    for n in (int(x) for x in a.layers.split(",") if x):
        print(json.dumps(export_one(n, a.seq, a.outdir)), flush=True)


if __name__ == "__main__":
    main()
