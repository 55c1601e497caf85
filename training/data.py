"""Data sets for training: class folders as described once (`FolderDataSet`), Fashion-MNIST's IDX
files, and Keras' downloads for online users.

Every loader yields float32 pixels in 0..255, resized as the runtime resizes them
(edgecnn.preprocess, the same kernel edgecnn-infer runs); the architecture's preprocess
mode, if any, is applied on the way into the model (`with_preprocessing`).
"""

from __future__ import annotations

import atexit
import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.datasets import IDX_FILES
from edgecnn.errors import EdgecnnError, first_line
from edgecnn.fileio import atomic_output, sha256_file
from edgecnn.sources import IMAGE_SUFFIXES, read_idx, read_image
from edgecnn.spec import PREPROCESS_MODES

SPLITS = ("train", "validation", "test")
VALIDATION_FRACTION = 0.2  # of Fashion-MNIST's 60,000 training images
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
VALIDATION_FOLDERS = ("validation", "val")
# A data set whose cached pixels would take more than this share of the machine's memory is
# cached in a temporary file instead.
MEMORY_CACHE_SHARE = 0.4
EPOCH_SEED_STRIDE = 1_000_003  # epoch e of a run with seed s is shuffled with s * this + e
IMBALANCE_RATIO = 10  # a note when the largest training class has more than this times the smallest


@dataclass
class Splits:
    """Batched tf.data pipelines of (pixels in 0..255, label) for train/validation/test (test None
    when the data set has none, and all three in file order, for evaluation), where they came
    from, and `train_epochs`, what training reads."""

    train: Any
    validation: Any
    test: Any
    counts: dict[str, int]
    source: str
    train_examples: Any  # the training examples, unbatched, in file order
    batch_size: int
    seed: int
    fingerprint: dict[str, str] = field(default_factory=dict)
    folders: FolderDataSet | None = None
    limit: int | None = None  # train on only this many (a different random subset each epoch)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(min(self.counts["train"], self.limit or self.counts["train"]) / self.batch_size)

    def train_epochs(self, first: int, last: int) -> Any:
        """Epochs `first` to `last` - 1 (0-based) of training, one after another: each epoch all
        the training examples (or `limit` of them), reshuffled, in batches. An epoch's order
        depends only on the seed and its number, so a run resumed at epoch `first` reads what
        an unstopped run would have read from there."""
        import tensorflow as tf

        count, taken = self.counts["train"], min(self.counts["train"], self.limit or self.counts["train"])

        def one_epoch(epoch: int) -> Any:  # a Python seed: a tensor one needs TensorFlow's global seed set
            order_seed = (self.seed * EPOCH_SEED_STRIDE + epoch) % 2**63
            return self.train_examples.shuffle(count, seed=order_seed).take(taken).batch(self.batch_size)

        epochs = one_epoch(first)
        for epoch in range(first + 1, last):
            epochs = epochs.concatenate(one_epoch(epoch))
        return for_distribution(epochs.prefetch(tf.data.AUTOTUNE))


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
    """Fashion-MNIST as (N, 28, 28, 1) float32 pixels in 0..255; train split 80:20 with `seed`."""
    import tensorflow as tf

    (x_all, y_all, x_test, y_test), source, fingerprint = _fashion_mnist_arrays(data_dir)
    order = np.random.default_rng(seed).permutation(len(x_all))
    n_val = int(round(len(x_all) * VALIDATION_FRACTION))
    train_idx, val_idx = order[n_val:], order[:n_val]

    def examples(x: np.ndarray, y: np.ndarray) -> Any:
        return tf.data.Dataset.from_tensor_slices((x.astype(np.float32)[..., None], y.astype(np.int64)))

    def pipeline(ds: Any) -> Any:
        return for_distribution(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))

    train = examples(x_all[train_idx], y_all[train_idx])
    return Splits(
        train=pipeline(train),
        validation=pipeline(examples(x_all[val_idx], y_all[val_idx])),
        test=pipeline(examples(x_test, y_test)),
        train_examples=train,
        batch_size=batch_size,
        seed=seed,
        counts={"train": len(train_idx), "validation": len(val_idx), "test": len(x_test)},
        source=source,
        fingerprint=fingerprint,
    )


