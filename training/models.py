"""The two tutorial architectures, registered by name."""

from __future__ import annotations

import keras
from keras import layers

from edgecnn.training import data
from edgecnn.training.registry import Recipe, register

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def build_fmnist() -> keras.Model:
    """Fashion-MNIST CNN: Conv32-Pool-Conv64-Pool-Dense100-Dropout-Dense10 on 28x28x1 in [0, 1]."""
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1), name="input"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(100, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(10, activation="softmax"),
        ],
        name="fmnist",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_catsdogs() -> keras.Model:
    """Cats-vs-dogs convnet from scratch (Deep Learning with Python, ch. 8) on 180x180x3 in [0, 255]."""
    model = keras.Sequential(
        [
            keras.Input((180, 180, 3), name="input"),
            layers.RandomFlip("horizontal"),
            layers.RandomRotation(0.1),
            layers.RandomZoom(0.2),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(256, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(256, 3, activation="relu"),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="catsdogs",
    )
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    return model


register(
    Recipe(
        name="fmnist",
        description="Fashion-MNIST CNN, 28x28 gray, 10 classes",
        build=build_fmnist,
        load_data=data.load_fashion_mnist,
        class_names=FASHION_MNIST_CLASSES,
        color="gray",
        resize="area",
        output_activation="softmax",
        epochs=20,
        batch_size=32,
        monitor="val_loss",
        early_stopping_patience=2,
    )
)

register(
    Recipe(
        name="catsdogs",
        description="cats-vs-dogs convnet from scratch, 180x180 RGB, sigmoid",
        build=build_catsdogs,
        load_data=data.load_image_folders,
        class_names=("cat", "dog"),
        color="rgb",
        resize="bilinear",
        output_activation="sigmoid",
        epochs=100,
        batch_size=32,
        monitor="val_loss",
    )
)
