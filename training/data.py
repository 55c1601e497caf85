"""Datasets for the registered models: local folders first, Keras' downloads for online users."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.datasets import IDX_FILES
from edgecnn.errors import EdgecnnError, first_line
from edgecnn.fileio import atomic_output, sha256_file
from edgecnn.sources import read_idx, read_image

SPLITS = ("train", "validation", "test")
VALIDATION_FRACTION = 0.2


@dataclass
class Splits:
    """Batched tf.data pipelines for train/validation/test, plus where they came from."""

    train: Any
    validation: Any
    test: Any
    counts: dict[str, int]
    source: str
    fingerprint: dict[str, str] = field(default_factory=dict)


def for_distribution(dataset: Any) -> Any:
    """`dataset` as tf.distribute should split it: by element (DATA), in a fixed order, without
    tf.data's autotuning model thread.

    Under MultiWorkerMirroredStrategy every worker builds the same pipeline with the same
    seed and keeps its share of each global batch, so all must produce the same order;
    files are not split (the fmnist arrays have none, and a few folders of images would
    not spread evenly over the workers).

    Autotuning is off because its model thread (Model::OptimizeLoop) is not woken when
    Keras drops an epoch's iterator: the next epoch waited for the thread's timed sleep,
    up to 60 s with both cores idle (gdb, catsdogs-xception: stalls at 7 of the first 25
    epoch starts, 137-144 s epochs instead of 82-89 s). The pipelines are cached in memory,
    so there is nothing for it to tune; the prefetch buffers keep their own sizing.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    options.autotune.enabled = False
    return dataset.with_options(options)


def _fashion_mnist_arrays(data_dir: Path | None) -> tuple[tuple[np.ndarray, ...], str, dict[str, str]]:
    if data_dir is None:
        import keras

        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
        except Exception as exc:  # noqa: BLE001  (any download failure means the same to the user)
            raise EdgecnnError(
                f"could not download Fashion-MNIST ({first_line(exc)}); give a folder with the four IDX .gz files",
                parameter="data_dir",
            ) from None
        return (x_train, y_train, x_test, y_test), "keras.datasets.fashion_mnist", {}
    if not data_dir.is_dir():
        raise EdgecnnError("no such directory", parameter="data_dir", value=data_dir)
    files = [name for split in ("train", "test") for name in IDX_FILES[split]]
    missing = [name for name in files if not (data_dir / name).is_file()]
    if missing:
        raise EdgecnnError(
            f"missing {', '.join(missing)} (need the four Fashion-MNIST IDX .gz files)",
            parameter="data_dir",
            value=data_dir,
        )
    arrays = {split: tuple(read_idx(data_dir / name) for name in IDX_FILES[split]) for split in ("train", "test")}
    for part, (images, labels) in arrays.items():
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(images) != len(labels):
            raise EdgecnnError(
                f"{part} images {images.shape} and labels {labels.shape} do not match",
                parameter="data_dir",
                value=data_dir,
            )
        if labels.max() > 9:
            raise EdgecnnError(
                f"{part} labels go up to {labels.max()}, expected 0-9", parameter="data_dir", value=data_dir
            )
    fingerprint = {name: sha256_file(data_dir / name) for name in files}
    return (*arrays["train"], *arrays["test"]), str(data_dir), fingerprint


def load_fashion_mnist(data_dir: Path | None, batch_size: int, seed: int) -> Splits:
    """Fashion-MNIST as (N, 28, 28, 1) float32 in [0, 1]; train split 80:20 with `seed`."""
    import tensorflow as tf

    (x_all, y_all, x_test, y_test), source, fingerprint = _fashion_mnist_arrays(data_dir)
    order = np.random.default_rng(seed).permutation(len(x_all))
    n_val = int(round(len(x_all) * VALIDATION_FRACTION))
    train_idx, val_idx = order[n_val:], order[:n_val]

    def scaled(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / 255.0)[..., None]

    def pipeline(x: np.ndarray, y: np.ndarray, shuffle: bool) -> Any:
        ds = tf.data.Dataset.from_tensor_slices((scaled(x), y.astype(np.int64)))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return for_distribution(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))

    return Splits(
        train=pipeline(x_all[train_idx], y_all[train_idx], shuffle=True),
        validation=pipeline(x_all[val_idx], y_all[val_idx], shuffle=False),
        test=pipeline(x_test, y_test, shuffle=False),
        counts={"train": len(train_idx), "validation": len(val_idx), "test": len(x_test)},
        source=source,
        fingerprint=fingerprint,
    )


