"""Training on several devices or machines with tf.distribute.

`place` picks the strategy. Under MultiWorkerMirroredStrategy every worker runs the same
`fit`; their collective ops (the gradient all-reduce of every step) only complete when
all of them take part, so whatever changes the course of training must happen on every
worker at the same step: `DeferredStop` turns a signal on any worker into a stop on all of
them, and `RunBackup` restores the chief's backup on every worker.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from edgecnn.errors import EdgecnnError
from edgecnn.fileio import write_text_atomically
from edgecnn.training.cluster import BACKUP_STATE_FILE, STRATEGIES, ClusterTask, read_tf_config

# Errors a worker gets when another one died, froze (no heartbeat for about 10 s) or left the cluster.
LOST_WORKER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.DeadlineExceededError,
    tf.errors.CancelledError,
)
# Workers compare stop requests once every this many batches: one scalar all-reduce
# (about 2 ms between two processes here, against 20-30 ms for an fmnist step).
STOP_CHECK_BATCHES = 10
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@dataclass(frozen=True)
class Placement:
    """Where this process trains: the strategy, its replicas in all workers, and its task in a cluster."""

    strategy: Any  # tf.distribute.Strategy
    name: str  # default, mirrored or multiworker (auto resolved)
    replicas: int
    task: ClusterTask | None  # None unless multiworker

    @property
    def is_chief(self) -> bool:
        return self.task is None or self.task.is_chief

    @property
    def workers(self) -> int:
        return 1 if self.task is None else self.task.workers

    @property
    def label(self) -> str:
        return "this machine" if self.task is None else self.task.label


def place(name: str) -> Placement:
    """Create the strategy called `name` (one of cluster.STRATEGIES).

    default: TensorFlow's default device. mirrored: every GPU of this machine, or
    without GPUs every logical CPU device (normally one). multiworker: the workers
    TF_CONFIG lists, each with all its GPUs (or its CPU); it blocks until every one
    has started. auto: mirrored when more than one GPU is visible, else default. Must
    run before TensorFlow executes anything (collective ops are configured at start-up).
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"
    task = None
    if name == "multiworker":
        task = read_tf_config(os.environ.get("TF_CONFIG"))
        print(f"{task.label} of {task.workers}: waiting for every worker in TF_CONFIG to start", file=sys.stderr)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        if os.environ.get("TF_CONFIG"):
            print(f"note: TF_CONFIG is set but the strategy is {name}: training on this machine only", file=sys.stderr)
        if name == "mirrored":
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
        else:
            strategy = tf.distribute.get_strategy()
    return Placement(strategy=strategy, name=name, replicas=strategy.num_replicas_in_sync, task=task)


def learning_rate_scale(global_batch: int, recipe_batch: int) -> float:
    """Factor on a recipe's learning rate when a step sees `global_batch` images instead of `recipe_batch`.

    The square-root rule (Malladi et al., NeurIPS 2022, for Adam and RMSprop, the recipes'
    optimizers): the rate depends on the global batch only, so the same global batch
    trains the same way on one device or eight.
    """
    return math.sqrt(global_batch / recipe_batch)


def adapt_keras_fit(model: keras.Model, element_spec: Any, multi_worker: bool) -> None:
    """Fix two things in Keras 3.15's fit and evaluate under a tf.distribute strategy.

    Before the first step Keras builds the model from a batch it draws from a fresh
    iterator of the training set. For a dataset that reshuffles on each iteration that
    uses up the seed's first order: the same seed would train on another order than on
    one device (with --limit, on other images). Under MultiWorkerMirroredStrategy it also
    fails, averaging the whole nested batch with `strategy.reduce`, which takes one value
    (keras-team/keras#20585). The batch only gives shapes: build from `element_spec`.
    There, too, Keras averages each step's scalar logs with `axis=0`, which fails: they
    are handed over as 1-element vectors, whose mean over axis 0 and all replicas is the
    mean Keras means.
    """

    def build_from_element_spec(iterator: Any = None, data_batch: Any = None) -> None:
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=element_spec)

    def vector_logs(step: Any) -> Any:
        def step_with_vector_logs(data: Any) -> Any:
            return {name: tf.reshape(value, [-1]) for name, value in step(data).items()}

        return step_with_vector_logs

    model._maybe_symbolic_build = build_from_element_spec
    if multi_worker:
        model.train_step = vector_logs(model.train_step)
        model.test_step = vector_logs(model.test_step)


