"""Train a recipe, or an architecture on a user's class folders, and write its run directory."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

import edgecnn
from edgecnn.errors import EdgecnnError, first_line
from edgecnn.fileio import atomic_output, write_json_atomically, write_text_atomically
from edgecnn.training import data, distribute, registry
from edgecnn.training.cluster import BACKUP_DIR, BACKUP_STATE_FILE
from edgecnn.training.data import FolderDataSet, Splits
from edgecnn.training.registry import Recipe

MODEL_FILE = "model.keras"
SPLIT_LISTS = "split"  # RUN/split/{train,validation,test}.txt: one absolute image path per line
# What a run writes into its directory. A new run removes the previous run's copies before
# it trains, so nothing in the directory can be mistaken for this run's (other files stay).
RUN_ARTEFACTS = (
    MODEL_FILE,
    "history.json",
    "metrics.json",
    "curves.png",
    "confusion.png",
    "predictions.png",
    "class_names.json",
    "split.json",
    SPLIT_LISTS,
    "samples",
    "model.txt",
    "model.png",
    BACKUP_DIR,
)


def remove_previous_run(out_dir: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete RUN_ARTEFACTS left in `out_dir` by an earlier run (--overwrite), except those in `keep`."""
    for name in RUN_ARTEFACTS:
        if name in keep:
            continue
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def versions() -> dict[str, str]:
    """Versions of everything that shapes a trained model."""
    import tensorflow as tf

    return {
        "edgecnn": edgecnn.__version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


class EpochLog(keras.callbacks.Callback):
    """Records each epoch's logs, wall time and training phase (survives Ctrl-C, unlike fit's return value)."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict[str, float]] = []
        self.phase = 1
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        entry = {k: float(v) for k, v in (logs or {}).items()}
        entry["seconds"] = time.perf_counter() - self._start
        entry["phase"] = self.phase
        self.epochs.append(entry)


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever `monitor` improves (higher accuracy, lower loss), through
    `atomic_output`: Ctrl-C during a save never leaves half a model.keras."""

    def __init__(self, path: Path, monitor: str) -> None:
        super().__init__()
        self.path, self.monitor = path, monitor
        self.sign = -1.0 if registry.higher_is_better(monitor) else 1.0
        self.best = float("inf")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and self.sign * float(value) < self.best:
            self.best = self.sign * float(value)
            with atomic_output(self.path) as temp:
                self.model.save(temp)


@dataclass(frozen=True)
class Phase:
    """Epochs [first, last) of a run, trained at `learning_rate` with `trainable_base_layers` of the
    base unfrozen (None: the whole model trains; 0: the base is frozen)."""

    name: str
    first: int
    last: int
    learning_rate: float
    trainable_base_layers: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "epochs": [self.first + 1, self.last],
            "learning_rate": self.learning_rate,
            "trainable_base_layers": self.trainable_base_layers,
        }


def plan_phases(recipe: Recipe, epochs: int, learning_rate: float, base_layers: int) -> list[Phase]:
    """One phase from scratch; with pretrained weights, the head on a frozen base, then the top
    `fine_tune_fraction` of the base's layers at the rate x `fine_tune_rate_factor` (Keras'
    transfer-learning guide)."""
    if recipe.weights is None:
        return [Phase("train", 0, epochs, learning_rate)]
    head_epochs = max(1, math.ceil(epochs * recipe.head_epochs_fraction))
    phases = [Phase("head", 0, head_epochs, learning_rate, 0)]
    if head_epochs < epochs:
        unfrozen = max(1, math.ceil(base_layers * recipe.fine_tune_fraction))
        phases.append(Phase("fine-tune", head_epochs, epochs, learning_rate * recipe.fine_tune_rate_factor, unfrozen))
    return phases


def set_trainable_base(model: keras.Model, top_layers: int) -> None:
    """Freeze the base of a transfer model but its top `top_layers` layers; BatchNormalization stays
    frozen (inference mode) throughout."""
    from edgecnn.training.models import base_model

    base = base_model(model)
    if base is None:
        return
    base.trainable = top_layers > 0
    for index, layer in enumerate(base.layers):
        is_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = index >= len(base.layers) - top_layers and not is_norm


