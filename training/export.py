"""Keras -> ONNX with the ModelSpec inside, verified before it is published."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from onnx import numpy_helper

import edgecnn
from edgecnn.errors import EdgecnnError, first_line
from edgecnn.fileio import save_onnx_atomically
from edgecnn.parity import BATCH_SIZES, OPSET, TOLERANCE, Agreement, agreement, logits_output
from edgecnn.spec import PREPROCESS_MODES, ModelSpec, onnx_graph_io, write_model_spec
from edgecnn.training import registry

OUTPUT_NAMES = {"softmax": "probabilities", "sigmoid": "probabilities", "logits": "logits"}


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
    preprocess: str | None = None  # the preprocess mode the model was trained on (run.json)
    class_names: tuple[str, ...] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def read_run(source: Path) -> RunInfo:
    """Resolve RUN_DIR or model.keras, reading run.json/class_names.json/metrics.json beside it."""
    model_path = source / "model.keras" if source.is_dir() else source
    if not model_path.is_file():
        raise EdgecnnError(f"{source}: no such model (give a run directory or a .keras file)")
    if model_path.suffix != ".keras":
        raise EdgecnnError(f"{model_path}: not a .keras file")
    info = RunInfo(model_path=model_path)
    folder = model_path.parent

    def load(name: str) -> Any:
        path = folder / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise EdgecnnError(f"{path}: not valid JSON ({exc})") from None

    run = load("run.json") or {}
    info.name = run.get("model", {}).get("name")
    info.color = run.get("model", {}).get("color")
    info.resize = run.get("model", {}).get("resize")
    info.preprocess = run.get("model", {}).get("preprocess")
    names = load("class_names.json")
    info.class_names = tuple(names) if names else None
    metrics = load("metrics.json") or {}
    info.metrics = {
        k: v for k, v in metrics.items() if k in ("train", "validation", "test", "epochs_run", "best_epoch")
    }
    return info


def load_keras_model(path: Path) -> keras.Model:
    """Load a .keras file in safe mode, without its optimizer and loss (export needs only the
    layers); EdgecnnError if it is not a loadable Keras model."""
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001  (Keras raises many types for a bad file)
        text = first_line(exc)
        if any(sign in text for sign in ("Could not locate", "safe_mode", "custom")):
            raise EdgecnnError(
                f"{path}: safe mode refuses this model: it needs custom Python code ({text[:160]}); "
                "edgecnn exports Sequential and functional models built from Keras layers"
            ) from None
        raise EdgecnnError(f"{path}: cannot load Keras model ({text})") from None


def is_augmentation(layer: keras.layers.Layer) -> bool:
    """Random* preprocessing layers (or a Sequential of only them): identity at inference."""
    if isinstance(layer, keras.Sequential):
        return bool(layer.layers) and all(is_augmentation(inner) for inner in layer.layers)
    return type(layer).__name__.startswith("Random")


def is_unit_rescaling(layer: keras.layers.Layer) -> bool:
    """Rescaling(1/255, offset=0): the step the runtime kernel does instead."""
    if not isinstance(layer, keras.layers.Rescaling):
        return False
    scale, offset = np.asarray(layer.scale, dtype=np.float64), np.asarray(layer.offset)
    return bool(np.allclose(scale, 1 / 255, rtol=1e-6) and np.all(offset == 0))


def _first_reader(model: keras.Model, tensor: Any) -> tuple[keras.layers.Layer, Any] | None:
    """(layer, its output) when exactly one layer of a functional `model` reads `tensor`, else None."""
    readers: dict[int, tuple[keras.layers.Layer, Any]] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:  # Keras has no public view of a layer's calls
            if any(t is tensor for t in node.input_tensors):
                readers.setdefault(id(layer), (layer, node.output_tensors[0]))
    return next(iter(readers.values())) if len(readers) == 1 else None


def leading_unit_rescaling(model: keras.Model) -> keras.layers.Layer | None:
    """The Rescaling(1/255) that the input meets first (after augmentation only), if any.

    Only when nothing else reads the raw input on the way: removing it must change the
    scale of everything downstream at once.
    """
    if isinstance(model, keras.Sequential):
        first = next((layer for layer in model.layers if not is_augmentation(layer)), None)
        return first if first is not None and is_unit_rescaling(first) else None
    tensor = model.inputs[0]
    while (found := _first_reader(model, tensor)) is not None:
        layer, tensor = found
        if is_unit_rescaling(layer):
            return layer
        if not is_augmentation(layer):
            return None
    return None


def normalising_layers(model: keras.Model) -> list[str]:
    """Names of the Rescaling/Normalization layers anywhere in the model (nested models included)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += normalising_layers(layer)
        elif isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
            found.append(f"{layer.name} ({type(layer).__name__})")
    return found