def broadcast_from_chief(strategy: Any, values: list[Any]) -> list[tf.Tensor]:
    """`values` as the chief holds them, on every worker: an all-reduce in which only replica 0 (the
    chief's first device) contributes. Computed in float64, exact for float32 and integers below 2**53."""

    def keep_first_replica(tensors: list[tf.Tensor]) -> list[tf.Tensor]:
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)
        return context.all_reduce(
            tf.distribute.ReduceOp.SUM, [tf.where(first, tensor, tf.zeros_like(tensor)) for tensor in tensors]
        )

    @tf.function
    def broadcast(tensors: list[tf.Tensor]) -> Any:
        return strategy.run(keep_first_replica, args=(tensors,))

    summed = broadcast([tf.cast(tf.convert_to_tensor(value), tf.float64) for value in values])
    return [strategy.experimental_local_results(tensor)[0] for tensor in summed]


class DeferredStop(keras.callbacks.Callback):
    """Ctrl-C, SIGTERM or SIGHUP stop training after a batch, never in the middle of one.

    Raised straight from a signal handler, the KeyboardInterrupt lands in whatever Python
    code runs at that moment; inside TensorFlow's (an iterator's destructor between two
    fits, say) it is printed as "ignored" and the run carries on. So while
    `deferring_signals` is active a signal only records a request, and the stop is raised
    at the end of a training or validation batch, or by `raise_if_requested` between fits:
    what the previous handler would have raised (KeyboardInterrupt, or the CLI's
    Interrupted for SIGTERM). A second signal stops at once.

    With a multi-worker `strategy`, one worker leaving alone would leave the others
    blocked in their next collective op: every STOP_CHECK_BATCHES batches the workers add
    up their requests, and if any asked, all stop there (the others with KeyboardInterrupt).
    """

    def __init__(self, label: str, strategy: Any = None) -> None:
        super().__init__()
        self.label = label
        self.requested = 0  # the signal number, 0 for none
        self.batches = 0
        self._previous: dict[int, Any] = {}
        self._requests_in_cluster = None
        if strategy is not None:

            @tf.function
            def requests_in_cluster(flag: tf.Tensor) -> tf.Tensor:
                return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(flag,)), axis=None)

            self._requests_in_cluster = requests_in_cluster

    @contextlib.contextmanager
    def deferring_signals(self) -> Iterator[None]:
        """While inside, STOP_SIGNALS request a stop instead of raising (main thread only)."""

        def request(signum: int, frame: object) -> None:
            if self.requested:
                self._raise_as_before(signum)
            self.requested = signum
            cluster = self._requests_in_cluster is not None
            within = f"every worker within {STOP_CHECK_BATCHES} batches" if cluster else "after this batch"
            print(
                f"\n{self.label}: {signal.Signals(signum).name}: stopping {within} (again to stop at once)",
                file=sys.stderr,
            )

        try:
            self._previous = {signum: signal.signal(signum, request) for signum in STOP_SIGNALS}
        except ValueError:  # not the main thread: signals stay as they were
            self._previous = {}
        try:
            yield
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

    def raise_if_requested(self) -> None:
        """Raise the stop a signal asked for, if one did (single-process runs: between fits)."""
        if self.requested:
            print(flush=True)  # end the progress bar's line
            self._raise_as_before(self.requested)

    def _raise_as_before(self, signum: int) -> None:
        handler = self._previous.get(signum)
        if callable(handler):
            handler(signum, None)
        raise KeyboardInterrupt

    def _check(self) -> None:
        if self._requests_in_cluster is None:
            self.raise_if_requested()
            return
        self.batches += 1
        if self.batches % STOP_CHECK_BATCHES:
            return
        if float(self._requests_in_cluster(tf.constant(1.0 if self.requested else 0.0))) > 0:
            self.raise_if_requested()
            print(flush=True)
            print(f"{self.label}: another worker was interrupted: stopping", file=sys.stderr)
            raise KeyboardInterrupt

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check()


