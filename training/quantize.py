"""Static INT8 post-training quantisation of an exported edgecnn model, gated on accuracy.

    quantize_model(fp32.onnx, out.onnx, calibrate=DIR, validate=DIR)

1. Shape the FP32 graph so every convolution runs on onnxruntime's integer kernels
   (`shape_for_int8`): tf2onnx's Flatten computes its target shape at run time
   (Shape, Gather, Cast, Slice, Concat), which keeps the last conv's output in float;
   it becomes a Reshape to a constant (-1, K). A first convolution over 3 channels gets a
   4th, zero channel (zero weights, the input padded in the graph): the same FP32 output,
   and the layout onnxruntime's u8s8 convolution handles about twice as fast.
2. `quant_pre_process` (symbolic shape inference, basic optimisation), then onnxruntime's
   `quantize_static`: QDQ format, unsigned 8-bit activations, signed weights per output
   channel in 7-bit range (reduce_range), MinMax calibration on `count` images drawn
   deterministically (seed 0) from the calibration folder and preprocessed exactly as the
   runtime does. The output activation (softmax/sigmoid) and the channel Pad stay float.
   Why 7-bit weights: on x86 CPUs without VNNI, onnxruntime's u8s8 kernels multiply with
   vpmaddubsw, whose int16 pair sums saturate when a 255 input meets weights near +-127;
   `edgecnn-export --check` showed the first conv 69 steps off the ONNX definition on 4%
   of its outputs (fmnist, AVX2), costing 0.4-0.7 accuracy points and 3% top-1
   agreement. With 7-bit weights a pair sum cannot overflow on any CPU, every tensor is
   within one step, and the file runs the same everywhere.
3. The ModelSpec gains precision "int8", the calibration method and count, and the FP32
   file's SHA-256.
4. Gate: on the labelled folder (default: the model's test data), INT8 accuracy must be
   >= FP32 - `max_accuracy_drop` and the top-1 must agree with FP32 on >= `min_agreement`
   of the images; only then is the file written (atomically). Needs no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgecnn.datasets import KNOWN_CALIBRATION_DATA, known_data
from edgecnn.errors import UserError, first_line
from edgecnn.evaluate import Agreement, compare, draw, load_images, predict_all
from edgecnn.fileio import save_onnx_atomically, sha256_file
from edgecnn.postprocess import class_probabilities
from edgecnn.spec import ModelSpec, read_model_spec, write_model_spec

CALIBRATION_COUNT = 200
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_SEED = 0
MAX_ACCURACY_DROP = 0.005
MIN_AGREEMENT = 0.99
PAD_CHANNELS_TO = 4
PAD_NODE_SUFFIX = "/pad_channels"
# The output activation stays float: a quantised softmax rounds probabilities to 1/255
# steps, and ties then flip the top-1 of close calls.
FLOAT_OPS = ("Softmax", "Sigmoid")


# ----- graph shaping -----


def _drop_dead_nodes(graph: onnx.GraphProto) -> None:
    """Remove nodes whose outputs nothing reads, and initializers nothing reads."""
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)


def fix_flatten_reshapes(model: onnx.ModelProto) -> int:
    """Every Reshape whose target shape is computed at run time and whose input has static
    non-batch dims gets the constant target (-1, K) when its output is 2-D. Returns the count."""
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        v.name: v.type.tensor_type.shape
        for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
    }
    constants = {t.name for t in graph.initializer}
    fixed = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] in constants:
            continue
        data, out = shapes.get(node.input[0]), shapes.get(node.output[0])
        if data is None or out is None or len(out.dim) != 2:
            continue
        inner = [d.dim_value for d in data.dim[1:] if d.HasField("dim_value")]
        if len(data.dim) < 2 or len(inner) != len(data.dim) - 1:
            continue
        target = np.array([-1, math.prod(inner)], dtype=np.int64)
        name = f"{node.name}/fixed_shape"
        graph.initializer.append(numpy_helper.from_array(target, name))
        node.input[1] = name
        fixed += 1
    _drop_dead_nodes(graph)
    return fixed


def pad_first_conv_channels(model: onnx.ModelProto, channels: int = PAD_CHANNELS_TO) -> int:
    """A Conv reading the graph input (directly or through one Transpose) with fewer than
    `channels` input channels gets zero weights for the extra channels and a Pad of its
    input with zeros: the same output. Returns how many convs were padded."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    input_name = next(i.name for i in graph.input if i.name not in inits)
    producers = {o: n for n in graph.node for o in n.output}
    padded = 0
    for node in list(graph.node):
        if (
            node.op_type != "Conv"
            or node.input[1] not in inits
            or node.attribute
            and any(a.name == "group" and a.i != 1 for a in node.attribute)
        ):
            continue
        source = node.input[0]
        via = producers.get(source)
        if not (
            source == input_name or (via is not None and via.op_type == "Transpose" and via.input[0] == input_name)
        ):
            continue
        weights = numpy_helper.to_array(inits[node.input[1]])
        if weights.ndim != 4 or weights.shape[1] >= channels:
            continue
        extra = channels - weights.shape[1]
        wider = np.concatenate([weights, np.zeros((weights.shape[0], extra, *weights.shape[2:]), weights.dtype)], 1)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(wider, node.input[1]))
        pads = numpy_helper.from_array(np.array([0, 0, 0, 0, 0, extra, 0, 0], dtype=np.int64), f"{node.name}/pads")
        graph.initializer.append(pads)
        pad_out = f"{node.name}/padded_input"
        pad = helper.make_node(
            "Pad", [source, pads.name], [pad_out], name=f"{node.name}{PAD_NODE_SUFFIX}", mode="constant"
        )
        graph.node.insert(list(graph.node).index(node), pad)
        node.input[0] = pad_out
        padded += 1
    return padded


