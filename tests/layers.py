"""The layer sweep's catalogue: every stock Keras 3 layer an image classifier can hold, each
in a small classifier (16x16 RGB in, 3 classes out) that the sweep exports, checks and
quantises. One case per row of docs/layers.md; `layer` is the Keras class (or activation
function) the row covers, `name` the variant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers

SIZE = 16
CLASSES = ("a", "b", "c")


@dataclass(frozen=True)
class LayerCase:
    """One row: a Keras layer (or activation) in one configuration, inside a small classifier."""

    name: str
    layer: str  # the keras.layers class or keras.activations function covered
    body: Callable[[keras.KerasTensor], keras.KerasTensor]  # image features -> features
    int8: bool = True  # --int8 applies: the graph has a convolution or dense layer to quantise


def _patches(x: keras.KerasTensor, width: int = 8) -> keras.KerasTensor:
    """A ViT's stem: 4x4 patches embedded by a strided convolution, as 16 tokens of `width`."""
    return layers.Reshape((16, width))(layers.Conv2D(width, 4, strides=4)(x))


def _sequence(x: keras.KerasTensor) -> keras.KerasTensor:
    """The image's rows as a sequence of 16 steps of 48 features (for the 1-D layers)."""
    return layers.Reshape((SIZE, SIZE * 3))(x)


def _conv(x: keras.KerasTensor, filters: int = 8) -> keras.KerasTensor:
    return layers.Conv2D(filters, 3, padding="same")(x)


def _activation_layer(function: str) -> Callable[[keras.KerasTensor], keras.KerasTensor]:
    return lambda x: layers.Activation(function)(_conv(x))


def _merge(layer: Callable[[], layers.Layer]) -> Callable[[keras.KerasTensor], keras.KerasTensor]:
    return lambda x: layer()([_conv(x), layers.Conv2D(8, 1)(x)])


def _vit_block(x: keras.KerasTensor, attention: str) -> keras.KerasTensor:
    """One pre-norm transformer encoder block over patch tokens, as Keras' ViT example builds it."""
    tokens = _patches(x, 16)
    normed = layers.LayerNormalization(epsilon=1e-6)(tokens)
    if attention == "mha":
        attended = layers.MultiHeadAttention(num_heads=2, key_dim=8)(normed, normed)
    elif attention == "gqa":
        attended = layers.GroupQueryAttention(head_dim=8, num_query_heads=4, num_key_value_heads=2)(normed, normed)
    else:
        query, value = layers.Dense(16)(normed), layers.Dense(16)(normed)
        attended = (layers.Attention if attention == "dot" else layers.AdditiveAttention)()([query, value])
    tokens = layers.Add()([tokens, attended])
    hidden = layers.Dense(32, activation="gelu")(layers.LayerNormalization(epsilon=1e-6)(tokens))
    return layers.Add()([tokens, layers.Dense(16)(hidden)])


ACTIVATIONS = (
    "celu",
    "elu",
    "exponential",
    "gelu",
    "hard_shrink",
    "hard_sigmoid",
    "hard_silu",
    "hard_tanh",
    "leaky_relu",
    "linear",
    "log_sigmoid",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "soft_shrink",
    "softmax",
    "softplus",
    "softsign",
    "sparse_plus",
    "sparse_sigmoid",
    "sparsemax",
    "squareplus",
    "tanh",
    "tanh_shrink",
)
# Not in the sweep: keras.activations.threshold needs arguments (no layer can name it), and glu
# halves the channel axis, which Activation's output shape (the input's) cannot say: Keras itself
# fails on it.

