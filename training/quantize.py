"""Static INT8 post-training quantisation of an exported edgecnn model, gated on accuracy.

    quantize_model(fp32.onnx, out.onnx, calibrate=DIR, validate=DIR)

1. Shape the FP32 graph (`shape_for_int8`, same FP32 output):
   - tf2onnx's Flatten computes its target shape at run time (Shape, Gather, Cast, Slice,
     Concat), which keeps the last conv's output in float; it becomes a Reshape to a
     constant (-1, K).
   - The first convolution's window moves into preprocessing (`fold_first_conv`): the
     graph reads each position's 3x3 window of the image (ModelSpec `patch`,
     `patch_pads`; written by the preprocess kernel) and the conv becomes 1x1, zero
     values and weights padding its input to a multiple of 4 (`input_depth`).
     onnxruntime's u8s8 convolution needs multiples of 4 input channels (3 channels run
     about twice as slowly), and a 1x1 conv reads its input directly instead of through
     a pointer per output pixel and tap: the catsdogs stem drops from 0.47 to 0.23 ms.
2. `quant_pre_process` (symbolic shape inference, basic optimisation), then onnxruntime's
   `quantize_static`: QDQ format, unsigned 8-bit activations, signed weights per output
   channel in 7-bit range (reduce_range), MinMax calibration on `count` images drawn
   deterministically (seed 0) from the calibration folder and preprocessed exactly as the
   runtime does for the shaped graph. The output activation (softmax/sigmoid) stays float.
   Why 7-bit weights: on x86 CPUs without VNNI, onnxruntime's u8s8 kernels multiply with
   vpmaddubsw, whose int16 pair sums saturate when a 255 input meets weights near +-127;
   `edgecnn-export --check` showed the first conv 69 steps off the ONNX definition on 4%
   of its outputs (fmnist, AVX2), costing 0.4-0.7 accuracy points and 3% top-1
   agreement. With 7-bit weights a pair sum cannot overflow on any CPU, every tensor is
   within one step, and the file runs the same everywhere.
3. The input's QuantizeLinear moves into preprocessing (`absorb_input_quantization`): the
   graph input is uint8 and the ModelSpec's `input_quantization` (scale, zero point)
   tells the preprocess kernel to write exactly what that node computed.
4. The ModelSpec gains precision "int8", the calibration method and count, and the FP32
   file's SHA-256.
5. Gate: on the labelled folder (default: the model's test data), INT8 accuracy must be
   >= FP32 - `max_accuracy_drop` and the top-1 must agree with FP32 on >= `min_agreement`
   of the images, each model fed its own spec's input; only then is the file written
   (atomically). Needs no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgecnn.datasets import KNOWN_CALIBRATION_DATA, known_data
from edgecnn.errors import EdgecnnError, first_line
from edgecnn.evaluate import Agreement, ImageSet, compare, draw, load_images, predict_all
from edgecnn.fileio import save_onnx_atomically, sha256_file
from edgecnn.postprocess import class_probabilities
from edgecnn.spec import MAX_DEPTH, MAX_PATCH, ModelSpec, onnx_graph_io, read_model_spec, write_model_spec

CALIBRATION_COUNT = 200
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_SEED = 0
MAX_ACCURACY_DROP = 0.005
MIN_AGREEMENT = 0.99
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


def _attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else helper.get_attribute_value(found)


def _first_conv(model: onnx.ModelProto) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """(layout node, Conv) when the graph input (N, H, W, C) feeds one NHWC -> NCHW layout
    node (a Transpose (0, 3, 1, 2), or for C == 1 a Reshape to (N, 1, H, W)) that feeds
    only a 2-D Conv with constant weights, group 1, explicit pads; else None."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    input_name = next(i.name for i in graph.input if i.name not in inits)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    if len(readers.get(input_name, [])) != 1:
        return None
    layout = readers[input_name][0]
    if layout.op_type == "Transpose":
        if list(_attribute(layout, "perm", [])) != [0, 3, 1, 2]:
            return None
    elif layout.op_type == "Reshape":
        dims = next(i for i in graph.input if i.name == input_name).type.tensor_type.shape.dim
        target = numpy_helper.to_array(inits[layout.input[1]]) if layout.input[1] in inits else None
        if (
            len(dims) != 4
            or dims[3].dim_value != 1
            or target is None
            or list(target[1:]) != [1, dims[1].dim_value, dims[2].dim_value]
        ):
            return None
    else:
        return None
    convs = readers.get(layout.output[0], [])
    if len(convs) != 1 or convs[0].op_type != "Conv" or convs[0].input[0] != layout.output[0]:
        return None
    conv = convs[0]
    weights = inits.get(conv.input[1])
    if (
        weights is None
        or len(weights.dims) != 4
        or _attribute(conv, "group", 1) != 1
        or _attribute(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
    ):
        return None
    return layout, conv


def fold_first_conv(model: onnx.ModelProto, spec: ModelSpec, window: bool = True) -> ModelSpec | None:
    """Move the first convolution's input layout into preprocessing; returns the spec of the new
    graph input, or None (graph unchanged) when the graph does not start with a plain conv.

    window=True (needs stride 1 and dilation 1): the graph input becomes each position's
    kh x kw window of the (padded) image (`ModelSpec.patch`, written by the preprocess
    kernel) and the conv a 1x1 conv: onnxruntime's integer convolution then reads the
    input directly instead of through a pointer per output pixel and tap (on the
    catsdogs stem: 0.47 -> 0.23 ms). window=False: only the channel padding below.
    Either way the input depth is rounded up to a multiple of 4 with zero values and
    zero weights (the same output): the u8s8 convolution kernels need a multiple of 4
    input channels, else the conv runs about twice as slowly."""
    found = _first_conv(model)
    if found is None:
        return None
    layout, conv = found
    strides = list(_attribute(conv, "strides", [1, 1]))
    dilations = list(_attribute(conv, "dilations", [1, 1]))
    pads = list(_attribute(conv, "pads", [0, 0, 0, 0]))
    graph = model.graph
    weights_proto = next(t for t in graph.initializer if t.name == conv.input[1])
    weights = numpy_helper.to_array(weights_proto)
    out_channels, channels, kh, kw = weights.shape
    if strides != [1, 1] or dilations != [1, 1] or max(pads[0], pads[2]) >= kh or max(pads[1], pads[3]) >= kw:
        window = False  # windows are stride 1, each pad below its side (ModelSpec.patch)
    if kh > MAX_PATCH or kw > MAX_PATCH or kh * kw * channels > MAX_DEPTH:
        window = False
    if window:
        weights = weights.transpose(0, 2, 3, 1).reshape(out_channels, kh * kw * channels, 1, 1)
        window_fields: dict[str, Any] = dict(patch=(kh, kw), patch_pads=(pads[0], pads[1], pads[2], pads[3]))
        for attribute in list(conv.attribute):
            if attribute.name in ("kernel_shape", "pads"):
                conv.attribute.remove(attribute)
        conv.attribute.append(helper.make_attribute("kernel_shape", [1, 1]))
    else:
        window_fields = {}
    values = weights.shape[1]
    depth = -(-values // 4) * 4
    padding = np.zeros((out_channels, depth - values, *weights.shape[2:]), weights.dtype)
    weights_proto.CopyFrom(numpy_helper.from_array(np.concatenate([weights, padding], 1), weights_proto.name))
    new_spec = dataclasses.replace(spec, **window_fields, input_depth=depth)
    # The new input (N, h', w', depth) reaches the conv through a Transpose to NCHW.
    height, width, _ = new_spec.input_shape
    graph_input = next(i for i in graph.input if i.name == layout.input[0])
    dims = graph_input.type.tensor_type.shape.dim
    dims[1].dim_value, dims[2].dim_value, dims[3].dim_value = height, width, depth
    transpose = helper.make_node(
        "Transpose", [layout.input[0]], [layout.output[0]], name=layout.name, perm=[0, 3, 1, 2]
    )
    graph.node.insert(list(graph.node).index(layout), transpose)
    graph.node.remove(layout)
    stale = {layout.input[0], layout.output[0]}
    for info in [v for v in graph.value_info if v.name in stale]:
        graph.value_info.remove(info)
    _drop_dead_nodes(graph)
    return new_spec


def absorb_input_quantization(model: onnx.ModelProto) -> tuple[float, int] | None:
    """When the graph input reaches a per-tensor uint8 QuantizeLinear through layout nodes
    only (Transpose, Reshape), remove that QuantizeLinear and make the input uint8: the
    preprocess kernel quantises instead, as `ModelSpec.input_quantization` (scale, zero
    point) tells it. Returns (scale, zero point), or None (graph unchanged)."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    graph_input = next(i for i in graph.input if i.name not in inits)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    chain, tensor = [], graph_input.name
    while len(readers.get(tensor, [])) == 1 and readers[tensor][0].op_type in ("Transpose", "Reshape"):
        chain.append(readers[tensor][0])
        tensor = chain[-1].output[0]
    quantize = readers.get(tensor, [])
    if len(quantize) != 1 or quantize[0].op_type != "QuantizeLinear" or quantize[0].input[0] != tensor:
        return None
    q = quantize[0]
    if len(q.input) < 3 or q.input[1] not in inits or q.input[2] not in inits:
        return None
    scale, zero_point = numpy_helper.to_array(inits[q.input[1]]), numpy_helper.to_array(inits[q.input[2]])
    if scale.size != 1 or zero_point.dtype != np.uint8 or zero_point.size != 1:
        return None
    for node in graph.node:
        node.input[:] = [tensor if name == q.output[0] else name for name in node.input]
    graph.node.remove(q)
    graph_input.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    stale = {graph_input.name, *(n.output[0] for n in chain), q.output[0]}
    for info in [v for v in graph.value_info if v.name in stale]:
        graph.value_info.remove(info)
    _drop_dead_nodes(graph)
    return float(scale.reshape(())), int(zero_point.reshape(()))


FIRST_CONV_SHAPINGS = ("keep", "pad", "window")


@dataclass(frozen=True)
class Shaping:
    """Which graph changes to make before and after quantising (all on by default).

    first_conv: "window" (fold the first conv's window into the input), "pad" (only pad
    its input channels to a multiple of 4) or "keep"; see `fold_first_conv`.
    uint8_input: quantise the input in preprocessing (`absorb_input_quantization`)."""

    fixed_reshape: bool = True
    first_conv: str = "window"
    uint8_input: bool = True


def shape_for_int8(model: onnx.ModelProto, spec: ModelSpec, shaping: Shaping = Shaping()) -> tuple[ModelSpec, dict]:
    """Apply `shaping`'s float-graph changes in place; returns the spec of the shaped graph's
    input and what changed."""
    if shaping.first_conv not in FIRST_CONV_SHAPINGS:
        raise ValueError(f"first_conv must be one of {FIRST_CONV_SHAPINGS}, got {shaping.first_conv!r}")
    folded = None if shaping.first_conv == "keep" else fold_first_conv(model, spec, shaping.first_conv == "window")
    done = {
        "fixed reshapes": fix_flatten_reshapes(model) if shaping.fixed_reshape else 0,
        "first conv": "kept" if folded is None else "window" if folded.patch != (1, 1) else "padded",
    }
    onnx.checker.check_model(model)
    return folded or spec, done


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
    calibration: ImageSet,
    method: str = "minmax",
    shaping: Shaping = Shaping(),
    quant_format: str = "qdq",
    extra_options: dict[str, Any] | None = None,
    float_ops: tuple[str, ...] = FLOAT_OPS,
    reduce_range: bool = True,
) -> tuple[onnx.ModelProto, ModelSpec, dict]:
    """The shaped, quantised graph, the spec of its input (without the int8 provenance, not
    yet in the graph's metadata) and what shaping changed. The calibration images are
    preprocessed for the shaped graph. Nodes of the op types in `float_ops` stay float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise EdgecnnError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    shaped = onnx.ModelProto()
    shaped.CopyFrom(model)
    shaped_spec, changes = shape_for_int8(shaped, spec, shaping)
    batches = [batch for batch, _ in calibration.batches(shaped_spec, chunk=20)]
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with tempfile.TemporaryDirectory(prefix="edgecnn-int8-") as tmp:
        fp32, pre, out = (Path(tmp) / n for n in ("shaped.onnx", "pre.onnx", "int8.onnx"))
        onnx.save_model(shaped, fp32)
        cwd = os.getcwd()
        os.chdir(tmp)  # where it leaves its scratch files when its shape inference fails
        try:
            quant_pre_process(str(fp32), str(pre))
        except Exception as exc:  # noqa: BLE001  (its symbolic shape inference asserts on some graphs)
            # the pre-processing only folds and annotates shapes: quantise the graph as it is
            changes["pre-processing skipped"] = f"{type(exc).__name__} in onnxruntime's symbolic shape inference"
            pre = fp32
        finally:
            os.chdir(cwd)
        quantize_static(
            str(pre),
            str(out),
            _BatchReader(spec.input_name, batches),
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            nodes_to_exclude=[n.name for n in onnx.load(str(pre)).graph.node if n.op_type in float_ops],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, **(extra_options or {})},
        )
        quantized = onnx.load(str(out))
    if shaping.uint8_input:
        quantization = absorb_input_quantization(quantized)
        changes["uint8 input"] = quantization is not None
        if quantization is not None:
            shaped_spec = dataclasses.replace(shaped_spec, input_quantization=quantization)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    quantized.doc_string = model.doc_string
    return quantized, shaped_spec, changes


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
    changes: dict[str, Any]
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
        raise EdgecnnError(f"{source}: no such ONNX file")
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # noqa: BLE001  (protobuf raises several types for a bad file)
        raise EdgecnnError(f"{source}: not a readable ONNX model ({first_line(exc)})") from None
    spec = read_model_spec(model, str(source))
    if spec.precision != "fp32":
        raise EdgecnnError(f"{source}: already {spec.precision}; quantise the FP32 model")
    calibrate = calibrate or known_data(spec.name, KNOWN_CALIBRATION_DATA)
    if calibrate is None:
        raise EdgecnnError(f"no calibration images: pass a folder of {spec.name} input images")
    validate = validate or known_data(spec.name)
    if validate is None:
        raise EdgecnnError(f"no labelled images for the accuracy gate: pass a labelled folder of {spec.name} images")
    calibration_set = draw(load_images(calibrate, spec, split="train"), count, CALIBRATION_SEED)
    quantized, int8_spec, changes = quantize_graph(
        model, spec, calibration_set, method, shaping, quant_format, extra_options
    )
    int8_spec = dataclasses.replace(
        int8_spec,
        precision="int8",
        calibration_method=method,
        calibration_count=len(calibration_set),
        fp32_sha256=sha256_file(source),
    )
    write_model_spec(quantized, int8_spec)
    onnx.checker.check_model(quantized)
    int8_spec.check_graph(*onnx_graph_io(quantized))

    validation_set = load_images(validate, spec, split="test", need_labels=True)
    if validate_limit is not None:
        validation_set = draw(validation_set, validate_limit, CALIBRATION_SEED)
    probs = predict_all(
        validation_set,
        {
            "fp32": (spec, _predictor(_ort_session(model), spec)),
            "int8": (int8_spec, _predictor(_ort_session(quantized), int8_spec)),
        },
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
        spec=int8_spec,
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