@dataclass(frozen=True)
class Shaping:
    """Which graph changes to make before quantising (all on by default)."""

    fixed_reshape: bool = True
    pad_channels: int = PAD_CHANNELS_TO  # 0: leave the first conv as it is


def shape_for_int8(model: onnx.ModelProto, shaping: Shaping = Shaping()) -> dict[str, int]:
    """Apply `shaping` in place; returns what changed."""
    done = {
        "fixed reshapes": fix_flatten_reshapes(model) if shaping.fixed_reshape else 0,
        "padded convs": pad_first_conv_channels(model, shaping.pad_channels) if shaping.pad_channels else 0,
    }
    onnx.checker.check_model(model)
    return done


# ----- quantisation -----


class _BatchReader:
    """onnxruntime CalibrationDataReader over preprocessed batches."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self._feeds = iter([{input_name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # onnxruntime >= 1.17 may call it; one pass is all MinMax needs
        pass


def _ort_session(model: onnx.ModelProto | bytes | str, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def quantize_graph(
    model: onnx.ModelProto,
    spec: ModelSpec,
    calibration: list[np.ndarray],
    method: str = "minmax",
    shaping: Shaping = Shaping(),
    quant_format: str = "qdq",
    extra_options: dict[str, Any] | None = None,
    float_ops: tuple[str, ...] = FLOAT_OPS,
    reduce_range: bool = True,
) -> tuple[onnx.ModelProto, dict[str, int]]:
    """The shaped, quantised graph (without the spec update) and what shaping changed.
    Nodes of the op types in `float_ops` are left in float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise UserError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    shaped = onnx.ModelProto()
    shaped.CopyFrom(model)
    changes = shape_for_int8(shaped, shaping)
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with tempfile.TemporaryDirectory(prefix="edgecnn-int8-") as tmp:
        fp32, pre, out = (Path(tmp) / n for n in ("shaped.onnx", "pre.onnx", "int8.onnx"))
        onnx.save_model(shaped, fp32)
        quant_pre_process(str(fp32), str(pre))
        quantize_static(
            str(pre),
            str(out),
            _BatchReader(spec.input_name, calibration),
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            # The channel Pad runs on the float input, so one QuantizeLinear feeds the
            # first conv (quantised, it becomes Q -> DQ -> Pad -> Q: two extra passes).
            nodes_to_exclude=[
                n.name
                for n in onnx.load(str(pre)).graph.node
                if n.op_type in float_ops or n.name.endswith(PAD_NODE_SUFFIX)
            ],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, **(extra_options or {})},
        )
        quantized = onnx.load(str(out))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    quantized.doc_string = model.doc_string
    return quantized, changes


