"""Keras -> ONNX with the ModelSpec inside, verified before it is published."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx

import edgecnn
from edgecnn.errors import UserError
from edgecnn.fileio import atomic_output
from edgecnn.spec import METADATA_KEY, ModelSpec, onnx_graph_io

OPSET = 17  # ONNX opset 17 (onnxruntime >= 1.14); every op these models need exists there
TOLERANCE = 1e-5
OUTPUT_NAME = "probabilities"
PARITY_BATCH_SIZES = (1, 8)


@dataclass
class ExportReport:
    """What export did and measured."""

    path: Path
    spec: ModelSpec
    max_abs_diff: dict[int, float]
    op_counts: dict[str, int]
    removed_layers: list[str]
    opset: int = OPSET
    size_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunInfo:
    """A trained model plus what its run directory says about it."""

    model_path: Path
    name: str | None = None
    color: str | None = None
    resize: str | None = None
    class_names: tuple[str, ...] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def read_run(source: Path) -> RunInfo:
    """Resolve RUN_DIR or model.keras, reading run.json/class_names.json/metrics.json beside it."""
    model_path = source / "model.keras" if source.is_dir() else source
    if not model_path.is_file():
        raise UserError(f"{source}: no such model (give a run directory or a .keras file)")
    if model_path.suffix != ".keras":
        raise UserError(f"{model_path}: not a .keras file")
    info = RunInfo(model_path=model_path)
    folder = model_path.parent

    def load(name: str) -> Any:
        path = folder / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None

    run = load("run.json") or {}
    info.name = run.get("model", {}).get("name")
    info.color = run.get("model", {}).get("color")
    info.resize = run.get("model", {}).get("resize")
    names = load("class_names.json")
    info.class_names = tuple(names) if names else None
    metrics = load("metrics.json") or {}
    info.metrics = {k: v for k, v in metrics.items() if k in ("train", "validation", "test", "epochs_run", "best_epoch")}
    return info


def load_keras_model(path: Path) -> keras.Model:
    """Load a .keras file in safe mode; UserError if it is not a loadable Keras model."""
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as exc:  # noqa: BLE001  (Keras raises many types for a bad file)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot load Keras model ({first})") from None


def is_augmentation(layer: keras.layers.Layer) -> bool:
    """Random* preprocessing layers (or a Sequential of only them): identity at inference."""
    if isinstance(layer, keras.Sequential):
        return bool(layer.layers) and all(is_augmentation(inner) for inner in layer.layers)
    return type(layer).__name__.startswith("Random")


def is_unit_rescaling(layer: keras.layers.Layer) -> bool:
    """Rescaling(1/255, offset=0): the step the runtime kernel does instead."""
    if not isinstance(layer, keras.layers.Rescaling):
        return False
    return np.allclose(np.asarray(layer.scale, dtype=np.float64), 1 / 255, rtol=1e-6) and np.all(np.asarray(layer.offset) == 0)


def inference_layers(model: keras.Model) -> tuple[list[keras.layers.Layer], list[str], float]:
    """The layers the exported graph runs, the layers removed, and the factor Keras' input needs.

    Augmentation is dropped (inert at inference, and its random ops do not load in
    onnxruntime). A leading Rescaling(1/255) is dropped too: the runtime rescales,
    so the graph always takes [0, 1]; the returned factor (255 or 1) turns a [0, 1]
    input into what the full Keras model expects.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    kept, removed, keras_scale = [], [], 1.0
    for layer in layers:
        if is_augmentation(layer):
            removed.append(type(layer).__name__)
        elif is_unit_rescaling(layer) and not kept and keras_scale == 1.0:
            removed.append("Rescaling")
            keras_scale = 255.0
        else:
            kept.append(layer)
    if any(isinstance(layer, keras.layers.Rescaling) for layer in kept):
        raise UserError("the model rescales somewhere other than a leading Rescaling(1/255); edgecnn cannot export it")
    return kept, removed, keras_scale