def resolve_recipe(
    name: str,
    image_size: tuple[int, int] | None,
    color: str | None,
    weights: str | None,
    augmentation: str | None,
    epochs: int | None,
) -> tuple[Recipe, bool]:
    """(recipe, whether it is ad hoc): the registered recipe `name`, or architecture `name` with the
    options (color may stay None, decided from the images); EdgecnnError for options a recipe fixes."""
    if registry.is_recipe(name):
        fixed = {"image_size": image_size, "color": color, "weights": weights, "augmentation": augmentation}
        if given := [key for key, value in fixed.items() if value is not None]:
            raise EdgecnnError(
                f"recipe {name!r} fixes it; train an architecture ({', '.join(registry.architecture_names())}) "
                "to choose it",
                parameter=given[0],
            )
        recipe = registry.get(name)
        return (recipe if epochs is None else dataclasses.replace(recipe, epochs=epochs)), False
    arch = registry.get_architecture(name)
    recipe = registry.adhoc_recipe(arch.name, image_size, color or arch.colors[0], epochs, 32, weights, augmentation)
    return recipe, True


def describe_data(
    recipe: Recipe, data_dir: Path | None, seed: int, split: tuple[float, float, float] | None
) -> tuple[FolderDataSet, int]:
    """The class folders a folder recipe trains on, every image decoded once: (description,
    how many images are grayscale); EdgecnnError when they cannot be its data."""
    if data_dir is None:
        raise EdgecnnError(
            "give a folder of class folders (DIR/CLASS/*.jpg, or DIR/train, DIR/validation and DIR/test holding them)",
            parameter="data_dir",
        )
    folders = data.describe_folders(data_dir, split, seed)
    if recipe.class_names is not None and len(folders.class_names) != len(recipe.class_names):
        raise EdgecnnError(
            f"recipe {recipe.name!r} trains {len(recipe.class_names)} classes ({', '.join(recipe.class_names)}), "
            f"the folders hold {len(folders.class_names)}: {', '.join(folders.class_names)}",
            parameter="data_dir",
            value=data_dir,
        )
    return folders, data.check_images_decode(folders.paths(), data_dir)