def integer_op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Op counts of the graph onnxruntime actually runs (extended optimisations, CPU): shows
    which convs became QLinearConv and which stayed float."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgecnn-int8-") as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    return dict(sorted(Counter(n.op_type for n in optimized.graph.node).items()))


@dataclass
class QuantizeReport:
    """What quantize_model did and measured."""

    path: Path | None
    spec: ModelSpec
    gate: Agreement
    passed: bool
    changes: dict[str, int]
    ops: dict[str, int]
    calibration_where: str
    validation_where: str
    size_bytes: int = 0
    reasons: list[str] = dataclasses.field(default_factory=list)


def _predictor(session, spec: ModelSpec):
    name = session.get_outputs()[0].name
    return lambda x: class_probabilities(session.run([name], {spec.input_name: x})[0], spec)


def quantize_model(
    source: Path,
    out: Path,
    calibrate: Path | None = None,
    validate: Path | None = None,
    count: int = CALIBRATION_COUNT,
    method: str = "minmax",
    shaping: Shaping = Shaping(),
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    min_agreement: float = MIN_AGREEMENT,
    validate_limit: int | None = None,
    quant_format: str = "qdq",
    extra_options: dict[str, Any] | None = None,
) -> QuantizeReport:
    """Quantise FP32 `source` to `out`; writes nothing unless the accuracy gate passes."""
    source = Path(source)
    if not source.is_file():
        raise UserError(f"{source}: no such ONNX file")
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # noqa: BLE001  (protobuf raises several types for a bad file)
        raise UserError(f"{source}: not a readable ONNX model ({first_line(exc)})") from None
    spec = read_model_spec(model, str(source))
    if spec.precision != "fp32":
        raise UserError(f"{source}: already {spec.precision}; quantise the FP32 model")
    calibrate = calibrate or known_data(spec.name, KNOWN_CALIBRATION_DATA)
    if calibrate is None:
        raise UserError(f"no calibration images: pass a folder of {spec.name} input images")
    validate = validate or known_data(spec.name)
    if validate is None:
        raise UserError(f"no labelled images for the accuracy gate: pass a labelled folder of {spec.name} images")
    calibration_set = draw(load_images(calibrate, spec, split="train"), count, CALIBRATION_SEED)
    calibration = [batch for batch, _ in calibration_set.batches(spec, chunk=20)]
    quantized, changes = quantize_graph(model, spec, calibration, method, shaping, quant_format, extra_options)
    spec = dataclasses.replace(
        spec,
        precision="int8",
        calibration_method=method,
        calibration_count=len(calibration_set),
        fp32_sha256=sha256_file(source),
    )
    write_model_spec(quantized, spec)
    onnx.checker.check_model(quantized)

    validation_set = load_images(validate, spec, split="test", need_labels=True)
    if validate_limit is not None:
        validation_set = draw(validation_set, validate_limit, CALIBRATION_SEED)
    probs = predict_all(
        validation_set,
        spec,
        {"fp32": _predictor(_ort_session(model), spec), "int8": _predictor(_ort_session(quantized), spec)},
    )
    gate = compare(probs["fp32"], probs["int8"], validation_set.known_labels)
    reasons = []
    if not gate.accuracy >= gate.baseline_accuracy - max_accuracy_drop - 1e-12:
        reasons.append(
            f"accuracy {gate.accuracy:.4f} < FP32 {gate.baseline_accuracy:.4f} - {max_accuracy_drop * 100:g} pt"
        )
    if not gate.agreement >= min_agreement:
        reasons.append(f"top-1 agreement {gate.agreement:.4f} < {min_agreement:g}")
    report = QuantizeReport(
        path=None,
        spec=spec,
        gate=gate,
        passed=not reasons,
        changes=changes,
        ops=integer_op_counts(quantized),
        calibration_where=calibration_set.where,
        validation_where=validation_set.where,
        reasons=reasons,
    )
    if report.passed:
        report.size_bytes = save_onnx_atomically(quantized, Path(out))
        report.path = Path(out)
    return report
