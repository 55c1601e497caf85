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


def _text_fonts(texts: Any) -> Any:
    """An rc_context whose font family falls back to an installed font for glyphs DejaVu Sans
    lacks in `texts` (Hangul class names), when there is one."""
    from matplotlib import font_manager, rc_context

    from edgecnn.fonts import find_font

    families = ["DejaVu Sans"]
    text = "".join(texts)
    font = find_font(text) if not text.isascii() else None
    if font is not None:
        font_manager.fontManager.addfont(str(font))
        families.append(font_manager.FontProperties(fname=str(font)).get_name())
    return rc_context({"font.family": families})


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


def predict_split(
    model: Any, dataset: Any, total: int, prepare: Any = lambda images: images
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]]:
    """Run `model` over a batched dataset of (pixels, label), each batch through `prepare` first:
    (labels, probabilities, [(index, pixels)] for an even spread)."""
    step = max(1, total // GRID_IMAGES)
    labels, probabilities = [], []
    kept: list[tuple[int, np.ndarray]] = []
    seen = 0
    for images, y in dataset:
        probabilities.append(model(prepare(images), training=False).numpy())
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
        pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
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


def plot_confusion(counts: np.ndarray, class_names: tuple[str, ...], split: str, path: Path) -> None:
    """The confusion matrix counts[true, predicted] of `split` as a picture, legible up to about 50
    classes: cells, fonts and counts shrink with the class count, and rows are coloured by
    their share so a small class shows as clearly as a large one."""
    with _text_fonts(class_names):
        _draw_confusion(counts, class_names, split, path)


def _draw_confusion(counts: np.ndarray, class_names: tuple[str, ...], split: str, path: Path) -> None:
    n = len(class_names)
    side = min(1.5 + 0.7 * n, 4.0 + 0.45 * n)
    font = 10 if n <= 12 else max(6.0, 10 - 0.08 * n)
    fig, ax = plt.subplots(figsize=(side, side))
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(counts):
        if value:
            ax.text(
                j,
                i,
                str(value),
                ha="center",
                va="center",
                fontsize=font,
                color="white" if shares[i, j] > 0.5 else "black",
            )
    ax.set_xticks(
        range(n), class_names, rotation=45 if n <= 12 else 90, ha="right" if n <= 12 else "center", fontsize=font
    )
    ax.set_yticks(range(n), class_names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{split} accuracy {np.trace(counts) / max(counts.sum(), 1):.4f}")
    _save(fig, path)


def plot_predictions(
    kept: list[tuple[int, np.ndarray]],
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    activation: str,
    split: str,
    path: Path,
) -> None:
    """A grid of `split` images titled true/predicted; wrong ones in red."""
    with _text_fonts(class_names):
        _draw_predictions(kept, labels, probabilities, class_names, activation, split, path)


def _draw_predictions(
    kept: list[tuple[int, np.ndarray]],
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    activation: str,
    split: str,
    path: Path,
) -> None:
    predicted = predicted_labels(probabilities, activation)
    cols = 6
    rows = max(1, (len(kept) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (index, image) in zip(axes.flat, kept, strict=False):  # the last row may have empty cells
        shown = image[:, :, 0] if image.shape[-1] == 1 else image
        ax.imshow(np.clip(shown / 255.0, 0, 1), cmap="gray" if shown.ndim == 2 else None)
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
    fig.suptitle(f"{split} images: true / predicted (wrong in red)")
    _save(fig, path)
