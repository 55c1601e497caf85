"""Is cats-vs-dogs training I/O-bound? Epoch time on the real folder pipeline vs in-memory arrays.

Same model, same number of images and batch size, in one run: (1) the training pipeline
(image_dataset_from_directory -> cache -> shuffle -> prefetch), first epoch (decode + fill
the cache) and a later epoch (from the cache); (2) random uint8-valued float arrays already
in memory. If (1, cached) is close to (2), the input pipeline is not the bottleneck.

    python benchmarks/bench_train_io.py [--data ../shared/data/cats_vs_dogs] [--images 2000]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=data_root() / "cats_vs_dogs")
    parser.add_argument("--images", type=int, default=2000, help="training images per epoch (default: %(default)s)")
    args = parser.parse_args()

    from edgecnn.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    from edgecnn.training import registry

    recipe = registry.get("catsdogs")
    splits = recipe.load_data(args.data, recipe.batch_size, 0)
    folder = splits.train.unbatch().take(args.images).batch(recipe.batch_size)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.images, 180, 180, 3)).astype(np.float32)
    y = rng.integers(0, 2, (args.images, 1)).astype(np.float32)
    memory = tf.data.Dataset.from_tensor_slices((x, y)).batch(recipe.batch_size)

    def epoch(ds) -> float:
        model = recipe.build()
        model.fit(ds.take(1), epochs=1, verbose=0)  # build and trace outside the timed epoch
        start = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0)
        return time.perf_counter() - start

    t_first = epoch(folder)  # decodes the JPEGs and fills the cache
    t_cached = epoch(folder)
    t_memory = epoch(memory)
    print(f"one epoch of {args.images} images, batch {recipe.batch_size}, {os.cpu_count()} CPUs\n")
    print_table(
        ["input", "epoch s", "images/s", "vs in-memory arrays"],
        [
            [
                "folder pipeline, first epoch (decode + cache)",
                f"{t_first:.1f}",
                f"{args.images / t_first:.0f}",
                f"{t_first / t_memory:.2f}x",
            ],
            [
                "folder pipeline, cached (every later epoch)",
                f"{t_cached:.1f}",
                f"{args.images / t_cached:.0f}",
                f"{t_cached / t_memory:.2f}x",
            ],
            ["random arrays in memory", f"{t_memory:.1f}", f"{args.images / t_memory:.0f}", "1.00x"],
        ],
    )


if __name__ == "__main__":
    main()