class _Removed(keras.layers.Layer):
    """Stands in for a layer the inference graph drops: returns its input unchanged."""

    def call(self, inputs: Any, **kwargs: Any) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def inference_model(model: keras.Model, strip_rescaling: bool) -> tuple[keras.Model, list[str]]:
    """The model as exported, and the layers removed from it.

    The layers themselves (and their weights) are shared, not copied. Augmentation is
    dropped (inert at inference, and its random ops do not load in onnxruntime); so is
    the leading Rescaling(1/255) when `strip_rescaling`: the runtime divides by 255
    instead, so the graph takes [0, 1].
    """
    rescaling = leading_unit_rescaling(model) if strip_rescaling else None
    removed: list[str] = []

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if is_augmentation(layer) or layer is rescaling:
            removed.append(
                type(layer).__name__
                if layer is rescaling or not isinstance(layer, keras.Sequential)
                else f"{layer.name} ({', '.join(type(inner).__name__ for inner in layer.layers)})"
            )
            return _Removed(name=f"{layer.name}_removed")
        return layer

    try:
        return keras.models.clone_model(model, clone_function=clone), removed
    except Exception as exc:  # noqa: BLE001  (Keras raises many types for a graph it cannot rebuild)
        raise EdgecnnError(
            f"cannot rebuild the model's inference graph ({first_line(exc)}); "
            "edgecnn needs a Sequential or functional Keras model"
        ) from None


@dataclass(frozen=True)
class Normalisation:
    """How uint8 pixels become the exported graph's input, and what the full Keras model takes.

    `spec_fields` go into the ModelSpec; `keras_scale` turns a graph input into the full
    Keras model's input (255 when the graph lost the model's leading Rescaling(1/255)).
    """

    spec_fields: dict[str, Any]
    keras_scale: float
    strip_rescaling: bool
    note: str = ""


