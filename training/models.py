"""The registered architectures and recipes.

Architectures: the two tutorial CNNs (`fmnist-cnn`, and `convnet`, which at 180x180 is
exactly the cats-vs-dogs tutorial's), the book's mini-Xception, and four Keras
Applications bases under a new head. Recipes: `fmnist`, `catsdogs` and
`catsdogs-xception`, each an architecture plus its data and training settings.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import warnings
from pathlib import Path
from typing import Any

import keras
from keras import layers

from edgecnn.errors import EdgecnnError, first_line
from edgecnn.training.registry import Architecture, Recipe, register, register_architecture

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# The Korean names the Fashion-MNIST tutorial uses, in FASHION_MNIST_CLASSES order.
FASHION_MNIST_KOREAN = ("티셔츠", "바지", "스웨터", "드레스", "코트", "샌들", "셔츠", "스니커즈", "가방", "앵클부츠")
CATS_DOGS_CLASSES = ("cat", "dog")
CATS_DOGS_KOREAN = ("고양이", "개")


def head(num_classes: int) -> layers.Dense:
    """The output layer: one sigmoid unit for two classes (as the tutorial), else a softmax."""
    if num_classes == 2:
        return layers.Dense(1, activation="sigmoid")
    return layers.Dense(num_classes, activation="softmax")


def augmentation_layers(augmentation: str) -> list[layers.Layer]:
    """The augmentation layers of `augmentation` (registry.AUGMENTATIONS), on pixels in 0..255.

    tutorial: the cats-vs-dogs tutorial's flip, rotation by up to 10% and zoom by up to 20%.
    strong: for models beside the tutorial's, against the overfitting of small data sets:
    the tutorial's flip and rotation, zoom by up to 30%, shifts by up to 10%, contrast and
    brightness by up to 20%, and a random rectangle erased (2-25% of the image) in half the images.
    """
    if augmentation == "none":
        return []
    if augmentation == "tutorial":
        return [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.2)]
    return [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.3),
        layers.RandomTranslation(0.1, 0.1),
        layers.RandomContrast(0.2),
        layers.RandomBrightness(0.2),
        layers.RandomErasing(factor=0.5, scale=(0.02, 0.25)),
    ]


def _augmented(inputs: Any, augmentation: str) -> Any:
    found = augmentation_layers(augmentation)
    return keras.Sequential(found, name="augmentation")(inputs) if found else inputs


def _no_weights(name: str, weights: str | None) -> None:
    if weights is not None:
        raise EdgecnnError(f"{name} has no pretrained base; train it from scratch", parameter="weights")


def build_fmnist_cnn(
    num_classes: int, input_shape: tuple[int, int, int], weights: str | None = None, augmentation: str = "none"
) -> keras.Model:
    """The Fashion-MNIST tutorial CNN: Conv32-Pool-Conv64-Pool-Dense100-Dropout-Dense, on pixels / 255."""
    _no_weights("fmnist-cnn", weights)
    return keras.Sequential(
        [
            keras.Input(input_shape, name="input"),
            *augmentation_layers(augmentation),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(100, activation="relu"),
            layers.Dropout(0.2),
            head(num_classes),
        ],
        name="fmnist",
    )


CONVNET_MIN_FINAL = 3  # the last conv's output side: one more conv/pool pair is added while it stays this large


def convnet_stages(side: int) -> int:
    """Conv/pool pairs before the last conv on a `side`-pixel input (4 at 180, as the tutorial; 2 at 28)."""
    stages = 0
    while True:
        after = side
        for _ in range(stages + 1):
            after = (after - 2) // 2  # unpadded 3x3 conv, then 2x2 pool
        if after - 2 < CONVNET_MIN_FINAL:
            return stages
        stages += 1


def build_convnet(
    num_classes: int, input_shape: tuple[int, int, int], weights: str | None = None, augmentation: str = "tutorial"
) -> keras.Model:
    """The cats-vs-dogs tutorial's convnet (Deep Learning with Python, ch. 8) with its depth fitted
    to the input: unpadded 3x3 conv + 2x2 pool pairs with 32, 64, 128, 256, 256... filters while the
    last conv still outputs 3x3, then that conv, Flatten, Dropout 0.5 and the head. At 180x180 with
    two classes and the tutorial's augmentation it is the tutorial's model, layer for layer."""
    _no_weights("convnet", weights)
    stages = convnet_stages(min(input_shape[:2]))
    convs = []
    for stage in range(stages):
        convs += [layers.Conv2D(min(32 * 2**stage, 256), 3, activation="relu"), layers.MaxPooling2D(2)]
    return keras.Sequential(
        [
            keras.Input(input_shape, name="input"),
            *augmentation_layers(augmentation),
            layers.Rescaling(1.0 / 255),
            *convs,
            layers.Conv2D(min(32 * 2**stages, 256), 3, activation="relu"),
            layers.Flatten(),
            layers.Dropout(0.5),
            head(num_classes),
        ],
        name="convnet",
    )


def build_xception(
    num_classes: int,
    input_shape: tuple[int, int, int],
    weights: str | None = None,
    augmentation: str = "tutorial",
    stem_strides: int = 1,
) -> keras.Model:
    """Mini-Xception (Deep Learning with Python, 2nd ed., ch. 9) on pixels in 0..255.

    Five residual blocks of BatchNorm-ReLU-SeparableConv2D pairs with 32, 64, 128, 256,
    512 filters, each ending in a stride-2 max pool whose shortcut is a stride-2 1x1
    conv; global average pooling, Dropout 0.5 and the head. As in the book the 5x5 stem
    conv is unpadded with stride 1 by default, so at 180x180 the first block runs at
    176x176; `stem_strides` 2 (the `xception-s2` architecture) runs it at 88x88, 3.6x faster
    to train, and overfits harder under the tutorial's augmentation (over 60 epochs of the
    catsdogs-xception recipe, validation 0.882 and test only 0.853).
    """
    _no_weights("xception", weights)
    inputs = keras.Input(input_shape, name="input")
    x = _augmented(inputs, augmentation)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(32, 5, strides=stem_strides, use_bias=False)(x)
    for filters in (32, 64, 128, 256, 512):
        residual = x
        for _ in range(2):
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
            x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(residual)
        x = layers.add([x, residual])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.5)(x)
    return keras.Model(inputs, head(num_classes)(x), name="xception")


BASE_NAME = "base"  # the Keras Applications base inside a transfer model


def base_model(model: keras.Model) -> keras.Model | None:
    """The pretrained-able base (a nested Keras Applications model) of `model`, if it has one."""
    return next((layer for layer in model.layers if layer.name == BASE_NAME), None)


def load_base(name: str, constructor: Any, input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """keras.applications `constructor` without its top, global-average pooled, with `weights`;
    EdgecnnError when the ImageNet file cannot be fetched or a weights file does not fit."""
    if weights not in (None, "imagenet") and not Path(str(weights)).is_file():
        raise EdgecnnError("no such weights file", parameter="weights", value=weights)
    try:
        with warnings.catch_warnings():  # a file that does not fit warns once per layer before it fails
            warnings.simplefilter("ignore")
            return constructor(
                include_top=False, weights=weights, input_shape=input_shape, pooling="avg", name=BASE_NAME
            )
    except Exception as exc:  # noqa: BLE001  (Keras raises Exception for a failed fetch, ValueError for a misfit)
        text = first_line(exc)
        if weights == "imagenet":
            url = re.search(r"(https?://\S+?):? ", text + " ")
            where = url.group(1) if url else "the Keras Applications storage"
            raise EdgecnnError(
                f"cannot fetch {name}'s ImageNet weights {where.rsplit('/', 1)[-1]} from {where} ({text[-80:]}); "
                "download that file where there is a network and give its path as the weights",
                parameter="weights",
            ) from None
        raise EdgecnnError(f"does not fit {name}'s base ({text[:200]})", parameter="weights", value=weights) from None


def application(name: str, constructor_name: str) -> Any:
    """The architecture function of one Keras Applications base under a new head (the Keras
    transfer-learning guide: augmentation, the base, Dropout 0.2, the head). With pretrained
    weights every BatchNormalization layer is frozen, so it runs in inference mode in both phases."""

    def build(
        num_classes: int, input_shape: tuple[int, int, int], weights: str | None = None, augmentation: str = "tutorial"
    ) -> keras.Model:
        base = load_base(name, getattr(keras.applications, constructor_name), input_shape, weights)
        if weights is not None:
            for layer in base.layers:
                if isinstance(layer, layers.BatchNormalization):
                    layer.trainable = False
        inputs = keras.Input(input_shape, name="input")
        x = base(_augmented(inputs, augmentation))
        x = layers.Dropout(0.2)(x)
        return keras.Model(inputs, head(num_classes)(x), name=name)

    build.__doc__ = f"keras.applications.{constructor_name} without its top, under a new head."
    return build


XCEPTION_LABEL_SMOOTHING = 0.1
XCEPTION_PEAK_LR = 1e-3
XCEPTION_WARMUP_EPOCHS = 3


def warmup_cosine(epoch: int, epochs: int) -> float:
    """Learning rate of `epoch` (0-based) of `epochs`: linear warm-up, then cosine decay to 0."""
    if epoch < XCEPTION_WARMUP_EPOCHS:
        return XCEPTION_PEAK_LR * (epoch + 1) / XCEPTION_WARMUP_EPOCHS
    progress = (epoch - XCEPTION_WARMUP_EPOCHS) / max(1, epochs - XCEPTION_WARMUP_EPOCHS)
    return XCEPTION_PEAK_LR * 0.5 * (1 + math.cos(math.pi * progress))


OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}


def compile_for(model: keras.Model, recipe: Recipe, learning_rate: float | None = None) -> keras.Model:
    """Compile `model` as `recipe` trains it: its optimiser at `learning_rate` (default the recipe's),
    binary cross-entropy for one sigmoid unit, sparse categorical cross-entropy for a softmax."""
    rate = recipe.learning_rate if learning_rate is None else learning_rate
    binary = model.outputs[0].shape[-1] == 1
    if recipe.label_smoothing and not binary:
        raise EdgecnnError("label smoothing needs one sigmoid unit (two classes)", parameter="label_smoothing")
    loss: Any = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"  # as the tutorials name them
    if recipe.label_smoothing:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=recipe.label_smoothing)
    model.compile(optimizer=OPTIMIZERS[recipe.optimizer](rate), loss=loss, metrics=["accuracy"])
    return model


for _architecture in (
    Architecture(
        name="fmnist-cnn",
        description="the Fashion-MNIST tutorial's CNN (two same-padded conv/pool pairs, Dense 100)",
        build=build_fmnist_cnn,
        default_size=(28, 28),
        min_size=4,
        preprocess="unit",
    ),
    Architecture(
        name="convnet",
        description="the cats-vs-dogs tutorial's conv/pool stack, as deep as the input size allows",
        build=build_convnet,
        default_size=(180, 180),
        min_size=12,
    ),
    Architecture(
        name="xception",
        description="the book's residual mini-Xception (separable convs, BatchNorm)",
        build=build_xception,
        default_size=(180, 180),
        min_size=5,
        epochs=50,
    ),
    Architecture(
        name="xception-s2",
        description="mini-Xception with a stride-2 stem: a quarter of the compute",
        build=functools.partial(build_xception, stem_strides=2),
        default_size=(180, 180),
        min_size=9,
        epochs=50,
    ),
    Architecture(
        name="mobilenetv2",
        description="keras.applications.MobileNetV2 base, new head",
        build=application("mobilenetv2", "MobileNetV2"),
        default_size=(224, 224),
        min_size=32,
        colors=("rgb",),
        pretrained=True,
        preprocess="tf",
    ),
    Architecture(
        name="mobilenetv3small",
        description="keras.applications.MobileNetV3Small base (normalises its own input), new head",
        build=application("mobilenetv3small", "MobileNetV3Small"),
        default_size=(224, 224),
        min_size=32,
        colors=("rgb",),
        pretrained=True,
    ),
    Architecture(
        name="efficientnetb0",
        description="keras.applications.EfficientNetB0 base (normalises its own input), new head",
        build=application("efficientnetb0", "EfficientNetB0"),
        default_size=(224, 224),
        min_size=32,
        colors=("rgb",),
        pretrained=True,
    ),
    Architecture(
        name="resnet50",
        description="keras.applications.ResNet50 base (caffe preprocessing: BGR, mean subtracted), new head",
        build=application("resnet50", "ResNet50"),
        default_size=(224, 224),
        min_size=32,
        colors=("rgb",),
        pretrained=True,
        preprocess="caffe",
    ),
):
    register_architecture(_architecture)

register(
    Recipe(
        name="fmnist",
        description="Fashion-MNIST tutorial: fmnist-cnn on the IDX files, 28x28 gray, 10 classes",
        architecture="fmnist-cnn",
        data="fashion-mnist-idx",
        image_size=(28, 28),
        color="gray",
        resize="area",
        class_names=FASHION_MNIST_CLASSES,
        display_names={"ko": FASHION_MNIST_KOREAN},
        epochs=20,
        batch_size=32,
        monitor="val_loss",
        early_stopping_patience=2,
    )
)

register(
    Recipe(
        name="catsdogs",
        description="cats-vs-dogs tutorial: convnet from scratch, 180x180 RGB, sigmoid",
        architecture="convnet",
        data="folders",
        image_size=(180, 180),
        color="rgb",
        resize="bilinear",
        class_names=CATS_DOGS_CLASSES,
        display_names={"ko": CATS_DOGS_KOREAN},
        augmentation="tutorial",
        optimizer="rmsprop",
        epochs=100,
        batch_size=32,
        monitor="val_loss",
    )
)

CATSDOGS_XCEPTION = Recipe(
    # Adam with a 3-epoch warm-up and cosine decay, and label smoothing 0.1, against the
    # overfitting of 2,000 photos. AdamW instead (decoupled weight decay 0.3, BatchNorm and
    # biases exempt) settled 1.7 points higher on validation (0.889 over the last ten of 70
    # epochs) but no higher on test (0.876 against 0.878); so did a stride-2 stem with AdamW
    # over 100 epochs (validation 0.906, test 0.880).
    name="catsdogs-xception",
    description="residual mini-Xception for cats-vs-dogs, 180x180 RGB, sigmoid",
    architecture="xception",
    data="folders",
    image_size=(180, 180),
    color="rgb",
    resize="bilinear",
    class_names=CATS_DOGS_CLASSES,
    display_names={"ko": CATS_DOGS_KOREAN},
    augmentation="tutorial",
    learning_rate=XCEPTION_PEAK_LR,
    label_smoothing=XCEPTION_LABEL_SMOOTHING,
    schedule=warmup_cosine,
    epochs=70,
    batch_size=32,
    monitor="val_accuracy",
)
register(CATSDOGS_XCEPTION)

# The stride-2 stem's quarter of the compute buys epochs, and the strong augmentation
# (registry.AUGMENTATIONS) stands against the overfitting that held catsdogs-xception's
# test accuracy at 0.876-0.880 over its recipes; the rest is catsdogs-xception's.
register(
    dataclasses.replace(
        CATSDOGS_XCEPTION,
        name="catsdogs-xception-s2",
        description="mini-Xception, stride-2 stem, strong augmentation, 160 epochs; 180x180 RGB, sigmoid",
        architecture="xception-s2",
        augmentation="strong",
        epochs=160,
    )
)
