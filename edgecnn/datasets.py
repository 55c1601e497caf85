"""Where the real data sets are: the data root, the registered models' folders under it, and
the names of Fashion-MNIST's IDX files.

Everything that looks for data without being told where (the exporter's and the checker's
real-image parity, the INT8 calibration and gate, edgecnn-bench, the tests and the
benchmarks) calls `data_root` or `known_data`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DATA_ENV = "EDGECNN_DATA"
# The README's layout: the data sets in shared/data beside the edgecnn checkout.
SHARED_DATA = Path("shared") / "data"
# Fashion-MNIST as gzip IDX files: split -> (images, labels).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Where each registered model's test and calibration (training) images sit under the data root.
KNOWN_TEST_DATA = {
    "catsdogs": "cats_vs_dogs/test",
    "catsdogs-xception": "cats_vs_dogs/test",
    "catsdogs-xception-s2": "cats_vs_dogs/test",
    "fmnist": "fashion-mnist",
}
KNOWN_CALIBRATION_DATA = {
    "catsdogs": "cats_vs_dogs/train",
    "catsdogs-xception": "cats_vs_dogs/train",
    "catsdogs-xception-s2": "cats_vs_dogs/train",
    "fmnist": "fashion-mnist",
}


def data_root() -> Path:
    """The folder holding the real data sets: $EDGECNN_DATA when set, else ../shared/data from
    the working directory, else ../shared/data beside this source checkout when only that one
    exists. The folder may not exist: callers check (and say where they looked)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    candidates = (Path.cwd().parent / SHARED_DATA, Path(__file__).resolve().parents[2] / SHARED_DATA)
    return next((folder for folder in candidates if folder.is_dir()), candidates[0])


def known_data(name: str, table: Mapping[str, str] = KNOWN_TEST_DATA) -> Path | None:
    """Registered model `name`'s data folder (from `table`) under `data_root()`, or None when the
    model is not in the table or its folder is not there."""
    if name not in table:
        return None
    folder = data_root() / table[name]
    return folder if folder.exists() else None
