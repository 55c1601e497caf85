"""Named architectures and named recipes.

An architecture is a function `(num_classes, input_shape, weights, augmentation) ->
keras.Model` registered under a name, with its input-size limits and whether ImageNet
weights exist for it (timm's `register_model`). A recipe is data: an architecture name
plus the data, optimiser, schedule and augmentation it is trained with. A user's folder
plus an architecture is an ad hoc recipe (`adhoc_recipe`), recorded in run.json like a
named one. An unknown name fails listing the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgecnn.errors import EdgecnnError

AUGMENTATIONS = ("none", "tutorial", "strong")  # models.augmentation_layers
DATA_KINDS = ("fashion-mnist-idx", "folders")


@dataclass(frozen=True)
class Architecture:
    """A model family: `build(num_classes, (height, width, channels), weights, augmentation)`.

    `weights` is None (random), "imagenet" or the path of a weights file of the base;
    `augmentation` one of AUGMENTATIONS. The model takes float32 pixels in 0..255 after
    `preprocess` (a ModelSpec preprocess mode the input pipeline and the runtime apply;
    None when the model normalises its pixels itself). Two classes get one sigmoid unit,
    more a softmax.
    """

    name: str
    description: str
    build: Callable[..., Any]
    default_size: tuple[int, int]
    min_size: int
    colors: tuple[str, ...] = ("rgb", "gray")
    pretrained: bool = False  # ImageNet weights exist (keras.applications)
    preprocess: str | None = None
    epochs: int = 20  # an ad hoc run's default


@dataclass(frozen=True)
class Recipe:
    """Everything `fit` needs to train one model: an architecture and how to train it.

    `data` is one of DATA_KINDS; `class_names` None takes the data set's folder names.
    The optimiser's rate is the rate at `batch_size` images per step; `schedule(epoch,
    epochs)` gives the rate of each 0-based epoch instead (None: constant). With
    pretrained `weights`, the first `head_epochs_fraction` of the epochs train the new head
    on a frozen base, the rest fine-tune the base's top `fine_tune_fraction` of layers at
    the rate times `fine_tune_rate_factor`.
    """

    name: str
    description: str
    architecture: str
    data: str
    image_size: tuple[int, int]
    color: str
    resize: str
    epochs: int
    batch_size: int  # per replica
    class_names: tuple[str, ...] | None = None
    augmentation: str = "none"
    weights: str | None = None
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    label_smoothing: float = 0.0
    schedule: Callable[[int, int], float] | None = None
    # The checkpoint keeps the epoch where `monitor` is best: highest for accuracies, lowest otherwise.
    monitor: str = "val_loss"
    early_stopping_patience: int | None = None
    head_epochs_fraction: float = 0.5
    fine_tune_fraction: float = 0.25
    fine_tune_rate_factor: float = 0.01
    # Class names per language tag for people to read ({"ko": (...)}, in class_names order);
    # the exporter puts them into the ModelSpec's display_names.
    display_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def arch(self) -> Architecture:
        """The registered architecture this recipe trains."""
        return get_architecture(self.architecture)

    def build(self, num_classes: int | None = None) -> Any:
        """The recipe's model, compiled (`num_classes` defaults to the recipe's class names)."""
        from edgecnn.training.models import compile_for

        count = num_classes if num_classes is not None else len(self.class_names or ())
        if count < 2:
            raise EdgecnnError(f"recipe {self.name!r} needs the number of classes", parameter="num_classes")
        shape = (*self.image_size, 1 if self.color == "gray" else 3)
        model = self.arch.build(count, shape, self.weights, self.augmentation)
        return compile_for(model, self)


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of the Keras log entry `metric` is the better one."""
    return metric.endswith("accuracy")


_ARCHITECTURES: dict[str, Architecture] = {}
_RECIPES: dict[str, Recipe] = {}


def register_architecture(architecture: Architecture) -> Architecture:
    """Add an architecture under its name (names are unique among architectures and recipes)."""
    if architecture.name in _ARCHITECTURES or architecture.name in _RECIPES:
        raise ValueError(f"{architecture.name!r} is already registered")
    _ARCHITECTURES[architecture.name] = architecture
    return architecture


def register(recipe: Recipe) -> Recipe:
    """Add a recipe under its name (names are unique among architectures and recipes)."""
    if recipe.name in _RECIPES or recipe.name in _ARCHITECTURES:
        raise ValueError(f"{recipe.name!r} is already registered")
    if recipe.architecture not in _ARCHITECTURES:
        raise ValueError(f"recipe {recipe.name!r} names unknown architecture {recipe.architecture!r}")
    _RECIPES[recipe.name] = recipe
    return recipe


def names() -> list[str]:
    """Registered recipe names, sorted."""
    _load_builtin()
    return sorted(_RECIPES)


def architecture_names() -> list[str]:
    """Registered architecture names, sorted."""
    _load_builtin()
    return sorted(_ARCHITECTURES)


def _unknown(name: str) -> EdgecnnError:
    return EdgecnnError(
        f"unknown model {name!r}; known recipes: {', '.join(sorted(_RECIPES))}; "
        f"known architectures: {', '.join(sorted(_ARCHITECTURES))}"
    )


def get(name: str) -> Recipe:
    """The recipe called `name`; EdgecnnError listing the known names otherwise."""
    _load_builtin()
    if name not in _RECIPES:
        raise _unknown(name)
    return _RECIPES[name]


def get_architecture(name: str) -> Architecture:
    """The architecture called `name`; EdgecnnError listing the known names otherwise."""
    _load_builtin()
    if name not in _ARCHITECTURES:
        raise _unknown(name)
    return _ARCHITECTURES[name]


def is_recipe(name: str) -> bool:
    """Whether `name` is a registered recipe (else it must be an architecture)."""
    _load_builtin()
    return name in _RECIPES


def adhoc_recipe(
    architecture: str,
    image_size: tuple[int, int] | None = None,
    color: str = "rgb",
    epochs: int | None = None,
    batch_size: int = 32,
    weights: str | None = None,
    augmentation: str | None = None,
) -> Recipe:
    """The recipe of `architecture` on a user's class folders: checked sizes, colour, weights.

    augmentation defaults to the tutorial's flip/rotate/zoom for RGB and none for gray
    (digits and glyphs change meaning when mirrored or turned).
    """
    arch = get_architecture(architecture)
    size = image_size or arch.default_size
    if min(size) < arch.min_size:
        raise EdgecnnError(
            f"{size[0]}x{size[1]} is below {arch.name}'s minimum of {arch.min_size}x{arch.min_size}",
            parameter="image_size",
        )
    if color not in arch.colors:
        raise EdgecnnError(f"{arch.name} takes {' or '.join(arch.colors)} images, not {color}", parameter="color")
    if weights is not None and not arch.pretrained:
        raise EdgecnnError(
            f"{arch.name} has no pretrained base; train it from scratch (no weights)", parameter="weights"
        )
    augmentation = augmentation or ("tutorial" if color == "rgb" else "none")
    if augmentation not in AUGMENTATIONS:
        raise EdgecnnError(f"must be one of {', '.join(AUGMENTATIONS)}, got {augmentation!r}", parameter="augmentation")
    return Recipe(
        name=arch.name,
        description=f"{arch.name} on class folders",
        architecture=arch.name,
        data="folders",
        image_size=(size[0], size[1]),
        color=color,
        resize="bilinear",
        epochs=epochs or arch.epochs,
        batch_size=batch_size,
        augmentation=augmentation,
        weights=weights,
        monitor="val_accuracy",
    )


def listing() -> list[str]:
    """One line per architecture and recipe: name, input-size limits, pretrained weights, description."""
    _load_builtin()
    lines = ["architectures (train one on your class folders):"]
    for arch in (_ARCHITECTURES[name] for name in sorted(_ARCHITECTURES)):
        size = f"{arch.default_size[0]}x{arch.default_size[1]} (min {arch.min_size})"
        weights = "imagenet weights" if arch.pretrained else "no pretrained weights"
        lines.append(f"  {arch.name:<17} {size:<17} {'/'.join(arch.colors):<8} {weights:<21} {arch.description}")
    lines.append("recipes (an architecture with its data and training settings):")
    for recipe in (_RECIPES[name] for name in sorted(_RECIPES)):
        size = f"{recipe.image_size[0]}x{recipe.image_size[1]}"
        lines.append(
            f"  {recipe.name:<17} {size:<17} {recipe.color:<8} {recipe.epochs} epochs, {recipe.architecture:<10} "
            f"{recipe.description}"
        )
    return lines


def display_names(recipe_name: str | None, class_names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The display names of recipe `recipe_name` for a model with these class names: none when
    no such recipe is registered or its class names differ (the model was relabelled)."""
    _load_builtin()
    recipe = _RECIPES.get(recipe_name or "")
    return dict(recipe.display_names) if recipe is not None and recipe.class_names == class_names else {}


def _load_builtin() -> None:
    from edgecnn.training import models  # noqa: F401  (registers the built-in architectures and recipes)
