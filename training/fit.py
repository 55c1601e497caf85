"""Train a registered model and write its run directory."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

import edgecnn
from edgecnn.errors import EdgecnnError, first_line
from edgecnn.fileio import atomic_output, write_json_atomically
from edgecnn.training import distribute, registry
from edgecnn.training.cluster import BACKUP_DIR
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
    strategy: str = "default",
    resume: bool = True,
) -> dict[str, Any]:
    """Fit `model_name` on its data; write the run directory; return the metrics.

    RUN_DIR gets model.keras (best by the recipe's monitor), model.txt (summary, MACs),
    model.png (diagram), history.json, metrics.json, curves.png, confusion.png, predictions.png,
    class_names.json, samples/ (a few test images as PNG) and run.json (command, versions, data
    fingerprint, settings). Ctrl-C stops training after the current batch and still evaluates the
    best checkpoint. A previous run's artefacts are removed once the data has loaded, before training starts; run.json
    ends as "finished", "interrupted" or "failed" (with the error), never "training".

    `strategy` is one of cluster.STRATEGIES (see distribute.place). `batch_size` is per
    replica: a step takes batch_size × replicas images (the global batch) and the
    learning rate follows the global batch (distribute.learning_rate_scale). In a
    multi-worker run only the chief writes RUN_DIR; the other workers return
    {"chief": False, "task", "epochs_run", "fit_seconds", "interrupted"}. A multi-worker
    run that did not finish keeps its training state in RUN_DIR/backup; with `resume`
    the same run started again continues after its last completed epoch.
    """
    recipe = registry.get(model_name)
    epochs = recipe.epochs if epochs is None else epochs
    batch_size = recipe.batch_size if batch_size is None else batch_size
    if epochs < 1 or batch_size < 1:
        raise EdgecnnError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    if limit is not None and limit < 1:
        raise EdgecnnError("must be positive", parameter="limit", value=limit)
    placement = distribute.place(strategy)  # first: a multi-worker strategy must exist before any TF op runs
    global_batch = batch_size * placement.replicas
    keras.utils.set_random_seed(seed)
    splits: Splits = recipe.load_data(data_dir, global_batch, seed)
    if limit is not None:
        splits.train = splits.train.unbatch().take(limit).batch(global_batch)
        splits.counts["train"] = min(limit, splits.counts["train"])
    with placement.strategy.scope():
        model = recipe.build()
        rate_scale = distribute.learning_rate_scale(global_batch, recipe.batch_size)
        learning_rate = None
        if recipe.learning_rate is None:
            learning_rate = float(model.optimizer.learning_rate.numpy()) * rate_scale
            model.optimizer.learning_rate = learning_rate
    if placement.name != "default":
        distribute.adapt_keras_fit(model, splits.train.element_spec, multi_worker=placement.name == "multiworker")
    if not placement.is_chief:
        with tempfile.TemporaryDirectory(prefix="edgecnn-worker-") as scratch:  # its writes go here, then away
            log, interrupted, fit_seconds = _fit(
                model, recipe, splits, placement, Path(scratch), epochs, rate_scale, writes_run_dir=False
            )
        return {
            "chief": False,
            "task": placement.label,
            "epochs_run": len(log.epochs),
            "fit_seconds": round(fit_seconds, 1),
            "interrupted": interrupted,
        }

    backup_state = out_dir / BACKUP_DIR / distribute.BACKUP_STATE_FILE
    resuming = placement.name == "multiworker" and resume and backup_state.is_file()
    run_info: dict[str, Any] = {
        "command": argv if argv is not None else sys.argv,
        "cwd": os.getcwd(),
        "model": {
            "name": recipe.name,
            "color": recipe.color,
            "resize": recipe.resize,
            "output_activation": recipe.output_activation,
        },
        "settings": {
            "strategy": placement.name,
            "replicas": placement.replicas,
            "workers": placement.workers,
            "epochs": epochs,
            "batch_size": batch_size,
            "global_batch_size": global_batch,
            "learning_rate_rule": f"recipe rate x sqrt(global_batch_size / {recipe.batch_size})",
            "learning_rate_scale": round(rate_scale, 8),
            "learning_rate": None if learning_rate is None else round(learning_rate, 10),
            "seed": seed,
            "limit": limit,
            "monitor": recipe.monitor,
            "early_stopping_patience": recipe.early_stopping_patience,
            # optimizer, loss (with any label smoothing), and whether XLA compiled the steps: the
            # config keeps compile()'s argument even where Keras refused it for the model's layers
            "compile": {**model.get_compile_config(), "jit_compile": model.jit_compile},
            "learning_rates": None
            if recipe.learning_rate is None
            else [round(recipe.learning_rate(epoch, epochs) * rate_scale, 8) for epoch in range(epochs)],
        },
        "data": {"source": splits.source, "counts": splits.counts, "sha256": splits.fingerprint},
        "versions": versions(),
        "status": "training",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    keep: tuple[str, ...] = ()
    if resuming:
        run_info["resumed_after_epochs"] = _check_resumable(out_dir, run_info, backup_state)
        keep = (MODEL_FILE, BACKUP_DIR)
    removed = False
    try:
        remove_previous_run(out_dir, keep)
        removed = True
        write_json_atomically(out_dir / "run.json", run_info)
        write_json_atomically(out_dir / "class_names.json", list(recipe.class_names))
        from edgecnn.training.summary import write_model_files

        if skipped := write_model_files(model, out_dir):  # model.txt, model.png
            print(skipped, file=sys.stderr)
        log, interrupted, fit_seconds = _fit(model, recipe, splits, placement, out_dir, epochs, rate_scale)
        metrics = _report(recipe, splits, out_dir, log, interrupted, fit_seconds)
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
    completed = json.loads(backup_state.read_text())["epoch"]
    print(f"resuming {out_dir} after epoch {completed}", file=sys.stderr)
    return [*previous.get("resumed_after_epochs", []), completed]


def _fit(
    model: keras.Model,
    recipe: Any,
    splits: Splits,
    placement: distribute.Placement,
    out_dir: Path,
    epochs: int,
    rate_scale: float,
    writes_run_dir: bool = True,
) -> tuple[EpochLog, bool, float]:
    """Run model.fit with the run's callbacks: (epoch log, whether Ctrl-C stopped it, seconds).

    Checkpoints go to out_dir/model.keras, a multi-worker backup to out_dir/backup.
    """
    model_path = out_dir / MODEL_FILE
    log = EpochLog()
    checkpoint = BestCheckpoint(model_path, recipe.monitor)
    callbacks: list[keras.callbacks.Callback] = [checkpoint, log]
    if recipe.learning_rate is not None:
        schedule = recipe.learning_rate
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: schedule(epoch, epochs) * rate_scale))
    early_stopping = None
    if recipe.early_stopping_patience is not None:
        early_stopping = keras.callbacks.EarlyStopping(
            monitor=recipe.monitor, patience=recipe.early_stopping_patience, restore_best_weights=True
        )
        callbacks.append(early_stopping)
    signals: contextlib.AbstractContextManager = contextlib.nullcontext()
    backup = None
    if placement.name == "multiworker":
        agreed_stop = distribute.AgreedStop(placement.strategy, placement.label)
        backup = distribute.ClusterBackup(out_dir / BACKUP_DIR, placement.strategy, log, checkpoint, early_stopping)
        callbacks += [agreed_stop, backup]  # the backup last: it restores and records the others' state
        signals = agreed_stop.deferring_signals()
    started = time.perf_counter()
    interrupted = False
    try:
        with signals:
            model.fit(splits.train, validation_data=splits.validation, epochs=epochs, callbacks=callbacks)
    except KeyboardInterrupt:
        if not writes_run_dir or not model_path.exists():  # the previous run's model was removed: this one is ours
            raise
        interrupted = True
        print("\ninterrupted: evaluating the best checkpoint so far", file=sys.stderr)
    except distribute.LOST_WORKER_ERRORS as exc:
        if backup is None:
            raise
        after = f"after epoch {backup.completed_epochs}" if backup.completed_epochs else "from the start"
        print()  # end the progress bar's line
        raise EdgecnnError(
            f"{placement.label}: the cluster lost a worker ({distribute.lost_worker_reason(exc)}); "
            f"start every worker again with the same command to resume {after}"
        ) from None
    return log, interrupted, time.perf_counter() - started


def _report(
    recipe: Any, splits: Splits, out_dir: Path, log: EpochLog, interrupted: bool, fit_seconds: float
) -> dict[str, Any]:
    """Evaluate the best checkpoint of this run, and write everything but run.json."""
    model_path = out_dir / MODEL_FILE
    if not model_path.exists():
        raise EdgecnnError(
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