class RunBackup(keras.callbacks.BackupAndRestore):
    """The training state at the end of every epoch, from which a stopped run resumes.

    At the end of each epoch it saves the weights, the optimizer's state and the epoch
    (Keras' files) and, last, `state.json`: the history so far, the phase, the state of
    the checkpoint and early-stopping callbacks, and the augmentation and dropout layers'
    random-generator states (so a resumed run draws the numbers an unstopped one would).
    At the start of fit it loads them; in a multi-worker run (`strategy` given) the chief
    then broadcasts all of it to the other workers (which save theirs into a temporary
    folder), so a cluster restarted with the same commands continues where the chief's
    backup ends. The backup stays when fit ends; `_fit` removes it once the whole run has
    finished. Must come after `log`, `checkpoint` and `early_stopping` in the callback
    list: its on_train_begin overrides their reset, its on_epoch_end records their update.
    """

    def __init__(
        self,
        backup_dir: Path,
        log: Any,
        checkpoint: Any,
        early_stopping: keras.callbacks.EarlyStopping | None,
        strategy: Any = None,
    ) -> None:
        super().__init__(str(backup_dir), delete_checkpoint=False)
        self.state_path = backup_dir / BACKUP_STATE_FILE
        self.strategy, self.log, self.checkpoint, self.early_stopping = strategy, log, checkpoint, early_stopping
        self.completed_epochs = 0

    def _callback_state(self) -> list[float]:
        stopping = self.early_stopping
        if stopping is None:
            return [math.nan, math.nan, math.nan]
        best = math.nan if stopping.best is None else float(stopping.best)
        return [float(stopping.wait), best, float(stopping.best_epoch)]

    def _seed_states(self) -> list[Any]:
        return [variable for variable in self.model.variables if variable.name == "seed_generator_state"]

    def on_train_begin(self, logs: dict | None = None) -> None:
        state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        with warnings.catch_warnings():  # a backup from the end of the previous phase holds that phase's optimizer
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            super().on_train_begin(logs)  # loads the weights and sets the initial epoch if there is a backup
        completed = self.model._initial_epoch or 0
        if completed:
            if state.get("epoch") != completed:
                raise EdgecnnError(
                    f"the backup in {self.backup_dir} is incomplete (weights of epoch {completed}, "
                    f"state of epoch {state.get('epoch')}); overwrite the run directory to start over"
                )
            self.log.epochs = state["history"][:completed]
            self.checkpoint.best = state["checkpoint_best"]
            if self.early_stopping is not None and state["early_stopping"] is not None:
                self.early_stopping.wait, self.early_stopping.best, self.early_stopping.best_epoch = state[
                    "early_stopping"
                ]
            for variable, value in zip(self._seed_states(), state.get("seed_states", []), strict=False):
                variable.assign(tf.constant(value, dtype=variable.dtype))
        self.completed_epochs = completed
        if self.strategy is not None:
            self._broadcast(completed)

    def _broadcast(self, completed: int) -> None:
        """Every worker takes the chief's weights, optimizer, epoch and callback state."""
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        variables = [*self.model.weights, *optimizer.variables, *self._seed_states()]
        scalars = [float(completed), float(self.checkpoint.best), *self._callback_state()]
        shared = broadcast_from_chief(self.strategy, [variable.value for variable in variables] + [scalars])
        for variable, value in zip(variables, shared[:-1], strict=True):
            variable.assign(tf.cast(value, variable.dtype))
        epoch, checkpoint_best, wait, best, best_epoch = (float(x) for x in shared[-1].numpy())
        self.completed_epochs = int(epoch)
        self.model._initial_epoch = int(epoch)
        self.checkpoint.best = checkpoint_best
        if self.early_stopping is not None and not math.isnan(wait):
            self.early_stopping.wait = int(wait)
            self.early_stopping.best = None if math.isnan(best) else best
            self.early_stopping.best_epoch = int(best_epoch)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        self.completed_epochs = epoch + 1
        stopping = self.early_stopping
        state = {
            "epoch": epoch + 1,
            "phase": self.log.phase,
            "history": self.log.epochs,
            "checkpoint_best": self.checkpoint.best,
            "early_stopping": None
            if stopping is None
            else [stopping.wait, None if stopping.best is None else float(stopping.best), stopping.best_epoch],
            "seed_states": [variable.numpy().tolist() for variable in self._seed_states()],
        }
        write_text_atomically(self.state_path, json.dumps(state, allow_nan=True) + "\n")


def completed_epochs(backup_dir: Path) -> int:
    """The epochs a run's backup has finished (0 when there is none)."""
    path = backup_dir / BACKUP_STATE_FILE
    return int(json.loads(path.read_text())["epoch"]) if path.is_file() else 0


def lost_worker_reason(exc: Exception) -> str:
    """The line of a collective-op error that says why (the socket closed, a task stopped its heartbeat)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "aborted by:" in line:
            reason = line.split("aborted by:", 1)[1].strip()
            if reason.endswith(":") and i + 1 < len(lines):  # "...unhealthy (stopped sending heartbeats):" + task
                reason = f"{reason} {lines[i + 1]}"
            return reason[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]
