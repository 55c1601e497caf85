"""Named model recipes: architecture, data, and training settings.

An unknown name fails listing the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError


@dataclass(frozen=True)
class Recipe:
    """Everything `fit` needs to train one registered model.

    `build()` returns a compiled Keras model whose input is uint8-valued pixels
    scaled as `load_data` delivers them; its optimizer's rate is the rate at
    `batch_size` images per step. `load_data(data_dir, batch_size, seed)` returns a
    `training.data.Splits` batched by the global batch (all replicas together).
    """

    name: str
    description: str
    build: Callable[[], Any]
    load_data: Callable[[Path | None, int, int], Any]
    class_names: tuple[str, ...]
    color: str
    resize: str
    output_activation: str
    epochs: int
    batch_size: int  # per replica
    # The checkpoint keeps the epoch where `monitor` is best: highest for accuracies, lowest otherwise.
    monitor: str = "val_loss"
    early_stopping_patience: int | None = None
    # learning_rate(epoch, epochs) -> rate of that 0-based epoch; None keeps the optimizer's own.
    learning_rate: Callable[[int, int], float] | None = None
    # Class names per language tag for people to read ({"ko": (...)}, in class_names order);
    # the exporter puts them into the ModelSpec's display_names.
    display_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of the Keras log entry `metric` is the better one."""
    return metric.endswith("accuracy")


_RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add a recipe under its name (names are unique)."""
    if recipe.name in _RECIPES:
        raise ValueError(f"model {recipe.name!r} is already registered")
    _RECIPES[recipe.name] = recipe
    return recipe


def names() -> list[str]:
    """Registered model names, sorted."""
    _load_builtin()
    return sorted(_RECIPES)


def get(name: str) -> Recipe:
    """The recipe called `name`; EdgecnnError listing the known names otherwise."""
    _load_builtin()
    try:
        return _RECIPES[name]
    except KeyError:
        raise EdgecnnError(f"unknown model {name!r}; known models: {', '.join(sorted(_RECIPES))}") from None


def display_names(recipe_name: str | None, class_names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The display names of recipe `recipe_name` for a model with these class names: none when
    no such recipe is registered or its class names differ (the model was relabelled)."""
    _load_builtin()
    recipe = _RECIPES.get(recipe_name or "")
    return dict(recipe.display_names) if recipe is not None and recipe.class_names == class_names else {}


def _load_builtin() -> None:
    from edgecnn.training import models  # noqa: F401  (registers the built-in recipes)
