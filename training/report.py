"""Pictures of a training run: learning curves, confusion matrix, a grid of test predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from edgecnn.fileio import atomic_output, write_bytes_atomically
from edgecnn.labels import sample_file_name

GRID_IMAGES = 24


def _save(fig: Any, path: Path) -> None:
    try:
        with atomic_output(path) as temp:
            fig.savefig(temp, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)


def predicted_labels(probabilities: np.ndarray, activation: str) -> np.ndarray:
    """Class index per row: argmax for softmax, p > 0.5 for a single sigmoid output."""
    if activation == "sigmoid":
        return (probabilities.reshape(-1) > 0.5).astype(np.int64)
    return probabilities.argmax(axis=1)


def predict_split(model: Any, dataset: Any, total: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]]:
    """Run `model` over a batched dataset: (labels, probabilities, [(index, image)] for an even spread)."""
    step = max(1, total // GRID_IMAGES)
    labels, probabilities = [], []
    kept: list[tuple[int, np.ndarray]] = []
    seen = 0
    for images, y in dataset:
        probabilities.append(model(images, training=False).numpy())
        labels.append(np.asarray(y).reshape(-1).astype(np.int64))
        for i in range(len(images)):
            if (seen + i) % step == 0 and len(kept) < GRID_IMAGES:
                kept.append((seen + i, np.asarray(images[i])))
        seen += len(images)
    return np.concatenate(labels), np.concatenate(probabilities), kept


def write_samples(
    kept: list[tuple[int, np.ndarray]], labels: np.ndarray, class_names: tuple[str, ...], folder: Path, count: int = 12
) -> list[Path]:
    """Save some test images as PNG files named by edgecnn.labels.sample_file_name (inputs for a first
    edgecnn-infer run, which reads the true class back from the name)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, image in kept[:count]:
        pixels = image * 255.0 if image.max() <= 1.0 else image
        pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
        if pixels.shape[-1] == 3:
            pixels = pixels[:, :, ::-1]  # RGB -> BGR for OpenCV
        path = folder / sample_file_name(index, class_names[labels[index]])
        ok, encoded = cv2.imencode(".png", pixels)
        if not ok:
            raise ValueError(f"cannot encode test image {index} as PNG")
        write_bytes_atomically(path, encoded.tobytes())
        written.append(path)
    return written


def plot_curves(history: dict[str, list[float]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch, train vs validation."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        epochs = np.arange(1, len(history.get(key, [])) + 1)
        ax.plot(epochs, history.get(key, []), "o-", label=f"train {key}")
        ax.plot(epochs, history.get(f"val_{key}", []), "s-", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title}: training curves")
    _save(fig, path)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def plot_confusion(
    labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...], activation: str, path: Path
) -> np.ndarray:
    """Confusion matrix of the test split as a picture; returns the counts."""
    counts = confusion_matrix(labels, predicted_labels(probabilities, activation), len(class_names))
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 1.0 + 0.7 * n))
    ax.imshow(counts, cmap="Blues")
    for (i, j), value in np.ndenumerate(counts):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > counts.max() / 2 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test accuracy {np.trace(counts) / counts.sum():.4f}")
    _save(fig, path)
    return counts


def plot_predictions(
    kept: list[tuple[int, np.ndarray]],
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    activation: str,
    path: Path,
) -> None:
    """A grid of test images titled true/predicted; wrong ones in red."""
    predicted = predicted_labels(probabilities, activation)
    cols = 6
    rows = max(1, (len(kept) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (index, image) in zip(axes.flat, kept, strict=False):  # the last row may have empty cells
        shown = image[:, :, 0] if image.shape[-1] == 1 else image
        scale = 1.0 if shown.max() <= 1.0 else 255.0
        ax.imshow(np.clip(shown / scale, 0, 1), cmap="gray" if shown.ndim == 2 else None)
        wrong = predicted[index] != labels[index]
        ax.set_title(
            f"true {class_names[labels[index]]}\npred {class_names[predicted[index]]}",
            color="red" if wrong else "black",
            fontsize=8,
        )
        if wrong:
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color("red")
                spine.set_linewidth(3)
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("test images: true / predicted (wrong in red)")
    _save(fig, path)