@dataclass(frozen=True)
class FolderDataSet:
    """One class-per-folder data set: its classes, and the files of each split with their class.

    `layout` is "splits" (DIR/train, DIR/validation or DIR/val, optional DIR/test, each
    with one folder per class) or "classes" (DIR/CLASS/..., split here by `split`
    fractions with `seed`, stratified). `files[split]` holds (path relative to `root`,
    class index) in class-then-path order; `skipped` counts files that are not images.
    """

    root: Path
    layout: str
    class_names: tuple[str, ...]
    files: Mapping[str, tuple[tuple[str, int], ...]]
    skipped: int
    split: tuple[float, float, float] | None = None
    seed: int | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class in each split that has any."""
        result = {}
        for split, files in self.files.items():
            per_class = np.bincount([label for _, label in files], minlength=len(self.class_names))
            result[split] = {name: int(n) for name, n in zip(self.class_names, per_class, strict=True)}
        return result

    def summary(self) -> str:
        """One line: where, which layout, how many classes and images per split, what was skipped."""
        if self.layout == "splits":
            how = ", ".join(f"{files[0][0].split('/')[0]}/" for files in self.files.values())
        else:
            shares = "/".join(f"{round(100 * share):g}" for share in self.split or ())
            how = f"class folders, split {shares} here (seed {self.seed})"
        sizes = ", ".join(f"{len(files)} {split}" for split, files in self.files.items())
        skipped = f"; skipped {self.skipped} files that are not images" if self.skipped else ""
        return f"{self.root}: {how}: {len(self.class_names)} classes, {sizes}{skipped}"

    def to_json(self) -> dict[str, Any]:
        """What run.json and split.json record: layout, classes, counts, and every split's file list."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "split": None if self.split is None else list(self.split),
            "seed": self.seed,
            "class_names": list(self.class_names),
            "skipped_files": self.skipped,
            "files": {split: [[path, label] for path, label in files] for split, files in self.files.items()},
        }

    def paths(self) -> list[str]:
        """Every image of every split, as a path under `root`."""
        return [str(self.root / path) for files in self.files.values() for path, _ in files]

    def fingerprint(self) -> dict[str, str]:
        """One SHA-256 per split over its files' relative paths and contents."""
        result = {}
        for split, files in self.files.items():
            digest = hashlib.sha256()
            for path, _ in files:
                digest.update(path.encode())
                digest.update(sha256_file(self.root / path).encode())
            result[split] = digest.hexdigest()
        return result


def parse_split(text: str) -> tuple[float, float, float]:
    """ "0.8,0.1,0.1" (train, validation, test; test may be left out) -> three shares summing to 1."""
    try:
        shares = [float(part) for part in text.split(",")]
    except ValueError:
        shares = []
    if len(shares) == 2:
        shares.append(0.0)
    if len(shares) != 3 or min(shares) < 0 or shares[0] <= 0 or shares[1] <= 0 or abs(sum(shares) - 1) > 1e-6:
        raise EdgecnnError(
            "must be train,validation[,test] shares summing to 1, train and validation above 0 (e.g. 0.8,0.1,0.1)",
            parameter="split",
            value=text,
        )
    return shares[0], shares[1], shares[2]


def _images_below(folder: Path, root: Path) -> tuple[list[str], int]:
    """(sorted image paths relative to `root`, count of other files) anywhere below `folder`,
    following symbolic links; EdgecnnError on a link that leads back to a folder above it."""
    images, skipped = [], 0
    stack: list[tuple[Path, tuple[Path, ...]]] = [(folder, (folder.resolve(),))]
    while stack:
        current, ancestors = stack.pop()
        for entry in os.scandir(current):
            path = Path(entry.path)
            if entry.is_dir():
                real = path.resolve()
                if real in ancestors:
                    raise EdgecnnError(
                        f"symbolic link loop: {path.relative_to(root)} leads back to {real}",
                        parameter="data_dir",
                        value=root,
                    )
                stack.append((path, (*ancestors, real)))
            elif entry.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped += 1
            else:
                images.append(path.relative_to(root).as_posix())
    return sorted(images), skipped


