"""edgecnn's training side (needs TensorFlow): `train` fits a recipe, or an architecture on your
class folders, and writes the run directory that edgecnn-export reads.

    from pathlib import Path
    from edgecnn.training import train

    metrics = train("convnet", Path("photos"), Path("runs/photos"), image_size=(128, 128), epochs=20)
    print(metrics["test"]["accuracy"], metrics["per_class_accuracy"])

`edgecnn-train` wraps `train`; `registry` lists the architectures and recipes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train"]


def __getattr__(name: str) -> Any:
    # Lazily: the command-line tools import small modules of this package (cluster) before
    # they decide to load TensorFlow, and `fit` imports it.
    if name == "train":
        from edgecnn.training.fit import train

        return train
    raise AttributeError(f"module 'edgecnn.training' has no attribute {name!r}")
