"""Shared fixtures: where the real data is, and small exported models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecnn.datasets import data_root

REPO = Path(__file__).resolve().parents[1]


def require_data(name: str) -> Path:
    """The real data set `name` under data_root(), or skip saying where it was looked for."""
    path = data_root() / name
    if not path.is_dir():
        pytest.skip(f"real data {name!r} not found at {path} (set EDGECNN_DATA to the folder holding it)")
    return path


@pytest.fixture(autouse=True)
def neutral_locale(monkeypatch):
    """Every test (and the commands it starts) runs in the C.UTF-8 locale, whatever the developer's
    LANG: output shows canonical class names unless the test asks for a language (--lang)."""
    for name in ("LC_ALL", "LC_MESSAGES", "EDGECNN_FONT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


@pytest.fixture(scope="session")
def fmnist_dir() -> Path:
    return require_data("fashion-mnist")


@pytest.fixture(scope="session")
def catsdogs_dir() -> Path:
    return require_data("cats_vs_dogs")


def save_untrained(name: str, folder: Path, seed: int = 0) -> Path:
    """Build registered model `name` (random weights drawn with `seed`), save it like a run directory;
    return the folder."""
    import keras

    from edgecnn.training import registry

    keras.utils.set_random_seed(seed)  # the same weights every run: negative controls need a fixed margin
    return save_run(name, registry.get(name).build(), folder)


def save_run(name: str, model, folder: Path) -> Path:
    """Save `model` as registered model `name`'s run directory would hold it; return the folder."""
    from edgecnn.training import registry

    recipe = registry.get(name)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "class_names.json").write_text(json.dumps(list(recipe.class_names)))
    (folder / "run.json").write_text(
        json.dumps({"model": {"name": name, "color": recipe.color, "resize": recipe.resize}})
    )
    return folder


@pytest.fixture(scope="session")
def untrained_fmnist(tmp_path_factory) -> tuple[Path, Path]:
    """(run_dir, model.onnx) of an untrained fmnist model, exported with edgecnn's exporter."""
    pytest.importorskip("tensorflow")
    from edgecnn.training.export import export_model

    run = save_untrained("fmnist", tmp_path_factory.mktemp("fmnist_untrained"))
    export_model(run, run / "model.onnx")
    return run, run / "model.onnx"


@pytest.fixture(scope="session")
def untrained_catsdogs(tmp_path_factory) -> tuple[Path, Path]:
    """(run_dir, model.onnx) of an untrained catsdogs model, exported with edgecnn's exporter."""
    pytest.importorskip("tensorflow")
    from edgecnn.training.export import export_model

    run = save_untrained("catsdogs", tmp_path_factory.mktemp("catsdogs_untrained"))
    export_model(run, run / "model.onnx")
    return run, run / "model.onnx"


def random_frames(rng: np.random.Generator, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """uint8 frames of the given shapes with smooth-plus-noise content."""
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]


@pytest.fixture(scope="session")
def short_fmnist_run(tmp_path_factory, fmnist_dir) -> tuple[Path, Path]:
    """(run_dir, model.onnx): fmnist trained for one short epoch on real data, then exported, via the CLIs."""
    pytest.importorskip("tensorflow")
    from edgecnn.cli import export, train

    run = tmp_path_factory.mktemp("fmnist_short") / "run"
    assert train.main(["fmnist", "--data", str(fmnist_dir), "--epochs", "1", "--limit", "6000", "--out", str(run)]) == 0
    assert export.main([str(run), "-o", str(run / "model.onnx")]) == 0
    return run, run / "model.onnx"
