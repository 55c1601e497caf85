"""Labelled and calibration images for a model, preprocessed exactly as the runtime does,
and the comparison of two models' predictions on them (accuracy, top-1 agreement, max |Δp|).

A labelled folder is either a data set root holding train/, validation/ (or val/) and test/
(the split that is asked for is read: train/ to calibrate, test/ or else validation/ to
validate), one sub-folder per class (named as the spec's class names,
or as many folders as classes, labelled in sorted order as `image_dataset_from_directory`
labels them) or a Fashion-MNIST folder of IDX `.gz` files. Images are decoded by `edgecnn.sources` and preprocessed by
`edgecnn.preprocess.to_batch` with the spec's settings, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.datasets import IDX_FILES
from edgecnn.errors import EdgecnnError
from edgecnn.preprocess import to_batch
from edgecnn.sources import expand_image_paths, read_idx, read_image
from edgecnn.spec import ModelSpec

CHUNK = 64
# The folders of a split-layout data set root (edgecnn-train's), and which of them each split reads, first found first.
SPLIT_FOLDERS = ("train", "validation", "val", "test")
SPLIT_READS = {"train": ("train",), "test": ("test", "validation", "val")}

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ImageSet:
    """Images to feed a model: IDX frames in memory or image files, with labels when known."""

    where: str
    frames: np.ndarray | None = None  # (N, H, W) uint8 from IDX
    paths: tuple[Path, ...] = ()
    labels: np.ndarray | None = None  # (N,) int64, or None when unlabelled

    def __len__(self) -> int:
        return len(self.frames) if self.frames is not None else len(self.paths)

    @property
    def known_labels(self) -> np.ndarray:
        """The (N,) labels; EdgecnnError when the images are not labelled."""
        if self.labels is None:
            raise EdgecnnError(f"{self.where}: the images are not labelled")
        return self.labels

    def subset(self, index: np.ndarray) -> ImageSet:
        labels = None if self.labels is None else self.labels[index]
        if self.frames is not None:
            return ImageSet(self.where, frames=self.frames[index], labels=labels)
        return ImageSet(self.where, paths=tuple(self.paths[i] for i in index), labels=labels)

    def decoded(self, chunk: int = CHUNK) -> Iterator[tuple[list[np.ndarray], np.ndarray | None]]:
        """(decoded uint8 frames, labels or None), chunk by chunk."""
        for start in range(0, len(self), chunk):
            stop = min(start + chunk, len(self))
            frames = (
                list(self.frames[start:stop])
                if self.frames is not None
                else [read_image(p) for p in self.paths[start:stop]]
            )
            yield frames, None if self.labels is None else self.labels[start:stop]

    def batches(self, spec: ModelSpec, chunk: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(the graph's input batch as the runtime preprocesses it for `spec`, labels or None), chunk by chunk."""
        for frames, labels in self.decoded(chunk):
            yield to_batch(frames, src_order="bgr", **spec.preprocess_args()), labels


def load_images(folder: Path, spec: ModelSpec, split: str = "test", need_labels: bool = False) -> ImageSet:
    """The images in `folder` for `spec`: an IDX folder (its `split` files, else the other
    split's), class sub-folders (labelled), or any image files (unlabelled)."""
    folder = Path(folder)
    if not folder.exists():
        raise EdgecnnError(f"{folder}: no such file or directory")
    for name in (split, *(s for s in IDX_FILES if s != split)):
        images, labels = (folder / f for f in IDX_FILES[name])
        if images.is_file():
            frames = read_idx(images, ndim=(3,))
            y = read_idx(labels, ndim=(1,)).astype(np.int64) if labels.is_file() else None
            if y is not None and len(y) != len(frames):
                raise EdgecnnError(f"{labels}: {len(y)} labels for {len(frames)} images")
            if need_labels and y is None:
                raise EdgecnnError(f"{folder}: {images.name} has no {labels.name} beside it")
            return ImageSet(str(images), frames=frames, labels=y)
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
    if "train" in classes and set(classes) <= set(SPLIT_FOLDERS):  # a data set root: read the split's folder
        chosen = next((name for name in SPLIT_READS.get(split, (split,)) if name in classes), "train")
        return load_images(folder / chosen, spec, split, need_labels)
    if classes and (set(classes) <= set(spec.class_names) or len(classes) == len(spec.class_names)):
        # Folders named as the classes; otherwise one folder per class in sorted order, the
        # order image_dataset_from_directory gives them labels (cats/ dogs/ -> cat, dog).
        named = set(classes) <= set(spec.class_names)
        paths: list[Path] = []
        labels_list: list[int] = []
        for i, name in enumerate(classes):
            found = expand_image_paths([folder / name])
            paths += found
            labels_list += [spec.class_names.index(name) if named else i] * len(found)
        return ImageSet(str(folder), paths=tuple(paths), labels=np.asarray(labels_list, dtype=np.int64))
    if need_labels:
        raise EdgecnnError(
            f"{folder}: not labelled (needs one folder per class named {', '.join(spec.class_names)}, "
            f"or Fashion-MNIST IDX files); found {classes or 'no sub-folders'}"
        )
    return ImageSet(str(folder), paths=tuple(expand_image_paths([folder])))


def draw(images: ImageSet, count: int, seed: int = 0) -> ImageSet:
    """`count` images drawn without replacement by a seeded generator, in their original order
    (all of them when there are fewer)."""
    if count < 1:
        raise EdgecnnError(f"image count must be >= 1, got {count}")
    if count >= len(images):
        return images
    index = np.sort(np.random.default_rng(seed).choice(len(images), size=count, replace=False))
    return images.subset(index)


def predict_all(
    images: ImageSet, models: Mapping[str, tuple[ModelSpec, Predict]], chunk: int = CHUNK
) -> dict[str, np.ndarray]:
    """Each model's (N, K) probabilities on every image, each fed its own spec's input; each
    chunk is decoded once for all models (and preprocessed once per distinct spec)."""
    results: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for frames, _ in images.decoded(chunk):
        inputs: dict[tuple, np.ndarray] = {}
        for name, (spec, predict) in models.items():
            args = spec.preprocess_args()
            key = tuple(sorted(args.items()))
            if key not in inputs:
                inputs[key] = to_batch(frames, src_order="bgr", **args)
            results[name].append(np.asarray(predict(inputs[key]), dtype=np.float32))
    return {name: np.concatenate(parts) for name, parts in results.items()}


@dataclass(frozen=True)
class Agreement:
    """A candidate model against a baseline on the same labelled images."""

    count: int
    baseline_accuracy: float
    accuracy: float
    agreement: float  # fraction of images with the same top-1
    max_abs_dp: float  # max |p_candidate - p_baseline| over all images and classes

    def summary(self) -> str:
        return (
            f"accuracy {self.accuracy:.4f} vs {self.baseline_accuracy:.4f} "
            f"({(self.accuracy - self.baseline_accuracy) * 100:+.2f} pt), top-1 agreement {self.agreement:.4f}, "
            f"max |Δp| {self.max_abs_dp:.4f} on {self.count} images"
        )


def compare(baseline: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> Agreement:
    """Accuracy of both, top-1 agreement and max |Δp| from (N, K) probabilities and (N,) labels."""
    top_b, top_c = baseline.argmax(1), candidate.argmax(1)
    return Agreement(
        count=len(labels),
        baseline_accuracy=float((top_b == labels).mean()),
        accuracy=float((top_c == labels).mean()),
        agreement=float((top_b == top_c).mean()),
        max_abs_dp=float(np.abs(candidate.astype(np.float64) - baseline).max()),
    )