def train(
    model: str,
    data_dir: Path | None,
    out_dir: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 42,
    limit: int | None = None,
    argv: list[str] | None = None,
    strategy: str = "default",
    resume: bool | None = None,
    image_size: tuple[int, int] | None = None,
    color: str | None = None,
    weights: str | None = None,
    split: tuple[float, float, float] | None = None,
    class_weight: str | None = None,
    augmentation: str | None = None,
) -> dict[str, Any]:
    """Train recipe or architecture `model` on `data_dir`; write the run directory; return the metrics.

    An architecture (registry.architecture_names) trains on class folders in either layout
    of `data.describe_folders`, with `split` shares for a folder without train/; its input
    is `image_size` (default the architecture's), `color` ("rgb" or "gray"; default gray
    when every image is, else rgb), `weights` (None, "imagenet" or a weights file of the
    base: then the head trains on the frozen base, then the base's top is fine-tuned),
    `augmentation` (registry.AUGMENTATIONS; default the tutorial's for RGB, none for
    gray), `class_weight` None or "balanced". A recipe fixes all of these but the split.

    RUN_DIR (default runs/MODEL) gets model.keras (best by the recipe's monitor), model.txt
    (summary, MACs), model.png (diagram), history.json, metrics.json (per-class accuracy
    and confusion counts), curves.png, confusion.png, predictions.png, class_names.json,
    split.json (the files of every split), samples/ and run.json (command, versions, data
    layout, counts and fingerprint, settings). Ctrl-C stops training after the current
    batch and still evaluates the best checkpoint. A previous run's artefacts are removed
    once the data has loaded, before training starts; run.json ends as "finished",
    "interrupted" or "failed" (with the error), never "training".

    `strategy` is one of cluster.STRATEGIES (see distribute.place). `batch_size` is per
    replica: a step takes batch_size x replicas images (the global batch) and the
    learning rate follows the global batch (distribute.learning_rate_scale). In a
    multi-worker run only the chief writes RUN_DIR; the other workers return
    {"chief": False, "task", "epochs_run", "fit_seconds", "interrupted"}.

    A run that did not finish keeps its training state at the end of its last completed
    epoch in RUN_DIR/backup (distribute.RunBackup). With `resume` True the same run
    started again continues from there (EdgecnnError when there is no backup, or when the
    model, settings or data differ from the stopped run's); False starts over; None (the
    default) resumes a multi-worker run and starts a single-device one over.
    """
    recipe, adhoc = resolve_recipe(model, image_size, color, weights, augmentation, epochs)
    out_dir = out_dir or Path("runs") / model
    batch_size = recipe.batch_size if batch_size is None else batch_size  # the recipe's is the rate's reference
    if recipe.epochs < 1 or batch_size < 1:
        raise EdgecnnError(f"epochs and batch_size must be positive, got {recipe.epochs} and {batch_size}")
    if limit is not None and limit < 1:
        raise EdgecnnError("must be positive", parameter="limit", value=limit)
    if class_weight not in (None, "balanced"):
        raise EdgecnnError(f"must be balanced or none, got {class_weight!r}", parameter="class_weight")
    placement = distribute.place(strategy)  # first: a multi-worker strategy must exist before any TF op runs
    if recipe.weights is not None and placement.name == "multiworker":
        raise EdgecnnError(
            "pretrained weights train in two phases, which a multi-worker run does not do yet", parameter="weights"
        )
    global_batch = batch_size * placement.replicas
    keras.utils.set_random_seed(seed)
    folders = None
    if recipe.data == "fashion-mnist-idx":
        if split is not None:
            raise EdgecnnError("Fashion-MNIST's IDX files have their own split", parameter="split")
        splits = data.load_fashion_mnist(data_dir, global_batch, seed)
    else:
        folders, gray = describe_data(recipe, data_dir, seed, split)
        if adhoc and color is None and gray == len(folders.paths()) and "gray" in recipe.arch.colors:
            recipe = registry.adhoc_recipe(  # every image is gray: so is the model
                recipe.architecture, image_size, "gray", epochs, recipe.batch_size, weights, augmentation
            )
        splits = data.load_folders(folders, recipe.image_size, recipe.color, recipe.resize, global_batch, seed)
    class_names = recipe.class_names or (folders.class_names if folders is not None else ())
    if folders is not None:
        print(folders.summary())
        print(data_table(folders))
        if note := data.imbalance_note(folders):
            print(note)
    if limit is not None:
        splits.limit = limit
        splits.train = splits.train.unbatch().take(limit).batch(global_batch)  # what is evaluated
        splits.counts["train"] = min(limit, splits.counts["train"])
    weights_by_class = None
    if class_weight == "balanced":
        if folders is None:
            raise EdgecnnError("balanced class weights need class folders", parameter="class_weight")
        weights_by_class = data.balanced_class_weights(folders)
    rate_scale = distribute.learning_rate_scale(global_batch, recipe.batch_size)
    with placement.strategy.scope():
        network = recipe.build(len(class_names))
        from edgecnn.training.models import base_model

        base = base_model(network)
        phases = plan_phases(recipe, recipe.epochs, recipe.learning_rate * rate_scale, len(base.layers) if base else 0)
        if recipe.schedule is None:
            network.optimizer.learning_rate = phases[0].learning_rate
    if placement.name != "default":
        distribute.adapt_keras_fit(network, splits.train.element_spec, multi_worker=placement.name == "multiworker")
    name = f"{Path(str(data_dir)).name}-{recipe.architecture}" if adhoc else recipe.name
    context = RunContext(recipe, splits, class_names, phases, weights_by_class)
    if not placement.is_chief:
        with tempfile.TemporaryDirectory(prefix="edgecnn-worker-") as scratch:  # its writes go here, then away
            log, interrupted, fit_seconds = _fit(
                network, context, placement, Path(scratch), rate_scale, writes_run_dir=False
            )
        return {
            "chief": False,
            "task": placement.label,
            "epochs_run": len(log.epochs),
            "fit_seconds": round(fit_seconds, 1),
            "interrupted": interrupted,
        }

    backup_state = out_dir / BACKUP_DIR / BACKUP_STATE_FILE
    if resume and not backup_state.is_file():
        raise EdgecnnError(
            "has no backup to resume from (its run finished, or stopped before its first epoch ended)",
            parameter="out_dir",
            value=out_dir,
        )
    resuming = backup_state.is_file() and (resume or (resume is None and placement.name == "multiworker"))
    arch = recipe.arch
    run_info: dict[str, Any] = {
        "command": argv if argv is not None else sys.argv,
        "cwd": os.getcwd(),
        "model": {
            "name": name,
            "recipe": None if adhoc else recipe.name,
            "architecture": arch.name,
            "image_size": list(recipe.image_size),
            "color": recipe.color,
            "resize": recipe.resize,
            "preprocess": arch.preprocess,
            "output_activation": "sigmoid" if len(class_names) == 2 else "softmax",
            "weights": recipe.weights,
            "augmentation": recipe.augmentation,
        },
        "settings": {
            "strategy": placement.name,
            "replicas": placement.replicas,
            "workers": placement.workers,
            "epochs": recipe.epochs,
            "batch_size": batch_size,
            "global_batch_size": global_batch,
            "learning_rate_rule": f"recipe rate x sqrt(global_batch_size / {recipe.batch_size})",
            "learning_rate_scale": round(rate_scale, 8),
            "learning_rate": None if recipe.schedule is not None else round(phases[0].learning_rate, 10),
            "seed": seed,
            "limit": limit,
            "monitor": recipe.monitor,
            "early_stopping_patience": recipe.early_stopping_patience,
            "class_weight": None
            if weights_by_class is None
            else {class_names[k]: round(v, 6) for k, v in weights_by_class.items()},
            "phases": [phase.to_json() for phase in phases],
            # optimizer, loss (with any label smoothing), and whether XLA compiled the steps: the
            # config keeps compile()'s argument even where Keras refused it for the model's layers
            "compile": {**network.get_compile_config(), "jit_compile": network.jit_compile},
            "learning_rates": None
            if recipe.schedule is None
            else [round(recipe.schedule(epoch, recipe.epochs) * rate_scale, 8) for epoch in range(recipe.epochs)],
        },
        "data": {
            "source": splits.source,
            "counts": splits.counts,
            "sha256": splits.fingerprint,
            **(
                {}
                if folders is None
                else {
                    "layout": folders.layout,
                    "split": None if folders.split is None else list(folders.split),
                    "class_counts": folders.counts(),
                    "skipped_files": folders.skipped,
                }
            ),
        },
        "versions": versions(),
        "status": "training",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    keep: tuple[str, ...] = ()
    resume_after = 0
    if resuming:
        run_info["resumed_after_epochs"] = _check_resumable(out_dir, run_info, backup_state)
        keep = (MODEL_FILE, BACKUP_DIR)
        resume_after = run_info["resumed_after_epochs"][-1]
    removed = False
    try:
        remove_previous_run(out_dir, keep)
        removed = True
        write_json_atomically(out_dir / "run.json", run_info)
        write_json_atomically(out_dir / "class_names.json", list(class_names))
        if folders is not None:
            write_split(folders, out_dir)
        from edgecnn.training.summary import write_model_files

        if skipped := write_model_files(network, out_dir):  # model.txt, model.png
            print(skipped, file=sys.stderr)
        log, interrupted, fit_seconds = _fit(network, context, placement, out_dir, rate_scale, resume_after)
        metrics = _report(context, out_dir, log, interrupted, fit_seconds)
    except BaseException as exc:
        if not removed:  # stopped part way: finish, so this run's run.json never sits beside another run's files
            remove_previous_run(out_dir, keep)
        interrupted = isinstance(exc, KeyboardInterrupt)
        run_info["status"] = "interrupted" if interrupted else "failed"
        run_info["error"] = "interrupted before the first epoch finished" if interrupted else first_line(exc, limit=500)
        write_json_atomically(out_dir / "run.json", run_info)
        raise
    run_info["status"] = "interrupted" if metrics["interrupted"] else "finished"
    write_json_atomically(out_dir / "run.json", run_info)
    return metrics


def write_split(folders: FolderDataSet, out_dir: Path) -> None:
    """RUN/split.json (the data set's description, files per split) and RUN/split/SPLIT.txt, one
    absolute path per line: `edgecnn-infer MODEL @RUN/split/test.txt` classifies the test images."""
    write_json_atomically(out_dir / "split.json", folders.to_json())
    (out_dir / SPLIT_LISTS).mkdir(exist_ok=True)
    root = folders.root.resolve()
    for split, files in folders.files.items():
        write_text_atomically(out_dir / SPLIT_LISTS / f"{split}.txt", "".join(f"{root / path}\n" for path, _ in files))


def data_table(folders: FolderDataSet) -> str:
    """Images per class and split, one line per class."""
    counts = folders.counts()
    width = max(len(name) for name in folders.class_names)
    lines = [f"  {'class':<{width}}  " + "  ".join(f"{split:>10}" for split in counts)]
    for name in folders.class_names:
        lines.append(f"  {name:<{width}}  " + "  ".join(f"{counts[split][name]:>10}" for split in counts))
    return "\n".join(lines)


@dataclass
class RunContext:
    """What one run trains on and how: the recipe, the data, the class names, the phases."""

    recipe: Recipe
    splits: Splits
    class_names: tuple[str, ...]
    phases: list[Phase]
    class_weight: dict[int, float] | None = None

    def feed(self, dataset: Any) -> Any:
        """`dataset` as the model takes it (the architecture's preprocess mode applied)."""
        return data.with_preprocessing(dataset, self.recipe.arch.preprocess)


def _check_resumable(out_dir: Path, run_info: dict[str, Any], backup_state: Path) -> list[int]:
    """The epochs after which this run was resumed so far, this time included; EdgecnnError when the
    backup belongs to a run of another model, other settings or other data."""
    try:
        previous = json.loads((out_dir / "run.json").read_text())
    except (OSError, ValueError):
        previous = {}

    def identity(info: dict[str, Any]) -> dict[str, Any]:  # what must match; not where the data was read from
        data = {key: value for key, value in info.get("data", {}).items() if key != "source"}
        return {"model": info.get("model"), "settings": info.get("settings"), "data": data}

    differs = [key for key, value in identity(previous).items() if value != identity(run_info)[key]]
    if differs:
        raise EdgecnnError(
            f"holds the backup of an unfinished run with other {' and '.join(differs)} (see its run.json): "
            "resume it with those, or overwrite it to start over",
            parameter="out_dir",
            value=out_dir,
        )
    completed = distribute.completed_epochs(backup_state.parent)
    print(f"resuming {out_dir} after epoch {completed}", file=sys.stderr)
    return [*previous.get("resumed_after_epochs", []), completed]


def _fit(
    model: keras.Model,
    context: RunContext,
    placement: distribute.Placement,
    out_dir: Path,
    rate_scale: float,
    resume_after: int = 0,
    writes_run_dir: bool = True,
) -> tuple[EpochLog, bool, float]:
    """Run model.fit for each phase with the run's callbacks: (epoch log, whether Ctrl-C stopped
    it, seconds). Checkpoints go to out_dir/model.keras, the backup of every epoch to
    out_dir/backup, removed when the last phase ends. `resume_after` epochs are restored from
    that backup: the phases they completed are skipped, and training reads on from the next
    epoch (`Splits.train_epochs`).
    """
    recipe = context.recipe
    epochs = recipe.epochs
    model_path = out_dir / MODEL_FILE
    log = EpochLog()
    checkpoint = BestCheckpoint(model_path, recipe.monitor)
    callbacks: list[keras.callbacks.Callback] = [checkpoint, log]
    if recipe.schedule is not None:
        schedule = recipe.schedule
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: schedule(epoch, epochs) * rate_scale))
    early_stopping = None
    if recipe.early_stopping_patience is not None:
        early_stopping = keras.callbacks.EarlyStopping(
            monitor=recipe.monitor, patience=recipe.early_stopping_patience, restore_best_weights=True
        )
        callbacks.append(early_stopping)
    multi_worker = placement.name == "multiworker"
    stop = distribute.DeferredStop(placement.label, placement.strategy if multi_worker else None)
    callbacks.append(stop)
    backup = distribute.RunBackup(
        out_dir / BACKUP_DIR, log, checkpoint, early_stopping, placement.strategy if multi_worker else None
    )
    callbacks.append(backup)  # last: it restores and records the others' state
    validation = context.feed(context.splits.validation)
    started = time.perf_counter()
    interrupted = False
    try:
        with stop.deferring_signals():
            for number, phase in enumerate(context.phases, start=1):
                stop.raise_if_requested()
                if phase.last <= resume_after:
                    continue
                log.phase = number
                if phase.trainable_base_layers is not None:
                    with placement.strategy.scope():
                        set_trainable_base(model, phase.trainable_base_layers)
                        if number > 1:  # a new optimizer at the phase's rate, as the transfer-learning guide
                            from edgecnn.training.models import compile_for

                            compile_for(model, recipe, phase.learning_rate)
                first = max(phase.first, resume_after)
                model.fit(
                    context.feed(context.splits.train_epochs(first, phase.last)),
                    steps_per_epoch=context.splits.steps_per_epoch,
                    validation_data=validation,
                    initial_epoch=first,
                    epochs=phase.last,
                    callbacks=callbacks,
                    class_weight=context.class_weight,
                )
                if early_stopping is not None and early_stopping.stopped_epoch:
                    break
            stop.raise_if_requested()
        shutil.rmtree(out_dir / BACKUP_DIR, ignore_errors=True)
    except KeyboardInterrupt:
        if not writes_run_dir or not model_path.exists():  # the previous run's model was removed: this one is ours
            raise
        interrupted = True
        print("\ninterrupted: evaluating the best checkpoint so far", file=sys.stderr)
    except distribute.LOST_WORKER_ERRORS as exc:
        if not multi_worker:
            raise
        after = f"after epoch {backup.completed_epochs}" if backup.completed_epochs else "from the start"
        print()  # end the progress bar's line
        raise EdgecnnError(
            f"{placement.label}: the cluster lost a worker ({distribute.lost_worker_reason(exc)}); "
            f"start every worker again with the same command to resume {after}"
        ) from None
    return log, interrupted, time.perf_counter() - started


