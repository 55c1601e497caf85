"""Trained models that ship inside the package, and resolution of a model given by name or path.

Each bundled model is `<name>.onnx` (exported by edgecnn-export, ModelSpec inside) with
`<name>.recipe.json` beside it: the training and export commands, data checksums,
seed, versions and metrics. `python -m edgecnn.cli.bundle` (edgecnn.training.bundle) regenerates both.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError

INT8_SUFFIX = "-int8"  # NAME-int8 is NAME quantised by edgecnn-export --int8
BUNDLED_FP32 = ("catsdogs", "fmnist", "catsdogs-xception", "catsdogs-xception-s2")  # trained by edgecnn-train
# quantised by edgecnn-export --int8 (the gate refuses catsdogs-xception and -s2: docs/models.md)
BUNDLED_INT8 = tuple(f"{name}{INT8_SUFFIX}" for name in ("catsdogs", "fmnist"))
BUNDLED = BUNDLED_FP32 + BUNDLED_INT8
DEFAULT_MODEL = "catsdogs-xception-s2"  # by the rule tests/test_bundled.py holds it to (issue 25)


def bundled_path(name: str) -> Path:
    """Path of bundled model `name`; EdgecnnError for an unknown name or a missing file."""
    if name not in BUNDLED:
        raise EdgecnnError(f"unknown bundled model {name!r}; bundled models: {', '.join(BUNDLED)}")
    path = Path(str(resources.files(__name__).joinpath(f"{name}.onnx")))
    if not path.is_file():
        raise EdgecnnError(
            f"bundled model {name!r} is missing from this install ({path}); reinstall edgecnn or give an .onnx file"
        )
    return path


def resolve_model(model: str | os.PathLike | None) -> Path:
    """A bundled model's path by name (one of BUNDLED), the path of an .onnx file as given, or
    None for the default bundled model."""
    if model is None:
        return bundled_path(DEFAULT_MODEL)
    text = os.fspath(model)
    if text in BUNDLED:
        return bundled_path(text)
    path = Path(text)
    if path.suffix.lower() != ".onnx" and not path.exists() and os.sep not in text and "/" not in text:
        raise EdgecnnError(
            f"not a bundled model ({', '.join(BUNDLED)}) and no such file", parameter="model", value=text
        )
    return path  # Classifier reports a missing or unloadable file


def video_setups(path: Path) -> dict[str, Any]:
    """The video set-ups measured best for the bundled model at `path` on the CPU: {"file": ..., "live": ...},
    each {"sessions": "one" or "per-cpu", "batch": N} (benchmarks/bench_live.py --setups --write records
    them in its recipe); {} for any other model."""
    path = Path(path)
    try:
        bundled = path.resolve().parent == bundled_path(DEFAULT_MODEL).resolve().parent
        measured = json.loads(path.with_suffix(".recipe.json").read_text()).get("video", {}) if bundled else {}
    except (OSError, ValueError, EdgecnnError):
        return {}
    return {source: measured[source] for source in ("file", "live") if source in measured}


def recipe(name: str) -> dict[str, Any]:
    """The recipe JSON of bundled model `name` (how it was trained and exported)."""
    path = bundled_path(name).with_suffix(".recipe.json")
    return json.loads(path.read_text())