def _class_folders(folder: Path, root: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    where = f"{folder.relative_to(root)}/ " if folder != root else ""
    if len(names) < 2:
        raise EdgecnnError(
            f"{where}needs at least 2 class folders (one per class), found {len(names)}"
            + (f": {names[0]}" if names else ""),
            parameter="data_dir",
            value=root,
        )
    return names


def _class_images(root: Path, folder: Path, names: list[str]) -> tuple[dict[str, list[str]], int]:
    found, skipped = {}, 0
    for name in names:
        images, other = _images_below(folder / name, root)
        skipped += other
        if not images:
            raise EdgecnnError(
                f"class folder {(folder / name).relative_to(root)}/ holds no images", parameter="data_dir", value=root
            )
        found[name] = images
    return found, skipped


def describe_folders(root: Path, split: tuple[float, float, float] | None = None, seed: int = 42) -> FolderDataSet:
    """Scan DIR in either layout (see FolderDataSet) and fix the split; EdgecnnError naming what is
    wrong: no folder, fewer than 2 classes, an empty class folder, a validation or test class that
    train/ lacks, a split that leaves a class no validation image, a symbolic link loop.

    Class names are the folder names in sorted order (image_dataset_from_directory's order)."""
    if not root.is_dir():
        raise EdgecnnError("no such directory", parameter="data_dir", value=root)
    if (root / "train").is_dir():
        if split is not None:
            raise EdgecnnError(
                "holds train/ already: its own split is used (a split share is for class folders alone)",
                parameter="data_dir",
                value=root,
            )
        validation = next((root / name for name in VALIDATION_FOLDERS if (root / name).is_dir()), None)
        if validation is None:
            raise EdgecnnError("holds train/ but no validation/ (or val/) beside it", parameter="data_dir", value=root)
        classes = _class_folders(root / "train", root)
        files: dict[str, tuple[tuple[str, int], ...]] = {}
        skipped = 0
        for split_name, folder in (("train", root / "train"), ("validation", validation), ("test", root / "test")):
            if split_name == "test" and not folder.is_dir():
                continue
            names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            if extra := [name for name in names if name not in classes]:
                raise EdgecnnError(
                    f"{folder.name}/ has class {extra[0]!r} that train/ does not have "
                    f"(train/ has {', '.join(classes)})",
                    parameter="data_dir",
                    value=root,
                )
            if split_name == "validation" and (missing := [name for name in classes if name not in names]):
                raise EdgecnnError(
                    f"{folder.name}/ has no folder for class {missing[0]!r}: every class needs validation images",
                    parameter="data_dir",
                    value=root,
                )
            images, other = _class_images(root, folder, names)
            skipped += other
            files[split_name] = tuple((path, classes.index(name)) for name in names for path in images[name])
        return FolderDataSet(root, "splits", tuple(classes), files, skipped)
    shares = split or DEFAULT_SPLIT
    classes = _class_folders(root, root)
    images, skipped = _class_images(root, root, classes)
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[tuple[str, int]]] = {name: [] for name in SPLITS}
    for label, name in enumerate(classes):
        paths = images[name]
        order = rng.permutation(len(paths))
        n_val, n_test = round(len(paths) * shares[1]), round(len(paths) * shares[2])
        if n_val == 0 or len(paths) - n_val - n_test < 1:
            raise EdgecnnError(
                f"class {name!r} has {len(paths)} images: a {shares[0]:g}/{shares[1]:g}/{shares[2]:g} split leaves it "
                f"no {'validation' if n_val == 0 else 'training'} image; add images or change the shares",
                parameter="split",
            )
        parts = {"validation": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
        for split_name, index in parts.items():
            chosen[split_name] += [(paths[i], label) for i in sorted(index)]
    files = {name: tuple(chosen[name]) for name in SPLITS if chosen[name]}
    return FolderDataSet(root, "classes", tuple(classes), files, skipped, shares, seed)


def imbalance_note(folders: FolderDataSet) -> str | None:
    """One line when the smallest training class has under a tenth of the largest's images."""
    train = folders.counts()["train"]
    small, large = min(train, key=train.__getitem__), max(train, key=train.__getitem__)
    if train[small] * IMBALANCE_RATIO >= train[large]:
        return None
    return (
        f"note: class {small!r} has {train[small]} training images, under a tenth of class {large!r} ({train[large]}); "
        "consider balanced class weights"
    )


def balanced_class_weights(folders: FolderDataSet) -> dict[int, float]:
    """n / (classes x n_c) per class index over train/ (scikit-learn's "balanced")."""
    train = list(folders.counts()["train"].values())
    total = sum(train)
    return {label: total / (len(train) * count) for label, count in enumerate(train)}


def pixel_loader(image_size: tuple[int, int], color: str, resize: str) -> Callable[[Any], np.ndarray]:
    """path -> float32 (h, w, C) pixels in 0..255, decoded and resized exactly as edgecnn-infer does."""
    from edgecnn.preprocess import to_batch

    def load(path: Any) -> np.ndarray:
        frame = read_image(path.decode() if isinstance(path, bytes) else path)
        return to_batch([frame], image_size, color=color, src_order="bgr", scale=1.0, method=resize)[0]

    return load


def _cache(dataset: Any, bytes_needed: int) -> Any:
    """dataset.cache() in memory, or in a temporary file (removed at exit) when too large for memory."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if bytes_needed <= MEMORY_CACHE_SHARE * memory:
        return dataset.cache()
    folder = tempfile.mkdtemp(prefix="edgecnn-cache-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return dataset.cache(os.path.join(folder, "pixels"))


def load_folders(
    folders: FolderDataSet, image_size: tuple[int, int], color: str, resize: str, batch_size: int, seed: int
) -> Splits:
    """Every split of `folders` as batched (pixels, label) pipelines (check the images first with
    `check_images_decode`: a bad file would stop TensorFlow part way through an epoch).

    Labels are float32 0/1 of shape (1,) for two classes (one sigmoid unit), else int64
    class indices. The pixels are cached image by image after the first epoch and train/
    is reshuffled as a whole every epoch before batching (`Splits.train_epochs`), as the
    tutorial's uncached pipeline does: caching batches would keep the same 32 images
    together in every epoch, and BatchNorm would see the same batch statistics each time.
    """
    import tensorflow as tf

    load = pixel_loader(image_size, color, resize)
    shape = (*image_size, 1 if color == "gray" else 3)
    binary = len(folders.class_names) == 2

    def cached(files: tuple[tuple[str, int], ...]) -> Any:
        paths = [str(folders.root / path) for path, _ in files]
        labels = np.array([label for _, label in files])
        targets = labels.astype(np.float32)[:, None] if binary else labels.astype(np.int64)
        ds = tf.data.Dataset.from_tensor_slices((paths, targets))
        ds = ds.map(
            lambda path, label: (tf.ensure_shape(tf.numpy_function(load, [path], tf.float32), shape), label),
            num_parallel_calls=os.cpu_count() or 1,
            deterministic=True,
        )
        return _cache(ds, len(paths) * int(np.prod(shape)) * 4)

    examples = {split: cached(files) for split, files in folders.files.items()}
    batched = {
        split: for_distribution(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)) for split, ds in examples.items()
    }
    return Splits(
        train=batched["train"],
        validation=batched["validation"],
        test=batched.get("test"),
        train_examples=examples["train"],
        batch_size=batch_size,
        seed=seed,
        counts={split: len(files) for split, files in folders.files.items()},
        source=str(folders.root),
        fingerprint=folders.fingerprint(),
        folders=folders,
    )


def normalise(pixels: Any, mode: str | None) -> Any:
    """Pixels in 0..255 (..., C) as a model of preprocess `mode` takes them: the ModelSpec formula
    (pixels x pixel_scale - mean[c]) / std[c] in the mode's channel order; unchanged for None."""
    if mode is None:
        return pixels
    fields = PREPROCESS_MODES[mode]
    channels = int(pixels.shape[-1])
    if channels == 3 and fields["channel_order"] == "bgr":
        pixels = pixels[..., ::-1]
    mean = np.asarray(fields["mean"][:channels] if channels == 3 else (0.0,), np.float32)
    std = np.asarray(fields["std"][:channels] if channels == 3 else (1.0,), np.float32)
    return (pixels * np.float32(fields["pixel_scale"]) - mean) / std


def with_preprocessing(dataset: Any, mode: str | None) -> Any:
    """`dataset` of (pixels, label) with the pixels normalised for preprocess `mode` (see `normalise`)."""
    if dataset is None or mode is None:
        return dataset
    return dataset.map(lambda pixels, label: (normalise(pixels, mode), label))


def check_images_decode(paths: list[str], root: Path) -> int:
    """Decode every image once, in parallel, as edgecnn-infer reads it (edgecnn.sources.read_image:
    format and size from the header, then a strict full decode); EdgecnnError naming every bad file.
    Returns how many of them are grayscale (one channel).

    TensorFlow would otherwise stop with a traceback in the middle of an epoch (or, for
    test/, after all of them) on the first corrupt file.
    """

    def problem(path: str) -> str | bool:
        try:
            image = read_image(path)
        except EdgecnnError as exc:
            return str(exc)
        return image.ndim == 2 or image.shape[2] == 1

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(problem, paths))
    bad = [result for result in results if isinstance(result, str)]
    if bad:
        shown = "; ".join(message.replace(str(root) + os.sep, "", 1) for message in bad)
        raise EdgecnnError(
            f"{len(bad)} of {len(paths)} images cannot be decoded: {shown}", parameter="data_dir", value=root
        )
    return sum(result is True for result in results)


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