def choose_normalisation(
    model: keras.Model,
    channels: int,
    preprocess: str | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    channel_order: str | None = None,
) -> Normalisation:
    """Where the input normalisation happens, decided from the model and the user's options.

    (a) a leading Rescaling(1/255): removed, the runtime divides by 255; (b) any other
    Rescaling/Normalization in the model: the graph normalises raw 0..255 values; (c) the
    model expects preprocessing from outside: `preprocess` (a PREPROCESS_MODES name) or
    explicit mean/std/channel_order, applied by the runtime. With none of these the
    model is taken to expect pixels / 255 (the tutorials' convention), and a note says so.
    """
    explicit = preprocess is not None or mean is not None or std is not None or channel_order is not None
    in_model = normalising_layers(model)
    if explicit:
        if in_model:
            raise EdgecnnError(
                f"the model normalises its input itself ({', '.join(in_model)}); "
                "a preprocess mode or mean/std would normalise twice"
            )
        if preprocess is not None and preprocess not in PREPROCESS_MODES:
            raise EdgecnnError(f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {preprocess!r}")
        fields = dict(PREPROCESS_MODES[preprocess or "unit"])
        if channels == 1:
            if preprocess not in (None, "unit"):
                raise EdgecnnError(f"preprocess mode {preprocess!r} is for RGB models; this model has 1 channel")
            fields.update(mean=(0.0,), std=(1.0,))
        for key, value in (("mean", mean), ("std", std), ("channel_order", channel_order)):
            if value is not None:
                fields[key] = value
        return Normalisation({"rescaling": "runtime", **fields}, 1.0, strip_rescaling=False)
    if leading_unit_rescaling(model) is not None:
        return Normalisation({"rescaling": "runtime"}, 255.0, strip_rescaling=True)
    if in_model:
        return Normalisation(
            {"rescaling": "graph"},
            1.0,
            strip_rescaling=False,
            note=f"the graph normalises raw 0..255 pixels itself ({', '.join(in_model)})",
        )
    return Normalisation(
        {"rescaling": "runtime"},
        1.0,
        strip_rescaling=False,
        note="no Rescaling/Normalization in the model and no preprocess mode: taking it to "
        "expect pixels / 255; if it was trained on preprocess_input, give its preprocess mode",
    )


def _producer(tensor: Any) -> keras.layers.Layer:
    """The layer whose output `tensor` is, looking inside nested models."""
    layer = tensor._keras_history.operation
    while isinstance(layer, keras.Model):
        layer = layer.outputs[0]._keras_history.operation
    return layer


def output_activation(model: keras.Model) -> str:
    """softmax, sigmoid or logits: the activation of the layer that produces the model's output."""
    layer = _producer(model.outputs[0])
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    names = {"softmax": "softmax", "sigmoid": "sigmoid", "linear": "logits"}
    if activation not in names:
        raise EdgecnnError(
            f"the output layer {layer.name!r} ({type(layer).__name__}) has activation {activation!r}; "
            "edgecnn needs softmax, sigmoid, or none (logits) on a (batch, classes) output"
        )
    return names[activation]


def keras_logits(model: keras.Model, x: np.ndarray) -> np.ndarray | None:
    """The model's logits for `x`: its output with the output layer's softmax or sigmoid left out
    (None for a Softmax layer, whose input is not its own)."""
    layer = _producer(model.outputs[0])
    if isinstance(layer, keras.layers.Softmax) or not hasattr(layer, "activation"):
        return None
    activation = layer.activation
    layer.activation = keras.activations.linear
    try:
        return np.asarray(model(x, training=False))
    finally:
        layer.activation = activation


def check_interface(model: keras.Model, input_size: tuple[int, int] | None) -> tuple[int, int, int]:
    """(height, width, channels) of the exported input; EdgecnnError unless one image in, one score vector out."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise EdgecnnError(
            f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "edgecnn needs one image input and one class-score output"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[3] not in (1, 3):
        raise EdgecnnError(f"model input must be (batch, height, width, 1 or 3), got {shape}")
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 2 or not out_shape[1]:
        raise EdgecnnError(f"model output must be (batch, classes), got {out_shape}")
    height, width = shape[1], shape[2]
    if input_size is not None:
        if (height is not None and height != input_size[0]) or (width is not None and width != input_size[1]):
            raise EdgecnnError(
                f"input size {input_size[0]}x{input_size[1]} differs from the model's fixed {height}x{width}"
            )
        height, width = input_size
    if height is None or width is None:
        raise EdgecnnError(
            f"the model takes any input size {shape}; give the height and width to export", parameter="input_size"
        )
    return int(height), int(width), int(shape[3])


def make_spec(
    model: keras.Model,
    info: RunInfo,
    class_names: tuple[str, ...] | None,
    name: str | None,
    input_shape: tuple[int, int, int],
    normalisation: Normalisation,
    display_names: Mapping[str, tuple[str, ...]] | None = None,
) -> ModelSpec:
    """The ModelSpec for a loaded model and its run directory. `display_names` (language tag ->
    one name per class) replaces the registered recipe's."""
    height, width, channels = input_shape
    names = class_names or info.class_names
    if not names:
        raise EdgecnnError(
            f"none given, and {info.model_path} has no class_names.json beside it", parameter="class_names"
        )
    if display_names is None:
        display_names = registry.display_names(info.name, tuple(names))
    for language, translated in display_names.items():
        if len(translated) != len(names):
            raise EdgecnnError(
                f"{language}: {len(translated)} names for {len(names)} classes ({', '.join(names)})",
                parameter="display_names",
            )
    activation = output_activation(model)
    width_out = int(model.outputs[0].shape[1])
    expected = 1 if len(names) == 2 and activation != "softmax" else len(names)
    if width_out != expected and not (activation == "logits" and width_out == len(names)):
        raise EdgecnnError(
            f"the model outputs {width_out} {activation} value(s) per image but there are {len(names)} class names"
        )
    try:
        return ModelSpec(
            name=name or info.name or model.name,
            height=height,
            width=width,
            channels=channels,
            color=info.color or ("gray" if channels == 1 else "rgb"),
            resize=info.resize or "bilinear",
            class_names=tuple(names),
            display_names=dict(display_names),
            output_activation=activation,
            edgecnn_version=edgecnn.__version__,
            metrics=info.metrics,
            **normalisation.spec_fields,
        )
    except ValueError as exc:
        raise EdgecnnError(str(exc)) from None


def _one_minus(ctx: Any, node: Any, op_type: str, flip: bool) -> None:
    """Rewrite tf2onnx node `node` as ONNX `op_type` followed by 1 - it (flip) or it - 1."""
    from tf2onnx import utils

    node.type = op_type
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    one = ctx.make_const(utils.make_name(f"{node.name}/one"), np.array(1, dtype)).output[0]
    inputs = [one, node.output[0]] if flip else [node.output[0], one]
    ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{node.name}/sub"), inputs=inputs)


def _erfc(ctx: Any, node: Any, name: str, args: list) -> None:
    _one_minus(ctx, node, "Erf", flip=True)  # erfc(x) = 1 - erf(x)


def _expm1(ctx: Any, node: Any, name: str, args: list) -> None:
    _one_minus(ctx, node, "Exp", flip=False)  # expm1(x) = exp(x) - 1


# TensorFlow ops Keras layers use that tf2onnx has no handler for, written as ONNX ops it has:
# Erfc (exact GELU: keras.activations.gelu, MultiHeadAttention blocks) and Expm1 (celu).
OP_HANDLERS: dict[str, tuple[Callable, list]] = {"Erfc": (_erfc, []), "Expm1": (_expm1, [])}


@contextlib.contextmanager
def grouped_convolutions_as_graph_ops() -> Iterator[None]:
    """While inside, Keras convolutions trace as one TensorFlow convolution op, grouped or not.

    Keras runs a grouped Conv2D (groups > 1) through an XLA-compiled tf.function, because
    TensorFlow's CPU kernel lacks grouped convolutions; tf2onnx cannot convert an XLA call,
    but it converts a grouped Conv2D op into an ONNX Conv with `group`. Only the traced graph
    changes: the Keras model itself (and so the parity check's reference) keeps XLA.
    """
    from keras.src.backend.tensorflow import nn as tf_nn

    xla_conv = tf_nn.conv

    def conv(
        inputs: Any,
        kernel: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: Any = None,
        dilation_rate: Any = 1,
    ) -> Any:
        layout = tf_nn._convert_data_format(tf_nn.backend.standardize_data_format(data_format), len(inputs.shape))
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(), data_format=layout, dilations=dilation_rate)

    tf_nn.conv = conv
    try:
        yield
    finally:
        tf_nn.conv = xla_conv