def make_spec(model: keras.Model, info: RunInfo, class_names: tuple[str, ...] | None, name: str | None) -> ModelSpec:
    """The ModelSpec for a loaded model and its run directory."""
    shape = model.input_shape
    if len(shape) != 4 or shape[3] not in (1, 3) or shape[1] is None or shape[2] is None:
        raise UserError(f"model input must be (None, H, W, 1 or 3), got {shape}")
    names = class_names or info.class_names
    if not names:
        raise UserError(f"{info.model_path}: no class_names.json beside it; pass --class-names")
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if activation not in ("softmax", "sigmoid"):
        raise UserError(f"the last layer's activation is {activation!r}; edgecnn needs softmax or sigmoid")
    try:
        return ModelSpec(
            name=name or info.name or model.name,
            height=int(shape[1]),
            width=int(shape[2]),
            channels=int(shape[3]),
            color=info.color or ("gray" if shape[3] == 1 else "rgb"),
            resize=info.resize or "bilinear",
            class_names=tuple(names),
            output_activation=activation,
            rescaling="runtime",
            input_range=(0.0, 1.0),
            edgecnn_version=edgecnn.__version__,
            metrics=info.metrics,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def convert(layers: list[keras.layers.Layer], spec: ModelSpec, opset: int = OPSET) -> onnx.ModelProto:
    """tf2onnx `from_function` over the kept layers, dynamic batch, output named 'probabilities'."""
    signature = (tf.TensorSpec((None, *spec.input_shape), tf.float32, name=spec.input_name),)

    @tf.function(input_signature=signature)
    def forward(x: tf.Tensor) -> tf.Tensor:
        for layer in layers:
            x = layer(x, training=False)
        return x

    model_proto, _ = tf2onnx.convert.from_function(forward, input_signature=signature, opset=opset)
    old = model_proto.graph.output[0].name
    for node in model_proto.graph.node:
        node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
        node.input[:] = [OUTPUT_NAME if i == old else i for i in node.input]
    model_proto.graph.output[0].name = OUTPUT_NAME
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, spec.to_json()
    model_proto.doc_string = f"edgecnn {edgecnn.__version__}: {spec.name}"
    return model_proto


def parity_inputs(spec: ModelSpec, batch: int, seed: int = 0) -> np.ndarray:
    """A fixed float32 batch in [0, 1] of the model's input shape."""
    return np.random.default_rng(seed).random((batch, *spec.input_shape), dtype=np.float32)


def check_graph(model_proto: onnx.ModelProto) -> dict[str, int]:
    """onnx.checker, no random ops, dynamic batch; returns op-type counts."""
    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise UserError(f"exported graph fails onnx.checker: {str(exc).splitlines()[0]}") from None
    ops = Counter(node.op_type for node in model_proto.graph.node)
    random_ops = sorted(op for op in ops if "Random" in op or op in ("Multinomial", "Bernoulli", "Dropout"))
    if random_ops:
        raise UserError(f"exported graph still contains random ops {random_ops}")
    batch_dim = model_proto.graph.input[0].type.tensor_type.shape.dim[0]
    if batch_dim.HasField("dim_value"):
        raise UserError(f"exported graph has a fixed batch size {batch_dim.dim_value}")
    return dict(sorted(ops.items()))


def max_abs_diffs(model: keras.Model, model_proto: onnx.ModelProto, spec: ModelSpec, keras_scale: float) -> dict[int, float]:
    """Keras (full model) vs onnxruntime (CPU) on fixed inputs, per batch size."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    diffs = {}
    for batch in PARITY_BATCH_SIZES:
        x = parity_inputs(spec, batch, seed=batch)
        expected = model(x * np.float32(keras_scale), training=False).numpy()
        got = session.run(None, {spec.input_name: x})[0]
        if got.shape != expected.shape:
            raise UserError(f"onnxruntime output shape {got.shape} differs from Keras {expected.shape}")
        diffs[batch] = float(np.abs(got - expected).max())
    return diffs


def write_atomically(model_proto: onnx.ModelProto, out: Path) -> int:
    """Save through `atomic_output`, reading the file back before it is committed; returns the size."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as temp:
        onnx.save_model(model_proto, temp)
        if onnx.load(temp, load_external_data=False) != model_proto:
            raise UserError(f"-o {out}: the written file does not read back as the exported model; nothing written")
    return out.stat().st_size


def export_model(source: Path, out: Path, opset: int = OPSET, tolerance: float = TOLERANCE,
                 class_names: tuple[str, ...] | None = None, name: str | None = None) -> ExportReport:
    """Export RUN_DIR or model.keras to `out`; writes nothing unless every check passes."""
    info = read_run(source)
    model = load_keras_model(info.model_path)
    spec = make_spec(model, info, class_names, name)
    layers, removed, keras_scale = inference_layers(model)
    model_proto = convert(layers, spec, opset)
    try:
        spec.check_graph(*onnx_graph_io(model_proto))
    except ValueError as exc:
        raise UserError(f"{info.model_path}: {exc} (are the class names right?)") from None
    op_counts = check_graph(model_proto)
    diffs = max_abs_diffs(model, model_proto, spec, keras_scale)
    worst = max(diffs.values())
    if not worst <= tolerance:
        raise UserError(f"Keras vs onnxruntime differ by {worst:.3g} > {tolerance:g}; nothing written")
    from edgecnn.reference.check import check_export

    reference = check_export(model_proto, lambda x: model(x * np.float32(keras_scale), training=False).numpy(), tolerance)
    if not reference.skipped and not reference.passed:
        raise UserError(f"the C reference disagrees ({reference.summary()}) > {tolerance:g}; nothing written")
    size = write_atomically(model_proto, out)
    return ExportReport(path=out, spec=spec, max_abs_diff=diffs, op_counts=op_counts, removed_layers=removed,
                        opset=opset, size_bytes=size, extra={"reference": reference})
