#!/usr/bin/env python3
"""Does a learned cost model beat the calibrated roofline on held-out kernels?

Usage: scripts/learned_cost.py CALIBRATION.json
  where the file is `tessera calibrate --held-out ... --json CALIBRATION.json`.

Trains gradient-boosted regression trees (numpy only: depth-3 trees on log time, 300
rounds, shrinkage 0.1) on the calibration sweep's kernel ways, with the features the
roofline sees (family, log flops, log bytes, log tiles, arithmetic intensity), and
compares its relative error on the held-out kernels with the roofline's predictions stored
in the same file: over every way, and over the ways the kernels run as compiled (the first
way of each kernel). tessera keeps the roofline unless this prints a lower error.
"""

import json
import sys

import numpy as np


def features(samples, families):
    rows = []
    for s in samples:
        f = [0.0] * len(families)
        if s["family"] in families:
            f[families.index(s["family"])] = 1.0
        lf, lb, lt = np.log1p(s["flops"]), np.log1p(s["bytes"]), np.log1p(s["tiles"])
        rows.append(f + [lf, lb, lt, lf - lb])
    return np.array(rows)


def fit_tree(x, r, depth):
    """A regression tree on residuals r: nested (feature, threshold, left, right) or a leaf."""
    if depth == 0 or len(r) < 4:
        return float(r.mean())
    best = None
    for j in range(x.shape[1]):
        col = x[:, j]
        for t in np.unique(np.quantile(col, np.linspace(0.05, 0.95, 15))):
            left = col <= t
            nl = left.sum()
            if nl < 2 or nl > len(r) - 2:
                continue
            sse = ((r[left] - r[left].mean()) ** 2).sum() + ((r[~left] - r[~left].mean()) ** 2).sum()
            if best is None or sse < best[0]:
                best = (sse, j, t, left)
    if best is None:
        return float(r.mean())
    _, j, t, left = best
    return (j, t, fit_tree(x[left], r[left], depth - 1), fit_tree(x[~left], r[~left], depth - 1))


def predict_tree(tree, row):
    while isinstance(tree, tuple):
        j, t, left, right = tree
        tree = left if row[j] <= t else right
    return tree


def gbt(x, y, rounds=300, depth=3, rate=0.1):
    base = float(y.mean())
    pred = np.full(len(y), base)
    trees = []
    for _ in range(rounds):
        tree = fit_tree(x, y - pred, depth)
        trees.append(tree)
        pred += rate * np.array([predict_tree(tree, r) for r in x])
    return lambda rows: base + rate * np.array([sum(predict_tree(t, r) for t in trees) for r in rows])


def rel(pred, seconds):
    return np.abs(np.asarray(pred) - np.asarray(seconds)) / np.asarray(seconds)


def compiled(samples):
    out, seen = [], set()
    for s in samples:
        key = (s["graph"], s["kernel"])
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def main(path):
    d = json.load(open(path))
    train, held = d["sweep"], [s for s in d["held_out"] if s["predicted"] is not None]
    families = sorted({s["family"] for s in train})
    model = gbt(features(train, families), np.log([s["seconds"] for s in train]))
    for name, subset in [("every way", held), ("as compiled", compiled(held))]:
        secs = [s["seconds"] for s in subset]
        learned = rel(np.exp(model(features(subset, families))), secs)
        roofline = rel([s["predicted"] for s in subset], secs)
        print(
            f"{name:12s} n={len(subset):5d}  roofline median {100 * np.median(roofline):5.1f}% "
            f"p90 {100 * np.quantile(roofline, 0.9):6.1f}%   gradient-boosted trees median "
            f"{100 * np.median(learned):5.1f}% p90 {100 * np.quantile(learned, 0.9):6.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
