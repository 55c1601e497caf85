"""Keras Applications (weights=None) and a hand-written functional model, converted to ONNX
as tf2onnx emits them, for the C reference's zoo tests and benchmark.

    python tests/keras_zoo.py [--out /work/zoo-onnx] [--size 96] [NAME ...]

writes OUT/NAME.onnx and prints each graph's op set with the attributes that decide
whether the C reference can run it (Conv group, Pad mode, Clip bounds, ReduceMean axes,
Concat axis, the operand shapes of Add/Mul/Sub/Div). BatchNormalization is never the
identity: gamma/beta are random and the moving statistics are those of a calibration
batch, so activations stay O(1) through fifty layers. The classifier is scaled to logits
of standard deviation 1 on that batch, as a trained model's are in order of magnitude: a
random ResNet50 otherwise gives logits near 10, where the float32 rounding that any two
summation orders differ by (onnxruntime vs C: 1e-4 relative deep in ResNet50) moves the
probabilities by 1e-5.
Imports TensorFlow (only inside functions; importing this module is cheap).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

ZOO_DIR = Path("/work/zoo-onnx")
OPSET = 17
CLASSES = 3
MIN_SIZE = {"xception": 71}  # keras.applications refuses smaller inputs


def _applications(size: int) -> dict[str, Callable]:
    import keras

    apps = keras.applications
    shape = (size, size, 3)
    common = {"weights": None, "input_shape": shape, "classes": CLASSES}
    return {
        "mobilenetv2": lambda: apps.MobileNetV2(alpha=0.35, **common),
        "mobilenetv3small": lambda: apps.MobileNetV3Small(**common),
        "efficientnetb0": lambda: apps.EfficientNetB0(**common),
        "resnet50": lambda: apps.ResNet50(**common),
        "densenet121": lambda: apps.DenseNet121(**common),
        "xception": lambda: apps.Xception(**common),
        "functional": lambda: functional_model(shape),
    }


NAMES = ("mobilenetv2", "mobilenetv3small", "efficientnetb0", "resnet50", "densenet121", "xception", "functional")


def functional_model(shape: tuple[int, int, int]):
    """Rescaling(1/127.5, -1) -> stem -> residual Add, Concatenate, squeeze-and-excitation Multiply -> softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape)
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = layers.Conv2D(16, 3, strides=2, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    residual = x
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("hard_swish")(x)
    x = layers.Conv2D(16, 1)(x)
    x = layers.add([x, residual])
    branch = layers.SeparableConv2D(8, 3, padding="same", activation="swish")(x)
    pooled = layers.AveragePooling2D(3, strides=1, padding="same")(x)
    x = layers.Concatenate()([branch, pooled])  # 24 channels
    se = layers.GlobalAveragePooling2D(keepdims=True)(x)
    se = layers.Conv2D(6, 1, activation="relu")(se)
    se = layers.Conv2D(24, 1, activation="sigmoid")(se)
    x = layers.Multiply()([x, se])
    x = layers.Conv2D(20, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="functional_se")


def _all_layers(model) -> list:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found += _all_layers(layer)
    return found


def calibrate(model, size: int, seed: int = 0) -> None:
    """BatchNorm: random gamma/beta, then moving statistics = one calibration batch's (momentum 0 for
    one call); then the classifier scaled to logits of standard deviation 1 on that batch."""
    rng = np.random.default_rng(seed)
    norms = [layer for layer in _all_layers(model) if type(layer).__name__ == "BatchNormalization"]
    for layer in norms:
        if layer.gamma is not None:
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype(np.float32))
        if layer.beta is not None:
            layer.beta.assign(rng.normal(0.0, 0.2, layer.beta.shape).astype(np.float32))
        layer.momentum = 0.0
    batch = rng.uniform(0, 255, (4, size, size, 3)).astype(np.float32)
    model(batch, training=True)
    for layer in norms:
        layer.momentum = 0.99
    import keras

    classifier = [layer for layer in _all_layers(model) if getattr(layer, "kernel", None) is not None][-1]
    kernel = np.asarray(classifier.kernel)  # Dense (in, out) or a 1x1 Conv2D (1, 1, in, out)
    features = np.asarray(keras.Model(model.inputs, classifier.input)(batch, training=False))
    logits = features.reshape(-1, kernel.shape[-2]) @ kernel.reshape(-1, kernel.shape[-1])
    scale = np.float32(1.0 / max(float(logits.std()), 1e-6))
    classifier.kernel.assign(kernel * scale)
    if classifier.bias is not None:
        classifier.bias.assign(np.asarray(classifier.bias) * scale)


def build(name: str, size: int):
    """The Keras model `name` at size x size x 3 (raised to the architecture's minimum), calibrated."""
    import keras

    apps = _applications(max(size, MIN_SIZE.get(name, 0)))
    if name not in apps:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(NAMES)}")
    keras.utils.set_random_seed(len(name))
    model = apps[name]()
    calibrate(model, model.input_shape[1])
    return model


