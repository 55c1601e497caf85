"""What does each graph change of `edgecnn.training.quantize` buy? One model, batch 1, one thread.

Variants, all quantised from the same FP32 file with the same 200 calibration images:
  FP32                     the exported graph
  INT8 as exported         quantize_static on tf2onnx's graph (its flatten computes its shape)
  + fixed reshape          the flatten's Reshape gets a constant (-1, K) target
  + 4-channel first conv   the first conv's 3 input channels padded to 4 (zero weights, float Pad)
  same, QOperator          QLinearConv nodes in the file instead of QDQ pairs
Each row says which ops onnxruntime really runs after its own optimisations (integer
convs, float convs), the median and p10 latency (the variants take turns in rounds, so
load changes hit all alike) and max |Δp| against FP32 on the calibration images.

    python benchmarks/bench_int8_shaping.py [catsdogs] [--rounds 12 --calls 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table

from edgecnn.datasets import KNOWN_CALIBRATION_DATA, known_data
from edgecnn.evaluate import draw, load_images
from edgecnn.models import bundled_path
from edgecnn.session import session_options
from edgecnn.spec import read_model_spec
from edgecnn.training.quantize import CALIBRATION_COUNT, Shaping, integer_op_counts, quantize_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="catsdogs")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    import onnxruntime as ort

    fp32 = onnx.load(str(bundled_path(args.model)))
    spec = read_model_spec(fp32, args.model)
    calibration = [
        b
        for b, _ in draw(
            load_images(known_data(spec.name, KNOWN_CALIBRATION_DATA), spec, "train"), CALIBRATION_COUNT
        ).batches(spec, 20)
    ]
    variants = {"FP32": fp32}
    for label, shaping, fmt in (
        ("INT8 as exported", Shaping(False, 0), "qdq"),
        ("+ fixed reshape", Shaping(True, 0), "qdq"),
        ("+ 4-channel first conv", Shaping(True, 4), "qdq"),
        ("same, QOperator", Shaping(True, 4), "qoperator"),
    ):
        variants[label] = quantize_graph(fp32, spec, calibration, shaping=shaping, quant_format=fmt)[0]
    sessions = {
        k: ort.InferenceSession(v.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"])
        for k, v in variants.items()
    }
    every = np.concatenate(calibration)
    x = every[:1].copy()
    reference = sessions["FP32"].run(None, {spec.input_name: every})[0]
    print(f"{args.model}: load at start {os.getloadavg()}")
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        for _ in range(20):
            s.run(None, {spec.input_name: x})
    for _ in range(args.rounds):
        for k, s in sessions.items():
            for _ in range(args.calls):
                start = time.perf_counter()
                s.run(None, {spec.input_name: x})
                times[k].append(time.perf_counter() - start)
    print(f"load at the end {os.getloadavg()}")
    base = float(np.median(times["FP32"]))
    rows = []
    for k, s in sessions.items():
        ops = integer_op_counts(variants[k])
        t = np.asarray(times[k])
        rows.append(
            [
                k,
                f"{np.median(t) * 1e3:.3f}",
                f"{np.percentile(t, 10) * 1e3:.3f}",
                f"{base / np.median(t):.2f}x",
                ops.get("QLinearConv", 0),
                sum(n for op, n in ops.items() if op in ("Conv", "FusedConv", "NchwcConv")),
                f"{np.abs(s.run(None, {spec.input_name: every})[0] - reference).max():.4f}",
            ]
        )
    print_table(
        ["variant", "median ms", "p10 ms", "speed-up", "integer convs", "float convs", "max |Δp| (calib)"], rows
    )


if __name__ == "__main__":
    main()
