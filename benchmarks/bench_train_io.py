"""Is training on class folders I/O-bound? Epoch time of edgecnn-train's folder pipeline against the
same model fitted on in-memory arrays, and against the tutorial's plain image_dataset_from_directory.

One run, one model (`convnet` at --imgsz, a fresh copy per contender, traced outside the
timed epoch), the same training images and batch size:
  1. edgecnn's pipeline (edgecnn.training.data.load_folders: decode + resize as edgecnn-infer
     does, cache, reshuffle): its first epoch (decode + fill the cache) and a later one;
  2. the same pixels as numpy arrays in memory (the floor: no input cost at all);
  3. keras.utils.image_dataset_from_directory(DIR/train) as the tutorial writes it: no cache,
     every epoch decodes every file again.
The up-front decode check edgecnn-train runs once per run (every image, so a bad file stops it
before an epoch) is timed on its own.

    python benchmarks/bench_train_io.py [--data DIR] [--imgsz 180] [--images 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table

from edgecnn.datasets import data_root

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=data_root() / "cats_vs_dogs", help="DIR holding train/")
    parser.add_argument("--imgsz", type=int, default=180, help="square input size (default: %(default)s)")
    parser.add_argument("--images", type=int, default=2000, help="training images per epoch (default: %(default)s)")
    args = parser.parse_args()

    from edgecnn.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    from edgecnn.training import data, registry

    size = (args.imgsz, args.imgsz)
    folders = data.describe_folders(args.data)
    train_only = data.FolderDataSet(
        folders.root,
        folders.layout,
        folders.class_names,
        {"train": folders.files["train"][: args.images], "validation": folders.files["validation"][:1]},
        0,
    )
    images = len(train_only.files["train"])
    started = time.perf_counter()
    data.check_images_decode([str(folders.root / path) for path, _ in train_only.files["train"]], folders.root)
    t_check = time.perf_counter() - started
    ours = data.load_folders(train_only, size, "rgb", "bilinear", BATCH, 0).train
    x = np.concatenate([batch.numpy() for batch, _ in ours])
    y = np.concatenate([labels.numpy() for _, labels in ours])
    memory = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    ours = data.load_folders(train_only, size, "rgb", "bilinear", BATCH, 0).train_epochs(0, 1)  # an empty cache
    tutorial = keras.utils.image_dataset_from_directory(
        folders.root / "train",
        image_size=size,
        batch_size=BATCH,
        label_mode="binary" if len(folders.class_names) == 2 else "int",
        color_mode="rgb",
        verbose=False,
    ).take(-(-images // BATCH))
    recipe = registry.adhoc_recipe("convnet", size, "rgb")

    def epoch_seconds(dataset, epochs: int = 1) -> list[float]:
        model = recipe.build(len(folders.class_names))
        model.fit(memory.take(1), epochs=1, verbose=0)  # build and trace outside the timed epochs
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0)
            times.append(time.perf_counter() - start)
        return times

    t_first, t_cached = epoch_seconds(ours, epochs=2)
    (t_memory,) = epoch_seconds(memory)
    (t_tutorial,) = epoch_seconds(tutorial)
    print(f"one epoch of {images} images of {folders.root}, convnet at {args.imgsz}x{args.imgsz}, batch {BATCH}, ")
    print(f"{os.cpu_count()} CPUs; decode check before training (once per run): {t_check:.1f} s\n")

    def row(name: str, seconds: float) -> list[str]:
        return [name, f"{seconds:.1f}", f"{images / seconds:.0f}", f"{seconds / t_memory:.2f}x"]

    print_table(
        ["input", "epoch s", "images/s", "vs in-memory arrays"],
        [
            row("edgecnn-train folders, first epoch (decode + cache)", t_first),
            row("edgecnn-train folders, every later epoch (cached)", t_cached),
            row("the same pixels as arrays in memory", t_memory),
            row("image_dataset_from_directory as in the tutorial", t_tutorial),
        ],
    )


if __name__ == "__main__":
    main()
