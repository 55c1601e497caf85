"""Train a registered model and write its run directory."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

import edgecnn
from edgecnn.errors import UserError, first_line
from edgecnn.fileio import atomic_output, write_json_atomically
from edgecnn.training import registry
from edgecnn.training.data import Splits

MODEL_FILE = "model.keras"
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
    "samples",
    "model.txt",
    "model.png",
)


def remove_previous_run(out_dir: Path) -> None:
    """Delete RUN_ARTEFACTS left in `out_dir` by an earlier run (--overwrite)."""
    for name in RUN_ARTEFACTS:
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
    """Records each epoch's logs and wall time (survives Ctrl-C, unlike fit's return value)."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict[str, float]] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        entry = {k: float(v) for k, v in (logs or {}).items()}
        entry["seconds"] = time.perf_counter() - self._start
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


def train(
    model_name: str,
    data_dir: Path | None,
    out_dir: Path,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 42,
    limit: int | None = None,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """Fit `model_name` on its data; write the run directory; return the metrics.

    RUN_DIR gets model.keras (best by the recipe's monitor), model.txt (summary, MACs),
    model.png (diagram), history.json, metrics.json, curves.png, confusion.png, predictions.png,
    class_names.json, samples/ (a few test images as PNG) and run.json (command, versions, data
    fingerprint, settings). Ctrl-C stops training after the current batch and still evaluates the
    best checkpoint. A previous run's artefacts are removed once the data has loaded, before training starts; run.json
    ends as "finished", "interrupted" or "failed" (with the error), never "training".
    """
    recipe = registry.get(model_name)
    epochs = recipe.epochs if epochs is None else epochs
    batch_size = recipe.batch_size if batch_size is None else batch_size
    if epochs < 1 or batch_size < 1:
        raise UserError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    keras.utils.set_random_seed(seed)
    splits: Splits = recipe.load_data(data_dir, batch_size, seed)
    if limit is not None:
        if limit < 1:
            raise UserError("must be positive", parameter="limit", value=limit)
        splits.train = splits.train.unbatch().take(limit).batch(batch_size)
        splits.counts["train"] = min(limit, splits.counts["train"])
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_previous_run(out_dir)
    model_path = out_dir / MODEL_FILE
    run_info = {
        "command": argv if argv is not None else sys.argv,
        "cwd": os.getcwd(),
        "model": {
            "name": recipe.name,
            "color": recipe.color,
            "resize": recipe.resize,
            "output_activation": recipe.output_activation,
        },
        "settings": {
            "epochs": epochs,
            "batch_size": batch_size,
            "seed": seed,
            "limit": limit,
            "monitor": recipe.monitor,
            "early_stopping_patience": recipe.early_stopping_patience,
            "learning_rates": None
            if recipe.learning_rate is None
            else [round(recipe.learning_rate(epoch, epochs), 8) for epoch in range(epochs)],
        },
        "data": {"source": splits.source, "counts": splits.counts, "sha256": splits.fingerprint},
        "versions": versions(),
        "status": "training",
    }
    write_json_atomically(out_dir / "run.json", run_info)
    try:
        metrics = _fit_and_report(recipe, splits, out_dir, model_path, epochs, batch_size)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        run_info["status"] = "interrupted" if interrupted else "failed"
        run_info["error"] = "interrupted before the first epoch finished" if interrupted else first_line(exc, limit=500)
        write_json_atomically(out_dir / "run.json", run_info)
        raise
    run_info["status"] = "interrupted" if metrics["interrupted"] else "finished"
    write_json_atomically(out_dir / "run.json", run_info)
    return metrics


def _fit_and_report(
    recipe: Any, splits: Splits, out_dir: Path, model_path: Path, epochs: int, batch_size: int
) -> dict[str, Any]:
    """Fit, evaluate the best checkpoint of this run, and write everything but run.json."""
    write_json_atomically(out_dir / "class_names.json", list(recipe.class_names))
    model = recipe.build()
    from edgecnn.training.summary import write_model_files

    if skipped := write_model_files(model, out_dir):  # model.txt, model.png
        print(skipped, file=sys.stderr)
    log = EpochLog()
    callbacks = [BestCheckpoint(model_path, recipe.monitor), log]
    if recipe.learning_rate is not None:
        schedule = recipe.learning_rate
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: schedule(epoch, epochs)))
    if recipe.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=recipe.monitor, patience=recipe.early_stopping_patience, restore_best_weights=True
            )
        )
    started = time.perf_counter()
    interrupted = False
    try:
        model.fit(splits.train, validation_data=splits.validation, epochs=epochs, callbacks=callbacks)
    except KeyboardInterrupt:
        if not model_path.exists():  # the previous run's model was removed: this one is ours or none
            raise
        interrupted = True
        print("\ninterrupted: evaluating the best checkpoint so far", file=sys.stderr)
    fit_seconds = time.perf_counter() - started
    if not model_path.exists():
        raise UserError(
            f"training saved no checkpoint ({recipe.monitor} never became a finite number); nothing to evaluate"
        )

    best = keras.models.load_model(model_path, safe_mode=True)
    metrics: dict[str, Any] = {}
    for split, ds in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        loss, accuracy = best.evaluate(ds, verbose=0)
        metrics[split] = {"loss": float(loss), "accuracy": float(accuracy)}
    history = {key: [e[key] for e in log.epochs if key in e] for key in (log.epochs[0] if log.epochs else {})}
    best_epoch = None
    if recipe.monitor in history:
        pick = np.argmax if registry.higher_is_better(recipe.monitor) else np.argmin
        best_epoch = int(pick(history[recipe.monitor])) + 1
    metrics.update(
        {
            "epochs_run": len(log.epochs),
            "best_epoch": best_epoch,
            "fit_seconds": round(fit_seconds, 1),
            "interrupted": interrupted,
        }
    )
    write_json_atomically(out_dir / "history.json", history)
    write_json_atomically(out_dir / "metrics.json", metrics)

    from edgecnn.training import report

    report.plot_curves(history, out_dir / "curves.png", title=recipe.name)
    labels, probabilities, images = report.predict_split(best, splits.test, splits.counts["test"])
    report.plot_confusion(
        labels, probabilities, recipe.class_names, recipe.output_activation, out_dir / "confusion.png"
    )
    report.plot_predictions(
        images, labels, probabilities, recipe.class_names, recipe.output_activation, out_dir / "predictions.png"
    )
    report.write_samples(images, labels, recipe.class_names, out_dir / "samples")
    return metrics
