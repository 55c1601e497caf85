"""What does each graph change of `edgecnn.training.quantize` buy? One model, batch 1, one thread.

Variants, all quantised from the same FP32 file with the same 200 calibration images:
  FP32                     the exported graph
  INT8 as exported         quantize_static on tf2onnx's graph (its flatten computes its shape)
  + fixed reshape          the flatten's Reshape gets a constant (-1, K) target
  + 4-channel input        the preprocess kernel writes a 4th, zero channel (the first conv's
                           weights zero-padded): onnxruntime's u8s8 conv wants multiples of 4
  + 3x3 windows            the first conv's window folded into the input (the kernel writes each
                           position's 3x3 neighbourhood, 28 values), the conv becomes 1x1
  + uint8 input            the input's QuantizeLinear done by the preprocess kernel (the shipped file)
  same, QOperator          QLinearConv nodes in the file instead of QDQ pairs
Each row says which ops onnxruntime really runs after its own optimisations (integer convs,
float convs), the median and p10 latency of the graph alone and of frame -> probabilities
(preprocessing included: the variants differ in what their input is), taking turns in rounds
so load changes hit all alike, and max |Δp| against FP32 on 64 test images.

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
from edgecnn.postprocess import class_probabilities
from edgecnn.preprocess import to_batch
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
    calibration = draw(load_images(known_data(spec.name, KNOWN_CALIBRATION_DATA), spec, "train"), CALIBRATION_COUNT)
    variants = {"FP32": (fp32, spec)}
    for label, shaping, fmt in (
        ("INT8 as exported", Shaping(False, "keep", False), "qdq"),
        ("+ fixed reshape", Shaping(True, "keep", False), "qdq"),
        ("+ 4-channel input", Shaping(True, "pad", False), "qdq"),
        ("+ 3x3 windows", Shaping(True, "window", False), "qdq"),
        ("+ uint8 input", Shaping(True, "window", True), "qdq"),
        ("same, QOperator", Shaping(True, "window", True), "qoperator"),
    ):
        quantized, quantized_spec, _ = quantize_graph(fp32, spec, calibration, shaping=shaping, quant_format=fmt)
        variants[label] = (quantized, quantized_spec)
    sessions = {
        k: ort.InferenceSession(m.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"])
        for k, (m, _) in variants.items()
    }
    test = [f for chunk, _ in draw(load_images(known_data(spec.name), spec, "test"), 64).decoded() for f in chunk]

    def prepare(k: str, frames: list[np.ndarray]) -> np.ndarray:
        return to_batch(frames, src_order="bgr", **variants[k][1].preprocess_args())

    def probabilities(k: str, x: np.ndarray) -> np.ndarray:
        return class_probabilities(sessions[k].run(None, {spec.input_name: x})[0], spec)

    reference = probabilities("FP32", prepare("FP32", test))
    inputs = {k: prepare(k, test[:1]) for k in sessions}
    print(f"{args.model}: load at start {os.getloadavg()}")
    model_times: dict[str, list[float]] = {k: [] for k in sessions}
    frame_times: dict[str, list[float]] = {k: [] for k in sessions}
    for k in sessions:
        for _ in range(20):
            probabilities(k, prepare(k, test[:1]))
    for _ in range(args.rounds):
        for k in sessions:
            for _ in range(args.calls):
                start = time.perf_counter()
                probabilities(k, inputs[k])
                model_times[k].append(time.perf_counter() - start)
            for i in range(args.calls):
                frame = test[i % len(test) : i % len(test) + 1]
                start = time.perf_counter()
                probabilities(k, prepare(k, frame))
                frame_times[k].append(time.perf_counter() - start)
    print(f"load at the end {os.getloadavg()}")
    base = {kind: float(np.median(t["FP32"])) for kind, t in (("model", model_times), ("frame", frame_times))}
    rows = []
    for k, (model, _) in variants.items():
        ops = integer_op_counts(model)
        t, f = np.asarray(model_times[k]), np.asarray(frame_times[k])
        rows.append(
            [
                k,
                f"{np.median(t) * 1e3:.3f}",
                f"{np.percentile(t, 10) * 1e3:.3f}",
                f"{base['model'] / np.median(t):.2f}x",
                f"{np.median(f) * 1e3:.3f}",
                f"{np.percentile(f, 10) * 1e3:.3f}",
                f"{base['frame'] / np.median(f):.2f}x",
                ops.get("QLinearConv", 0),
                sum(n for op, n in ops.items() if op in ("Conv", "FusedConv", "NchwcConv")),
                f"{np.abs(probabilities(k, prepare(k, test)) - reference).max():.4f}",
            ]
        )
    print_table(
        [
            "variant",
            "model ms",
            "p10 ms",
            "speed-up",
            "frame to probs ms",
            "p10 ms",
            "speed-up",
            "integer convs",
            "float convs",
            "max |Δp| (64 test)",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
