#!/usr/bin/env python3
"""Write the ONNX backend node conformance tests of the installed onnx package.

The onnx wheel no longer ships the serialized node tests (data/node/ was removed
from the package), but it still ships the Python test-case definitions
(``onnx.backend.test.case.node``).  This script runs them and serializes every
case in the layout the ONNX backend test runner has always used::

    OUT_DIR/<test_name>/model.onnx
    OUT_DIR/<test_name>/test_data_set_<N>/input_<K>.pb
    OUT_DIR/<test_name>/test_data_set_<N>/output_<K>.pb

Each ``.pb`` is a ``TensorProto``, or a ``SequenceProto`` / ``MapProto`` /
``OptionalProto`` when the graph input/output has that type.

When finished it writes ``OUT_DIR/.complete`` (JSON: onnx version, test count).
A later run whose stamp matches the installed onnx (and finds that many test
directories) does nothing, so test suites can call it unconditionally.  An interrupted run leaves no stamp and is redone.

Usage: gen_node_tests.py OUT_DIR [--force] [--quiet]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings

STAMP_NAME = ".complete"


def _read_stamp(out_dir: str) -> dict | None:
    try:
        with open(os.path.join(out_dir, STAMP_NAME), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _count_test_dirs(out_dir: str) -> int:
    with os.scandir(out_dir) as entries:
        return sum(1 for e in entries if e.is_dir() and not e.name.startswith("."))


def _to_proto(value, value_info):
    """Turn one test value into the protobuf message its graph slot expects."""
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return value
    kind = value_info.type.WhichOneof("value")
    if kind == "sequence_type":
        return numpy_helper.from_list(value, value_info.name)
    if kind == "map_type":
        return numpy_helper.from_dict(value, value_info.name)
    if kind == "optional_type":
        return numpy_helper.from_optional(value, value_info.name)
    return numpy_helper.from_array(value, value_info.name)


def _write_case(case, out_dir: str) -> None:
    case_dir = os.path.join(out_dir, case.name)
    os.makedirs(case_dir, exist_ok=True)
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    graph = case.model.graph
    for n, (inputs, outputs) in enumerate(case.data_sets or ()):
        data_dir = os.path.join(case_dir, f"test_data_set_{n}")
        os.makedirs(data_dir, exist_ok=True)
        for prefix, values, infos in (
            ("input", inputs, graph.input),
            ("output", outputs, graph.output),
        ):
            if len(values) > len(infos):
                raise ValueError(
                    f"{case.name}: {len(values)} {prefix} values but only "
                    f"{len(infos)} graph {prefix}s"
                )
            for k, value in enumerate(values):
                proto = _to_proto(value, infos[k])
                with open(os.path.join(data_dir, f"{prefix}_{k}.pb"), "wb") as f:
                    f.write(proto.SerializeToString())


def generate(out_dir: str, force: bool = False, quiet: bool = False) -> dict:
    """Generate the node tests into out_dir unless an up-to-date stamp exists.

    Returns the stamp dictionary (plus "skipped": bool and "seconds").
    """
    import numpy as np
    import onnx

    def say(msg: str) -> None:
        if not quiet:
            print(f"gen_node_tests: {msg}", flush=True)

    stamp = _read_stamp(out_dir)
    if (not force and stamp is not None and stamp.get("onnx_version") == onnx.__version__
            and _count_test_dirs(out_dir) == stamp.get("test_count")):
        say(f"{out_dir} is up to date ({stamp['test_count']} tests, onnx {onnx.__version__})")
        return {**stamp, "skipped": True, "seconds": 0.0}

    start = time.monotonic()
    # Start from an empty directory so tests that no longer exist disappear.
    if os.path.isdir(out_dir):
        say(f"removing stale {out_dir}")
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    from onnx.backend.test.case import node as node_cases

    say(f"collecting node test cases of onnx {onnx.__version__} ...")
    # Some test-case definitions draw random numbers without their own seed.
    # They also divide by zero on purpose (inf/nan cases); keep that quiet.
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            cases = node_cases.collect_testcases()
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise RuntimeError("duplicate test names in onnx's node test cases")
    say(f"collected {len(cases)} cases in {time.monotonic() - start:.1f} s; writing ...")

    for case in cases:
        _write_case(case, out_dir)

    seconds = time.monotonic() - start
    stamp = {
        "onnx_version": onnx.__version__,
        "test_count": len(cases),
        "expanded_count": sum("_expanded" in n for n in names),
        "generator": "scripts/gen_node_tests.py",
    }
    tmp = os.path.join(out_dir, STAMP_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(stamp, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, os.path.join(out_dir, STAMP_NAME))
    say(f"wrote {len(cases)} tests to {out_dir} in {seconds:.1f} s")
    return {**stamp, "skipped": False, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="directory to fill (created if missing)")
    parser.add_argument("--force", action="store_true", help="regenerate even if the stamp matches")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    generate(args.out_dir, force=args.force, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
