"""The model zoo the exporter and the C reference are tested on: Keras image classifiers a
user brings, with random weights (no downloads) and BatchNorm statistics that are not the
identity. Each entry says how it is exported (`--preprocess`, `--input-size`, class names)
and how a user would feed it in Keras (`keras_preprocess`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

SIZE = 96
CLASSES = ("a", "b", "c")


@dataclass(frozen=True)
class ZooModel:
    """A builder plus what edgecnn-export needs to know about it."""

    name: str
    build: Callable[[], keras.Model]
    export_args: tuple[str, ...] = ()
    class_names: tuple[str, ...] = CLASSES
    keras_preprocess: str | None = None  # the keras.applications module whose preprocess_input a user calls


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found += _all_layers(layer)
    return found


def calibrate(model: keras.Model, seed: int = 0) -> keras.Model:
    """BatchNorm that is not the identity, and logits of a trained model's magnitude.

    Every BatchNormalization gets random gamma/beta and the moving statistics of one
    calibration batch (so activations stay O(1) through fifty layers); then the last
    Dense/Conv is scaled so the logits have standard deviation 1 on that batch. A random
    ResNet50 otherwise gives logits near 10, where the float32 rounding by which any two
    summation orders differ (onnxruntime vs C: 1e-4 relative deep in the network) moves
    the probabilities by more than 1e-5.
    """
    rng = np.random.default_rng(seed)
    norms = [layer for layer in _all_layers(model) if isinstance(layer, layers.BatchNormalization)]
    for layer in norms:
        if layer.gamma is not None:
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype(np.float32))
        if layer.beta is not None:
            layer.beta.assign(rng.normal(0.0, 0.2, layer.beta.shape).astype(np.float32))
        layer.momentum = 0.0
    size = model.inputs[0].shape[1] or SIZE
    batch = rng.uniform(0, 255, (4, size, size, 3)).astype(np.float32)
    model(batch, training=True)
    for layer in norms:
        layer.momentum = 0.99
    classifier = [layer for layer in _all_layers(model) if getattr(layer, "kernel", None) is not None][-1]
    kernel = np.asarray(classifier.kernel)  # Dense (in, out) or a 1x1 Conv2D (1, 1, in, out)
    features = (
        np.asarray(keras.Model(model.inputs, classifier.input)(batch, training=False))
        if classifier in model.layers
        else None
    )
    if features is not None:
        logits = features.reshape(-1, kernel.shape[-2]) @ kernel.reshape(-1, kernel.shape[-1])
        scale = np.float32(1.0 / max(float(logits.std()), 1e-6))
        classifier.kernel.assign(kernel * scale)
        if classifier.bias is not None:
            classifier.bias.assign(np.asarray(classifier.bias) * scale)
    return model


def application(name: str, **kw) -> Callable[[], keras.Model]:
    def build() -> keras.Model:
        keras.utils.set_random_seed(1)
        model = getattr(keras.applications, name)(weights=None, input_shape=(SIZE, SIZE, 3), classes=len(CLASSES), **kw)
        return calibrate(model)

    return build


def hand_written(input_size: int | None = SIZE) -> keras.Model:
    """Residual Add, Concatenate, squeeze-and-excitation Multiply, in-model Rescaling(1/127.5, offset=-1),
    DepthwiseConv2D, SeparableConv2D, ReLU6, hard-swish, swish, SpatialDropout2D, Dropout."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    residual = x
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("hard_swish")(x)
    x = layers.SeparableConv2D(16, 3, padding="same")(x)
    x = layers.add([x, residual])
    branch = layers.Conv2D(8, 1, activation="swish")(x)
    x = layers.Concatenate()([x, branch])
    squeeze = layers.GlobalAveragePooling2D(keepdims=True)(x)
    squeeze = layers.Conv2D(6, 1, activation="relu")(squeeze)
    squeeze = layers.Conv2D(24, 1, activation="sigmoid")(squeeze)
    x = layers.Multiply()([x, squeeze])
    x = layers.SpatialDropout2D(0.1)(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(len(CLASSES), activation="softmax")(x)
    return calibrate(keras.Model(inputs, outputs, name="handwritten"))


def transfer_learning() -> keras.Model:
    """The Keras transfer-learning tutorial's shape: augmentation, preprocessing, a base without
    its top, pooling, dropout and one sigmoid unit."""
    keras.utils.set_random_seed(3)
    base = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False, weights=None, alpha=0.35)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)], name="augmentation"),
            layers.Rescaling(1 / 127.5, offset=-1),
            base,
            layers.GlobalAveragePooling2D(),
            layers.Dropout(0.2),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="transfer",
    )
    return calibrate(model)


ZOO = {
    entry.name: entry
    for entry in (
        ZooModel(
            "mobilenet_v2",
            application("MobileNetV2", alpha=0.35),
            ("--preprocess", "tf"),
            keras_preprocess="mobilenet_v2",
        ),
        ZooModel("mobilenet_v3_small", application("MobileNetV3Small")),
        ZooModel("efficientnet_b0", application("EfficientNetB0")),
        ZooModel(
            "resnet50_logits",
            application("ResNet50", classifier_activation=None),
            ("--preprocess", "caffe"),
            keras_preprocess="resnet50",
        ),
        ZooModel("densenet121", application("DenseNet121"), ("--preprocess", "torch"), keras_preprocess="densenet"),
        ZooModel("xception", application("Xception"), ("--preprocess", "tf"), keras_preprocess="xception"),
        ZooModel("handwritten_any_size", lambda: hand_written(None), ("--input-size", f"{SIZE}x{SIZE}")),
        ZooModel("transfer_learning", transfer_learning, class_names=("cat", "dog")),
    )
}
