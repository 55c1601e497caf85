"""edgecnn INT8 vs the dedicated edge runtimes' INT8, same model, same images, same run.

Contenders, each at batch 1 on one thread, fed the same preprocessed float32 NHWC images:
  edgecnn FP32 / INT8   Classifier(bundled NAME / NAME-int8).predict  (onnxruntime)
  OpenVINO FP32 / INT8  the FP32 .onnx read by OpenVINO; INT8 by nncf.quantize on the
                        same 200 calibration images edgecnn used (its default preset)
  LiteRT FP32 / INT8    a Keras model rebuilt from the FP32 .onnx weights (checked against
                        it), converted by TFLiteConverter; INT8 = full-integer with the same
                        200 images as representative data, float in/out; XNNPACK
Timing: the contenders take turns in rounds of `--calls` calls (so load changes hit all
of them alike); median and p95 over all rounds; setup and compilation are outside.
Accuracy: every test image (catsdogs 2,000; fmnist 10,000), top-1 agreement with
edgecnn FP32. Peers come from the [bench] extra: pip install -e ".[bench,train]".
The load average is printed before and after: timings from a loaded machine are noise.

    python benchmarks/bench_peers.py [catsdogs fmnist] [--rounds 15 --calls 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

Predict = Callable[[np.ndarray], np.ndarray]


def keras_from_onnx(name: str, fp32: Path):
    """The registered Keras architecture with the ONNX file's weights, without augmentation/Rescaling."""
    import keras
    import onnx
    from onnx import numpy_helper

    from edgecnn.training import registry
    from edgecnn.training.export import inference_model

    model, _ = inference_model(registry.get(name).build(), strip_rescaling=True)
    graph = onnx.load(str(fp32)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    adds = {n.input[0]: n for n in graph.node if n.op_type == "Add"}
    k_convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    k_dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for layer, node in zip(k_convs, convs, strict=True):
        layer.set_weights([inits[node.input[1]].transpose(2, 3, 1, 0), inits[node.input[2]]])
    for layer, node in zip(k_dense, matmuls, strict=True):
        add = adds[node.output[0]]
        layer.set_weights([inits[node.input[1]], inits[add.input[1]].reshape(-1)])
    return model


def litert_predictors(model, calibration: list[np.ndarray]) -> dict[str, Predict]:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    def convert(int8: bool) -> bytes:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([x[None]] for x in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()

    predictors = {}
    for label, int8 in (("LiteRT FP32", False), ("LiteRT INT8", True)):
        interpreter = Interpreter(model_content=convert(int8), num_threads=1)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]["index"]
        out = interpreter.get_output_details()[0]["index"]

        def predict(x: np.ndarray, interpreter=interpreter, inp=inp, out=out) -> np.ndarray:
            interpreter.set_tensor(inp, x)
            interpreter.invoke()
            return interpreter.get_tensor(out)

        predictors[label] = predict
    return predictors


def openvino_predictors(fp32: Path, calibration: list[np.ndarray], shape: tuple[int, ...]) -> dict[str, Predict]:
    import nncf
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    predictors = {}
    for label, int8 in (("OpenVINO FP32", False), ("OpenVINO INT8", True)):
        model = core.read_model(str(fp32))
        model.reshape([1, *shape])
        if int8:
            model = nncf.quantize(model, nncf.Dataset([x[None] for x in calibration]), subset_size=len(calibration))
        request = core.compile_model(model, "CPU", config).create_infer_request()

        def predict(x: np.ndarray, request=request) -> np.ndarray:
            return request.infer({0: x})[0]

        predictors[label] = predict
    return predictors


def bench_model(name: str, rounds: int, calls: int, limit: int | None) -> None:
    from edgecnn.benchmark import machine_load
    from edgecnn.datasets import KNOWN_CALIBRATION_DATA, known_data
    from edgecnn.evaluate import draw, load_images
    from edgecnn.models import bundled_path
    from edgecnn.postprocess import class_probabilities
    from edgecnn.session import Classifier
    from edgecnn.training.quantize import CALIBRATION_COUNT, CALIBRATION_SEED

    fp32 = bundled_path(name)
    ours = {
        "edgecnn FP32": Classifier(fp32, device="cpu", threads=1),
        "edgecnn INT8": Classifier(bundled_path(f"{name}-int8"), device="cpu", threads=1),
    }
    spec = ours["edgecnn FP32"].spec
    cal_set = draw(
        load_images(known_data(spec.name, KNOWN_CALIBRATION_DATA), spec, "train"), CALIBRATION_COUNT, CALIBRATION_SEED
    )
    calibration = [x for batch, _ in cal_set.batches(spec) for x in batch]
    test = load_images(known_data(spec.name), spec, "test", need_labels=True)
    if limit:
        test = draw(test, limit)

    predictors: dict[str, Predict] = {label: c.predict for label, c in ours.items()}
    peers: dict[str, Predict] = {}
    try:
        peers.update(openvino_predictors(fp32, calibration, spec.input_shape))
    except ImportError as exc:
        print(f"OpenVINO skipped: {exc} (pip install -e '.[bench]')")
    try:
        keras_model = keras_from_onnx(name, fp32)
        check = np.stack(calibration[:16])
        gap = np.abs(class_probabilities(keras_model(check).numpy(), spec) - ours["edgecnn FP32"].predict(check)).max()
        if gap > 1e-4:
            raise SystemExit(f"{name}: Keras rebuilt from the ONNX weights differs by {gap:.2e}")
        peers.update(litert_predictors(keras_model, calibration))
    except ImportError as exc:
        print(f"LiteRT skipped: {exc} (pip install -e '.[bench,train]')")
    for label, predict in peers.items():
        predictors[label] = lambda x, predict=predict: class_probabilities(predict(x), spec)

    probs = {label: [] for label in predictors}
    for batch, _ in test.batches(spec):
        for i in range(len(batch)):
            x = batch[i : i + 1]
            for label, predict in predictors.items():
                probs[label].append(predict(x)[0])
    top1 = {label: np.asarray(p).argmax(1) for label, p in probs.items()}

    inputs = [np.ascontiguousarray(x[None]) for x in calibration[:16]]
    times: dict[str, list[float]] = {label: [] for label in predictors}
    print(
        f"\n{name}: timing {len(predictors)} contenders, {rounds} rounds x {calls} calls, batch 1, 1 thread; "
        f"{machine_load()}"
    )
    for predict in predictors.values():
        for x in inputs:
            predict(x)
    for _ in range(rounds):
        for label, predict in predictors.items():
            for k in range(calls):
                x = inputs[k % len(inputs)]
                start = time.perf_counter()
                predict(x)
                times[label].append(time.perf_counter() - start)
    print(f"  {machine_load()} after timing")
    medians = {label: float(np.median(t)) * 1e3 for label, t in times.items()}
    peer_int8 = [medians[k] for k in ("OpenVINO INT8", "LiteRT INT8") if k in medians]
    best_peer = min(peer_int8) if peer_int8 else None
    rows = []
    for label, t in times.items():
        ms = np.asarray(t) * 1e3
        rows.append(
            [
                label,
                f"{medians[label]:.3f}",
                f"{np.percentile(ms, 95):.3f}",
                f"{ms.min():.3f}",
                f"{medians['edgecnn FP32'] / medians[label]:.2f}x",
                f"{medians[label] / best_peer:.2f}" if best_peer else "-",
                f"{(top1[label] == test.labels).mean():.4f}",
                f"{(top1[label] == top1['edgecnn FP32']).mean():.4f}",
            ]
        )
    print_table(
        [
            "contender",
            "median ms",
            "p95 ms",
            "min ms",
            "speed-up vs edgecnn FP32",
            "/ faster peer INT8",
            f"accuracy ({len(test)})",
            "agrees w/ FP32",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["catsdogs", "fmnist"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--limit", type=int, default=None, help="test images for accuracy (default: all)")
    args = parser.parse_args()
    from edgecnn.cli import import_tensorflow_quietly

    try:
        import_tensorflow_quietly()
    except ImportError:
        pass
    print(f"load at start: {os.getloadavg()}; onnxruntime/OpenVINO/LiteRT each pinned to one thread")
    for name in args.models:
        bench_model(name, args.rounds, args.calls, args.limit)


if __name__ == "__main__":
    main()