def convert(model: keras.Model, spec: ModelSpec, opset: int = OPSET) -> onnx.ModelProto:
    """tf2onnx `from_function` over `model(x, training=False)`, dynamic batch, output renamed for the spec."""
    signature = (tf.TensorSpec((None, *spec.input_shape), tf.float32, name=spec.input_name),)

    @tf.function(input_signature=signature)
    def forward(x: tf.Tensor) -> tf.Tensor:
        return model(x, training=False)

    try:
        with capture_tf2onnx_errors() as errors, grouped_convolutions_as_graph_ops():
            model_proto, _ = tf2onnx.convert.from_function(
                forward, input_signature=signature, opset=opset, custom_op_handlers=dict(OP_HANDLERS)
            )
    except Exception as exc:  # noqa: BLE001  (tf2onnx raises many types for a graph it cannot convert)
        import traceback

        traceback.print_exc()
        raise EdgecnnError(f"tf2onnx cannot convert the model: {conversion_failure(errors, exc, model)}") from None
    captured_constants_to_initializers(model_proto, forward, spec.input_name)
    foreign = sorted({node.op_type for node in model_proto.graph.node if node.domain not in ("", "ai.onnx")})
    if foreign or errors:
        raise EdgecnnError(f"tf2onnx cannot convert the model: {conversion_failure(errors, None, model, foreign)}")
    output = OUTPUT_NAMES[spec.output_activation]
    old = model_proto.graph.output[0].name
    for node in model_proto.graph.node:
        node.output[:] = [output if o == old else o for o in node.output]
        node.input[:] = [output if i == old else i for i in node.input]
    model_proto.graph.output[0].name = output
    write_model_spec(model_proto, spec)
    model_proto.doc_string = f"edgecnn {edgecnn.__version__}: {spec.name}"
    return model_proto