CASES: tuple[LayerCase, ...] = (
    # convolutions
    LayerCase("Conv2D", "Conv2D", lambda x: layers.Conv2D(8, 3)(x)),
    LayerCase("Conv2D strides=2 same", "Conv2D", lambda x: layers.Conv2D(8, 3, strides=2, padding="same")(x)),
    LayerCase("Conv2D dilation=2", "Conv2D", lambda x: layers.Conv2D(8, 3, dilation_rate=2, padding="same")(x)),
    LayerCase("Conv2D groups=2", "Conv2D", lambda x: layers.Conv2D(8, 3, groups=2)(_conv(x))),
    LayerCase("Conv2D 5x1 no bias", "Conv2D", lambda x: layers.Conv2D(8, (5, 1), use_bias=False)(x)),
    LayerCase("DepthwiseConv2D", "DepthwiseConv2D", lambda x: layers.DepthwiseConv2D(3, depth_multiplier=2)(x)),
    LayerCase("SeparableConv2D", "SeparableConv2D", lambda x: layers.SeparableConv2D(8, 3, padding="same")(x)),
    LayerCase("Conv2DTranspose", "Conv2DTranspose", lambda x: layers.Conv2DTranspose(8, 3, strides=2)(x)),
    LayerCase(
        "Conv2DTranspose same", "Conv2DTranspose", lambda x: layers.Conv2DTranspose(8, 3, strides=2, padding="same")(x)
    ),
    LayerCase("Conv1D", "Conv1D", lambda x: layers.Conv1D(8, 3)(_sequence(x))),
    LayerCase("Conv1D causal", "Conv1D", lambda x: layers.Conv1D(8, 3, padding="causal")(_sequence(x))),
    LayerCase("DepthwiseConv1D", "DepthwiseConv1D", lambda x: layers.DepthwiseConv1D(3)(_sequence(x))),
    LayerCase("SeparableConv1D", "SeparableConv1D", lambda x: layers.SeparableConv1D(8, 3)(_sequence(x))),
    LayerCase("Conv1DTranspose", "Conv1DTranspose", lambda x: layers.Conv1DTranspose(8, 3)(_sequence(x))),
    # pooling
    LayerCase("MaxPooling2D", "MaxPooling2D", lambda x: layers.MaxPooling2D()(_conv(x))),
    LayerCase("MaxPooling2D 3/2 same", "MaxPooling2D", lambda x: layers.MaxPooling2D(3, 2, padding="same")(_conv(x))),
    LayerCase("AveragePooling2D", "AveragePooling2D", lambda x: layers.AveragePooling2D(2)(_conv(x))),
    LayerCase(
        "AveragePooling2D 3/2 same",
        "AveragePooling2D",
        lambda x: layers.AveragePooling2D(3, 2, padding="same")(_conv(x)),
    ),
    LayerCase("GlobalAveragePooling2D", "GlobalAveragePooling2D", lambda x: layers.GlobalAveragePooling2D()(_conv(x))),
    LayerCase(
        "GlobalAveragePooling2D keepdims",
        "GlobalAveragePooling2D",
        lambda x: layers.Flatten()(layers.GlobalAveragePooling2D(keepdims=True)(_conv(x))),
    ),
    LayerCase("GlobalMaxPooling2D", "GlobalMaxPooling2D", lambda x: layers.GlobalMaxPooling2D()(_conv(x))),
    LayerCase(
        "GlobalMaxPooling2D keepdims",
        "GlobalMaxPooling2D",
        lambda x: layers.Flatten()(layers.GlobalMaxPooling2D(keepdims=True)(_conv(x))),
    ),
    LayerCase("MaxPooling1D", "MaxPooling1D", lambda x: layers.MaxPooling1D()(_sequence(x))),
    LayerCase("AveragePooling1D", "AveragePooling1D", lambda x: layers.AveragePooling1D(2)(_sequence(x))),
    LayerCase("GlobalMaxPooling1D", "GlobalMaxPooling1D", lambda x: layers.GlobalMaxPooling1D()(_sequence(x))),
    LayerCase(
        "GlobalAveragePooling1D", "GlobalAveragePooling1D", lambda x: layers.GlobalAveragePooling1D()(_sequence(x))
    ),
    LayerCase(
        "AdaptiveAveragePooling2D", "AdaptiveAveragePooling2D", lambda x: layers.AdaptiveAveragePooling2D(4)(_conv(x))
    ),
    LayerCase("AdaptiveMaxPooling2D", "AdaptiveMaxPooling2D", lambda x: layers.AdaptiveMaxPooling2D(4)(_conv(x))),
    # normalisation
    LayerCase("BatchNormalization", "BatchNormalization", lambda x: layers.BatchNormalization()(_conv(x))),
    LayerCase("LayerNormalization", "LayerNormalization", lambda x: layers.LayerNormalization()(_conv(x))),
    LayerCase(
        "LayerNormalization over H,W,C",
        "LayerNormalization",
        lambda x: layers.LayerNormalization(axis=(1, 2, 3))(_conv(x)),
    ),
    LayerCase("GroupNormalization", "GroupNormalization", lambda x: layers.GroupNormalization(4)(_conv(x))),
    LayerCase("UnitNormalization", "UnitNormalization", lambda x: layers.UnitNormalization()(_conv(x))),
    LayerCase("RMSNormalization", "RMSNormalization", lambda x: layers.RMSNormalization()(_conv(x))),
    # activation layers
    LayerCase("ReLU", "ReLU", lambda x: layers.ReLU()(_conv(x))),
    LayerCase(
        "ReLU max_value=6 threshold=0.1 negative_slope=0.2",
        "ReLU",
        lambda x: layers.ReLU(max_value=6.0, threshold=0.1, negative_slope=0.2)(_conv(x)),
    ),
    LayerCase("LeakyReLU", "LeakyReLU", lambda x: layers.LeakyReLU(0.2)(_conv(x))),
    LayerCase("PReLU", "PReLU", lambda x: layers.PReLU(shared_axes=(1, 2))(_conv(x))),
    LayerCase("ELU", "ELU", lambda x: layers.ELU(0.5)(_conv(x))),
    LayerCase("Softmax axis=-1", "Softmax", lambda x: layers.Softmax()(_conv(x))),
    LayerCase("Softmax axis=1", "Softmax", lambda x: layers.Softmax(axis=1)(_conv(x))),
    *(LayerCase(f"Activation {f}", f, _activation_layer(f)) for f in ACTIVATIONS),
    # merges
    LayerCase("Add", "Add", _merge(layers.Add)),
    LayerCase("Subtract", "Subtract", _merge(layers.Subtract)),
    LayerCase("Multiply", "Multiply", _merge(layers.Multiply)),
    LayerCase("Average", "Average", _merge(layers.Average)),
    LayerCase("Maximum", "Maximum", _merge(layers.Maximum)),
    LayerCase("Minimum", "Minimum", _merge(layers.Minimum)),
    LayerCase("Concatenate", "Concatenate", _merge(layers.Concatenate)),
    LayerCase("Dot", "Dot", lambda x: layers.Dot(axes=2)([_patches(x), _patches(x)])),
    # shape
    LayerCase("ZeroPadding2D", "ZeroPadding2D", lambda x: _conv(layers.ZeroPadding2D(((1, 2), (3, 0)))(x))),
    LayerCase("Cropping2D", "Cropping2D", lambda x: _conv(layers.Cropping2D(((1, 2), (3, 0)))(x))),
    LayerCase("UpSampling2D nearest", "UpSampling2D", lambda x: _conv(layers.UpSampling2D()(x))),
    LayerCase(
        "UpSampling2D bilinear", "UpSampling2D", lambda x: _conv(layers.UpSampling2D(interpolation="bilinear")(x))
    ),
    LayerCase("Resizing bilinear", "Resizing", lambda x: _conv(layers.Resizing(12, 20)(x))),
    LayerCase("Resizing nearest", "Resizing", lambda x: _conv(layers.Resizing(12, 20, interpolation="nearest")(x))),
    LayerCase("Flatten", "Flatten", lambda x: layers.Flatten()(_conv(x))),
    LayerCase("Reshape", "Reshape", lambda x: layers.Reshape((32, 64))(_conv(x))),
    LayerCase("Permute", "Permute", lambda x: _conv(layers.Permute((2, 1, 3))(x))),
    LayerCase("RepeatVector", "RepeatVector", lambda x: layers.RepeatVector(3)(layers.GlobalAveragePooling2D()(x))),
    LayerCase("ZeroPadding1D", "ZeroPadding1D", lambda x: layers.ZeroPadding1D(2)(_sequence(x))),
    LayerCase("Cropping1D", "Cropping1D", lambda x: layers.Cropping1D(2)(_sequence(x))),
    LayerCase("UpSampling1D", "UpSampling1D", lambda x: layers.UpSampling1D(2)(_sequence(x))),
    LayerCase("Identity", "Identity", lambda x: layers.Identity()(_conv(x))),
    # preprocessing
    LayerCase("Rescaling", "Rescaling", lambda x: _conv(layers.Rescaling(1 / 127.5, offset=-1)(x))),
    LayerCase(
        "Normalization",
        "Normalization",
        lambda x: _conv(layers.Normalization(mean=[120, 110, 100], variance=[900] * 3)(x)),
    ),
    LayerCase("CenterCrop", "CenterCrop", lambda x: _conv(layers.CenterCrop(12, 10)(x))),
    # regularisation (inference: the identity)
    LayerCase("Dropout", "Dropout", lambda x: layers.Dropout(0.5)(_conv(x))),
    LayerCase("SpatialDropout2D", "SpatialDropout2D", lambda x: layers.SpatialDropout2D(0.5)(_conv(x))),
    LayerCase("GaussianNoise", "GaussianNoise", lambda x: layers.GaussianNoise(0.5)(_conv(x))),
    LayerCase("GaussianDropout", "GaussianDropout", lambda x: layers.GaussianDropout(0.5)(_conv(x))),
    LayerCase("AlphaDropout", "AlphaDropout", lambda x: layers.AlphaDropout(0.5)(_conv(x))),
    LayerCase(
        "ActivityRegularization", "ActivityRegularization", lambda x: layers.ActivityRegularization(0.1)(_conv(x))
    ),
    # dense and attention
    LayerCase("Dense on a feature map", "Dense", lambda x: layers.Dense(8)(_conv(x))),
    LayerCase(
        "EinsumDense", "EinsumDense", lambda x: layers.EinsumDense("btc,cd->btd", (16, 8), bias_axes="d")(_patches(x))
    ),
    LayerCase("MultiHeadAttention (ViT block)", "MultiHeadAttention", lambda x: _vit_block(x, "mha")),
    LayerCase("GroupQueryAttention", "GroupQueryAttention", lambda x: _vit_block(x, "gqa")),
    LayerCase("Attention", "Attention", lambda x: _vit_block(x, "dot")),
    LayerCase("AdditiveAttention", "AdditiveAttention", lambda x: _vit_block(x, "additive")),
)


def classifier(case: LayerCase) -> keras.Model:
    """SIZE x SIZE RGB pixels in [0, 255] -> Rescaling(1/255) -> the case's body -> global pooling
    (or flattening) -> Dense softmax over CLASSES."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = case.body(layers.Rescaling(1 / 255)(inputs))
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D()(x)
    elif len(x.shape) == 3:
        x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(len(CLASSES), activation="softmax")(x)
    return keras.Model(inputs, outputs, name=case.name.split()[0].lower())