def _report(context: RunContext, out_dir: Path, log: EpochLog, interrupted: bool, fit_seconds: float) -> dict[str, Any]:
    """Evaluate the best checkpoint of this run, and write everything but run.json. The pictures
    and per-class accuracy are of test/, or of validation/ when the data set has no test split."""
    recipe, splits, class_names = context.recipe, context.splits, context.class_names
    model_path = out_dir / MODEL_FILE
    if not model_path.exists():
        raise EdgecnnError(
            f"training saved no checkpoint ({recipe.monitor} never became a finite number); nothing to evaluate"
        )

    best = keras.models.load_model(model_path, safe_mode=True)
    metrics: dict[str, Any] = {}
    for split, ds in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        if ds is not None:
            loss, accuracy = best.evaluate(context.feed(ds), verbose=0)
            metrics[split] = {"loss": float(loss), "accuracy": float(accuracy)}
    history = {key: [e[key] for e in log.epochs if key in e] for key in (log.epochs[0] if log.epochs else {})}
    best_epoch = None
    if recipe.monitor in history:
        pick = np.argmax if registry.higher_is_better(recipe.monitor) else np.argmin
        best_epoch = int(pick(history[recipe.monitor])) + 1
    shown = "test" if splits.test is not None else "validation"
    from edgecnn.training import report

    activation = "sigmoid" if len(class_names) == 2 else "softmax"
    labels, probabilities, images = report.predict_split(
        best, getattr(splits, shown), splits.counts[shown], prepare=lambda x: data.normalise(x, recipe.arch.preprocess)
    )
    counts = report.confusion_matrix(labels, report.predicted_labels(probabilities, activation), len(class_names))
    metrics.update(
        {
            "epochs_run": len(log.epochs),
            "best_epoch": best_epoch,
            "fit_seconds": round(fit_seconds, 1),
            "interrupted": interrupted,
            "evaluated_split": shown,
            "per_class_accuracy": {
                name: (float(counts[i, i] / counts[i].sum()) if counts[i].sum() else None)
                for i, name in enumerate(class_names)
            },
            "confusion": {"classes": list(class_names), "counts": counts.tolist()},
        }
    )
    write_json_atomically(out_dir / "history.json", history)
    write_json_atomically(out_dir / "metrics.json", metrics)

    report.plot_curves(history, out_dir / "curves.png", title=recipe.name)
    report.plot_confusion(counts, class_names, shown, out_dir / "confusion.png")
    report.plot_predictions(images, labels, probabilities, class_names, activation, shown, out_dir / "predictions.png")
    report.write_samples(images, labels, class_names, out_dir / "samples")
    return metrics