def _folder_fingerprint(root: Path) -> dict[str, str]:
    """One SHA-256 per split over its files' relative paths and contents."""
    result = {}
    for split in SPLITS:
        digest = hashlib.sha256()
        for path in sorted(p for p in (root / split).rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(sha256_file(path).encode())
        result[split] = digest.hexdigest()
    return result


def load_image_folders(
    data_dir: Path | None, batch_size: int, seed: int, image_size: tuple[int, int] = (180, 180)
) -> Splits:
    """DIR/{train,validation,test}/<class>/*.jpg via image_dataset_from_directory, cached and prefetched.

    Pixels stay in [0, 255] (the model rescales); labels are 0/1 in folder order. The
    images are cached one by one and train/ is reshuffled as a whole every epoch before
    batching, as the tutorial's uncached pipeline does: caching batches would keep the
    same 32 images together in every epoch, and BatchNorm would see the same batch
    statistics each time.
    """
    if data_dir is None:
        raise EdgecnnError(
            "catsdogs needs a folder holding train/, validation/ and test/ (see edgecnn-train make-subset)",
            parameter="data_dir",
        )
    if not data_dir.is_dir():
        raise EdgecnnError("no such directory", parameter="data_dir", value=data_dir)
    missing = [s for s in SPLITS if not (data_dir / s).is_dir()]
    if missing:
        raise EdgecnnError(
            f"missing {', '.join(s + '/' for s in missing)} (need train/, validation/, test/, one folder per class)",
            parameter="data_dir",
            value=data_dir,
        )
    import keras
    import tensorflow as tf

    datasets, class_names, counts, files = {}, None, {}, []
    for split in SPLITS:
        folders = sorted(p.name for p in (data_dir / split).iterdir() if p.is_dir())
        if len(folders) != 2:
            raise EdgecnnError(
                f"{split}/ must hold exactly 2 class folders, found {folders}", parameter="data_dir", value=data_dir
            )
        if class_names is not None and folders != class_names:
            raise EdgecnnError(
                f"{split}/ has classes {folders}, train/ has {class_names}", parameter="data_dir", value=data_dir
            )
        class_names = folders
        ds = keras.utils.image_dataset_from_directory(
            data_dir / split,
            image_size=image_size,
            batch_size=None,
            label_mode="binary",
            shuffle=False,
            verbose=False,
        )
        counts[split] = len(ds.file_paths)
        if counts[split] == 0:
            raise EdgecnnError(f"{split}/ holds no images", parameter="data_dir", value=data_dir)
        files.extend(ds.file_paths)
        ds = ds.cache()
        if split == "train":
            ds = ds.shuffle(counts[split], seed=seed, reshuffle_each_iteration=True)
        datasets[split] = for_distribution(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))
    check_images_decode(files, data_dir)
    return Splits(
        train=datasets["train"],
        validation=datasets["validation"],
        test=datasets["test"],
        counts=counts,
        source=str(data_dir),
        fingerprint=_folder_fingerprint(data_dir),
    )


def check_images_decode(paths: list[str], root: Path) -> None:
    """Decode every image once, in parallel, as edgecnn-infer reads it (edgecnn.sources.read_image:
    format and size from the header, then a strict full decode); EdgecnnError naming every bad file.

    TensorFlow would otherwise stop with a traceback in the middle of an epoch (or, for
    test/, after all of them) on the first corrupt file.
    """

    def problem(path: str) -> str | None:
        try:
            read_image(path)
        except EdgecnnError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        bad = [message for message in pool.map(problem, paths) if message is not None]
    if bad:
        shown = "; ".join(message.replace(str(root) + os.sep, "", 1) for message in bad)
        raise EdgecnnError(
            f"{len(bad)} of {len(paths)} images cannot be decoded: {shown}", parameter="data_dir", value=root
        )


KAGGLE_CLASSES = ("cat", "dog")  # file name prefixes in Kaggle's flat folder


def make_subset(
    src: Path,
    dst: Path,
    sizes: dict[str, int],
    classes: tuple[str, ...] = KAGGLE_CLASSES,
    advance: Callable[[int], Any] = lambda files: None,
) -> dict[str, Any]:
    """Copy a Kaggle-style flat folder (cat.N.jpg, dog.N.jpg) into DST/<split>/<class>s/.

    Consecutive index ranges per class, in SPLITS order with `sizes` images each
    (the book: train 0-999, validation 1000-1499, test 1500-2499). Copies, never
    moves, never overwrites. Returns counts of copied, existing and missing files.
    `advance(1)` is called after each of the len(classes) * sum(sizes) files.
    """
    if not src.is_dir():
        raise EdgecnnError(f"{src}: no such directory")
    copied, skipped_existing, missing = 0, [], []
    start = 0
    for split in SPLITS:
        for cls in classes:
            folder = dst / split / f"{cls}s"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(start, start + sizes[split]):
                name = f"{cls}.{index}.jpg"
                source, target = src / name, folder / name
                if not source.is_file():
                    missing.append(name)
                elif target.exists():
                    skipped_existing.append(str(target))
                else:
                    with atomic_output(target) as temp:
                        shutil.copyfile(source, temp)
                    copied += 1
                advance(1)
        start += sizes[split]
    return {"copied": copied, "skipped_existing": skipped_existing, "missing": missing}