def to_onnx(model, opset: int = OPSET) -> onnx.ModelProto:
    """tf2onnx from_function over model(x, training=False), dynamic batch (as training/export.py::convert).

    tf2onnx freezes variables but leaves captured constant tensors (Keras' Normalization
    mean and variance, as in EfficientNet) as extra graph inputs; they become initializers
    (or go, when constant folding left them unread).
    """
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="input"),)

    @tf.function(input_signature=signature)
    def forward(x):
        return model(x, training=False)

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=signature, opset=opset)
    captured = {internal.name: external.numpy() for external, internal in forward.get_concrete_function().graph.captures
                if external.dtype != tf.resource}
    read = {name for node in proto.graph.node for name in node.input}
    for value in [v for v in proto.graph.input if v.name != "input" and (v.name in captured or v.name not in read)]:
        if value.name in read:
            proto.graph.initializer.append(numpy_helper.from_array(captured[value.name], value.name))
        proto.graph.input.remove(value)
    extra = [v.name for v in proto.graph.input if v.name != "input"]
    if extra:
        raise RuntimeError(f"{model.name}: tf2onnx left graph inputs {extra} that are no captured constants")
    return proto


def write_zoo(folder: Path, size: int, names: tuple[str, ...] = NAMES) -> dict[str, Path]:
    """NAME -> folder/NAME.onnx, converting only the files that are missing."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        path = folder / f"{name}.onnx"
        if not path.is_file():
            tmp = path.with_suffix(".onnx.tmp")
            onnx.save_model(to_onnx(build(name, size)), tmp)
            tmp.replace(path)
        paths[name] = path
    return paths


def _dims(value_info: onnx.ValueInfoProto) -> str:
    dims = value_info.type.tensor_type.shape.dim
    return "(" + ",".join(str(d.dim_value) if d.HasField("dim_value") else "N" for d in dims) + ")"


def op_signatures(model: onnx.ModelProto) -> Counter:
    """Counter of 'Op attr=value ...' strings: the op set with the attributes that matter."""
    inferred = shape_inference.infer_shapes(model)
    graph = inferred.graph
    shapes = {v.name: _dims(v) for v in (*graph.input, *graph.value_info, *graph.output)}
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    for t in graph.initializer:
        shapes[t.name] = "(" + ",".join(map(str, t.dims)) + ")"

    def const(name: str) -> str:
        value = constants.get(name)
        return "dynamic" if value is None else np.array2string(value.reshape(-1)[:8], separator=",")

    signatures: Counter = Counter()
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        text = node.op_type
        if node.op_type == "Conv":
            weights = constants.get(node.input[1])
            group = attrs.get("group", 1)
            depthwise = weights is not None and group > 1 and weights.shape[1] == 1
            text += f" group={'channels' if depthwise else group} k={list(attrs.get('kernel_shape', []))}"
            text += f" auto_pad={attrs.get('auto_pad', b'NOTSET').decode()} dil={list(attrs.get('dilations', [1, 1]))}"
        elif node.op_type == "Pad":
            text += f" mode={attrs.get('mode', b'constant').decode()} pads={const(node.input[1])}"
            text += f" value={const(node.input[2]) if len(node.input) > 2 and node.input[2] else 0}"
        elif node.op_type == "Clip":
            text += " " + " ".join(f"{k}={const(node.input[i]) if len(node.input) > i and node.input[i] else None}"
                                   for i, k in ((1, "min"), (2, "max")))
        elif node.op_type in ("ReduceMean", "GlobalAveragePool"):
            text += f" axes={list(attrs.get('axes', []))} keepdims={attrs.get('keepdims', 1)}"
        elif node.op_type in ("Concat", "Softmax", "Flatten", "Gather"):
            text += f" axis={attrs.get('axis')}"
        elif node.op_type in ("Add", "Mul", "Sub", "Div"):
            text += " " + " x ".join(shapes.get(i, "?") for i in node.input)
        elif node.op_type in ("Cast", "HardSigmoid", "LeakyRelu", "Transpose", "MaxPool", "AveragePool"):
            text += " " + " ".join(f"{k}={v.decode() if isinstance(v, bytes) else v}" for k, v in sorted(attrs.items()))
        signatures[text] += 1
    return signatures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(NAMES), help="zoo models (default: all)")
    parser.add_argument("--out", type=Path, default=ZOO_DIR, help="folder for NAME.onnx (default: %(default)s)")
    parser.add_argument("--size", type=int, default=96, help="input height and width (default: %(default)s)")
    args = parser.parse_args(argv)
    for name, path in write_zoo(args.out, args.size, tuple(args.names)).items():
        model = onnx.load(path)
        print(f"== {name}: {path} ({path.stat().st_size / 1e6:.1f} MB, {len(model.graph.node)} nodes)")
        for text, count in sorted(op_signatures(model).items()):
            print(f"  {count:>4}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