def captured_constants_to_initializers(model_proto: onnx.ModelProto, forward: Any, input_name: str) -> None:
    """Make the constant tensors tf2onnx left as extra graph inputs initializers (or drop unread ones).

    tf2onnx freezes variables but not tensors the function captured by value, such as
    Keras Normalization's mean and variance (EfficientNet): onnxruntime would demand them
    as inputs.
    """
    captured = {
        internal.name: external.numpy()
        for external, internal in forward.get_concrete_function().graph.captures
        if external.dtype != tf.resource
    }
    read = {name for node in model_proto.graph.node for name in node.input}
    for value in [v for v in model_proto.graph.input if v.name != input_name]:
        if value.name in read and value.name not in captured:
            raise EdgecnnError(
                f"tf2onnx left an extra graph input {value.name!r} that is no constant; edgecnn needs one image input"
            )
        if value.name in read:
            model_proto.graph.initializer.append(numpy_helper.from_array(captured[value.name], value.name))
        model_proto.graph.input.remove(value)


class _LineCollector(logging.Handler):
    """Keeps the message of every record at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class capture_tf2onnx_errors:
    """Collects the error lines tf2onnx logs (unsupported ops) while converting."""

    def __enter__(self) -> list[str]:
        self.handler = _LineCollector()
        logging.getLogger("tf2onnx").addHandler(self.handler)
        return self.handler.lines

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("tf2onnx").removeHandler(self.handler)


def _layers_by_name(model: keras.Model) -> dict[str, keras.layers.Layer]:
    found: dict[str, keras.layers.Layer] = {}
    for layer in model.layers:
        found[layer.name] = layer
        if isinstance(layer, keras.Model):
            found.update(_layers_by_name(layer))
    return found


def keras_layers_of(op_names: list[str], model: keras.Model) -> list[str]:
    """The Keras layers that TensorFlow or ONNX ops named like "model/block_1/conv/Conv2D" came
    from, as "conv (Conv2D)": the innermost path component that names a layer of the model
    (or does without TensorFlow's uniquifying suffix)."""
    by_name = _layers_by_name(model)
    found = []
    for op_name in op_names:
        # TensorFlow makes a name scope unique with a suffix ("conv2d_1" for layer "conv2d")
        parts = [name for part in reversed(op_name.split("/")) for name in (part, re.sub(r"_\d+$", "", part))]
        layer = next((by_name[name] for name in parts if name in by_name), None)
        if layer is not None:
            what = type(layer).__name__
            if isinstance(layer, keras.layers.Activation):
                what += f" {getattr(layer.activation, '__name__', layer.activation)}"
            label = f"{layer.name} ({what})"
            if label not in found:
                found.append(label)
    return found


def conversion_failure(
    errors: list[str], exc: BaseException | None, model: keras.Model, foreign: list[str] | None = None
) -> str:
    """One line naming the TensorFlow ops and the Keras layers tf2onnx could not convert."""
    unsupported = sorted({m for line in errors for m in re.findall(r"Tensorflow op \[(.+?)\] is not supported", line)})
    ops = sorted({m.split(": ")[-1] for m in unsupported})
    layers = keras_layers_of([m.split(": ")[0] for m in unsupported], model)
    parts = []
    if ops:
        parts.append(f"unsupported TensorFlow op(s) {', '.join(ops)}")
    if layers:
        parts.append(f"in layer(s) {', '.join(layers[:8])}{' ...' if len(layers) > 8 else ''}")
    if foreign:
        parts.append(f"non-ONNX op(s) left in the graph: {', '.join(foreign)}")
    if not parts:
        parts.append(first_line(exc) if exc is not None else (errors[0] if errors else "unknown error"))
    return "; ".join(parts)


def parity_inputs(spec: ModelSpec, batch: int, seed: int = 0) -> np.ndarray:
    """A fixed float32 batch of the graph's input: random pixels in [0, 255] normalised as the spec says."""
    pixels = np.random.default_rng(seed).random((batch, *spec.input_shape), dtype=np.float32) * np.float32(255)
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    return ((pixels * np.float32(spec.pixel_scale) - mean) / std).astype(np.float32)


def check_graph(model_proto: onnx.ModelProto) -> dict[str, int]:
    """onnx.checker, no random ops, dynamic batch; returns op-type counts."""
    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise EdgecnnError(f"exported graph fails onnx.checker: {first_line(exc)}") from None
    ops = Counter(node.op_type for node in model_proto.graph.node)
    random_ops = sorted(op for op in ops if "Random" in op or op in ("Multinomial", "Bernoulli", "Dropout"))
    if random_ops:
        raise EdgecnnError(f"exported graph still contains random ops {random_ops}")
    batch_dim = model_proto.graph.input[0].type.tensor_type.shape.dim[0]
    if batch_dim.HasField("dim_value"):
        raise EdgecnnError(f"exported graph has a fixed batch size {batch_dim.dim_value}")
    return dict(sorted(ops.items()))


def keras_vs_onnxruntime(
    model: keras.Model, model_proto: onnx.ModelProto, spec: ModelSpec, keras_scale: float
) -> dict[int, Agreement]:
    """Keras (full model) vs onnxruntime (CPU) on fixed inputs, per batch size (edgecnn.parity's
    figures: the class probabilities, and the logits too when the graph outputs logits)."""
    import onnxruntime as ort

    from edgecnn.postprocess import class_probabilities
    from edgecnn.reference.check import with_outputs

    logits_name, output_name = logits_output(model_proto), model_proto.graph.output[0].name
    probe = with_outputs(model_proto, [logits_name])
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    agreements = {}
    for batch in BATCH_SIZES:
        x = parity_inputs(spec, batch, seed=batch)
        expected = model(x * np.float32(keras_scale), training=False).numpy()
        got, logits = session.run([output_name, logits_name], {spec.input_name: x})
        if got.shape != expected.shape:
            raise EdgecnnError(f"onnxruntime output shape {got.shape} differs from Keras {expected.shape}")
        reference_logits = keras_logits(model, x * np.float32(keras_scale))
        agreements[batch] = agreement(
            class_probabilities(got, spec), class_probabilities(expected, spec), logits, reference_logits
        )
    return agreements


# What export_model does, in order (for progress reports).
EXPORT_STEPS = (
    "loading the Keras model",
    "converting with tf2onnx",
    "checking the graph",
    "Keras vs onnxruntime",
    "onnxruntime vs the C reference",
    "saving",
)


def export_model(
    source: Path,
    out: Path,
    opset: int = OPSET,
    tolerance: float = TOLERANCE,
    class_names: tuple[str, ...] | None = None,
    name: str | None = None,
    input_size: tuple[int, int] | None = None,
    preprocess: str | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    channel_order: str | None = None,
    display_names: Mapping[str, tuple[str, ...]] | None = None,
    on_step: Callable[[str], None] = lambda name: None,
) -> ExportReport:
    """Export RUN_DIR or model.keras to `out`; writes nothing unless every check passes.

    input_size (h, w) is needed for models that take any size; preprocess / mean / std /
    channel_order declare normalisation the model expects from outside (see
    `choose_normalisation`); display_names (language tag -> one name per class) replaces
    the registered recipe's. `on_step(name)` is called as each of EXPORT_STEPS begins.
    """
    on_step(EXPORT_STEPS[0])
    info = read_run(source)
    model = load_keras_model(info.model_path)
    input_shape = check_interface(model, input_size)
    if preprocess is None and mean is None and std is None and channel_order is None:
        preprocess = info.preprocess  # what edgecnn-train recorded: the user never passes it
    normalisation = choose_normalisation(model, input_shape[2], preprocess, mean, std, channel_order)
    spec = make_spec(model, info, class_names, name, input_shape, normalisation, display_names)
    graph_model, removed = inference_model(model, normalisation.strip_rescaling)
    on_step(EXPORT_STEPS[1])
    model_proto = convert(graph_model, spec, opset)
    on_step(EXPORT_STEPS[2])
    try:
        spec.check_graph(*onnx_graph_io(model_proto))
    except ValueError as exc:
        raise EdgecnnError(f"{info.model_path}: {exc} (are the class names right?)") from None
    op_counts = check_graph(model_proto)
    keras_scale = normalisation.keras_scale
    on_step(EXPORT_STEPS[3])
    agreements = keras_vs_onnxruntime(model, model_proto, spec, keras_scale)
    failed = next((a.failure(tolerance) for a in agreements.values() if a.failure(tolerance)), "")
    if failed:
        raise EdgecnnError(f"Keras vs onnxruntime: {failed}; nothing written")
    diffs = {batch: a.probabilities for batch, a in agreements.items()}
    from edgecnn.reference.check import check_export

    on_step(EXPORT_STEPS[4])
    reference = check_export(
        model_proto, lambda x: model(x * np.float32(keras_scale), training=False).numpy(), tolerance
    )
    if reference.skipped:
        where, ops, why = unverifiable(model_proto, reference, graph_model)
        raise EdgecnnError(f"{where}: the C reference cannot check ONNX op(s) {ops} ({why}); nothing written")
    if not reference.passed:
        raise EdgecnnError(f"the C reference disagrees: {reference.failure} ({reference.summary()}); nothing written")
    on_step(EXPORT_STEPS[5])
    size = save_onnx_atomically(model_proto, out)
    notes = [normalisation.note] if normalisation.note else []
    return ExportReport(
        path=out,
        spec=spec,
        max_abs_diff=diffs,
        op_counts=op_counts,
        removed_layers=removed,
        opset=opset,
        size_bytes=size,
        extra={"reference": reference, "notes": notes},
    )


def unverifiable(model_proto: onnx.ModelProto, report: Any, model: keras.Model) -> tuple[str, str, str]:
    """Why the C reference could not check the export (a CheckReport with `skipped`): the Keras
    layers to blame, the ONNX ops, and the reason."""
    ops = [op.strip() for op in report.refused_op.split(",") if op.strip()]
    layers = keras_layers_of([node.name for node in model_proto.graph.node if node.op_type in ops], model)
    where = f"layer(s) {', '.join(layers)}" if layers else "the model"
    why = "not implemented" if "does not support operator" in report.skipped else report.skipped.split("): ", 1)[-1]
    return where, ", ".join(ops) or "?", why


def keras_scale_of(model: keras.Model) -> float:
    """What a graph input is multiplied by to feed the full Keras model (see `choose_normalisation`)."""
    return 255.0 if leading_unit_rescaling(model) is not None else 1.0


def keras_predictor(source: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The full Keras model of RUN_DIR or model.keras as a function of graph inputs (what
    `edgecnn.reference.check.check_model` takes as `keras_predict`)."""
    model = load_keras_model(read_run(source).model_path)
    scale = np.float32(keras_scale_of(model))
    return lambda x: np.asarray(model(x * scale, training=False))
