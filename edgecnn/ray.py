"""Batch classification on a Ray cluster (the `ray` extra: pip install 'edgecnn[ray]').

Ray Data's batch-inference pattern: the paths become a Dataset, `map_batches` runs them
through a pool of actors that each load the model once (`edgecnn.load`) and decode and
preprocess with edgecnn's own code, as `edgecnn-infer` does, and the results stream back
to the driver, which writes them to Parquet parts in the output folder, each part
complete or absent (written to a temporary name, then renamed).

Nothing lost, nothing twice: a file that cannot be read is a row with its error; an actor
that dies is restarted by Ray and its batch retried (Ray Data's default for actor
pools), and only a finished batch's rows reach the driver; a rerun into the same output
reads the paths already written and classifies only the others, so an interrupted run
is completed by running it again. The output's manifest names the model (its SHA-256):
another model's results are never mixed in.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError, first_line
from edgecnn.fileio import sha256_file, write_json_atomically
from edgecnn.labels import true_class
from edgecnn.models import BUNDLED, resolve_model
from edgecnn.sources import decode_image, expand_image_paths, read_image

MANIFEST = "_edgecnn.json"  # in the output folder: the model whose results it holds
PART_PREFIX = "part-"
PART_ROWS = 2048  # the driver writes a Parquet part when it holds this many rows,
PART_SECONDS = 5.0  # or when its oldest row waited this long: a stopped driver loses no more
INSTALL = "pip install 'edgecnn[ray]'"
URI_MARK = "://"  # s3://, gs://, ...: read through pyarrow's filesystems, passed to Ray untouched


@dataclass(frozen=True)
class ClassifySummary:
    """One `classify` run: the files it classified and the errors among them, the files an earlier
    run had already written (skipped), the seconds, workers and nodes, and the top-1 accuracy of
    the classified files whose folder names their class."""

    output: Path
    classified: int
    errors: int
    skipped: int
    seconds: float
    workers: int
    labelled: int = 0
    correct: int = 0
    rows_by_node: dict[str, int] = field(default_factory=dict)

    @property
    def files(self) -> int:
        """Rows in the output: this run's and the earlier runs'."""
        return self.classified + self.skipped

    @property
    def rate(self) -> float:
        """Files per second in this run."""
        return self.classified / self.seconds if self.seconds > 0 else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


def import_ray() -> Any:
    """The ray module; EdgecnnError naming the pip command when the extra is not installed."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise EdgecnnError(f"Ray is not installed: {INSTALL}") from None
    return ray


def read_list(path: Path) -> list[str]:
    """The paths a list file holds, one per line (blank lines and # comments skipped)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgecnnError(f"{path}: cannot read the list of paths ({first_line(exc)})") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def source_paths(sources: Iterable[str | os.PathLike]) -> list[str]:
    """Folders (searched recursively), image files, list files (.txt, one path per line) and URIs,
    as the list of paths to classify, in order: local ones absolute (Ray's workers run elsewhere),
    URIs untouched. A file named here must exist; one a list names is classified as it is (a
    missing one becomes an error row: an archive's list may be older than the archive)."""
    paths: list[str] = []
    for source in sources:
        text = os.fspath(source)
        if URI_MARK in text:
            paths.append(text)
        elif text.endswith(".txt") and Path(text).is_file():
            listed = read_list(Path(text))
            for line in listed:
                if URI_MARK in line:
                    paths.append(line)
                elif Path(line).is_dir():
                    paths += source_paths([line])
                else:
                    paths.append(str(Path(line).absolute()))
        else:
            paths += [str(path.absolute()) for path in expand_image_paths([text])]
    return paths


def read_frame(path: str) -> np.ndarray:
    """The image at a local path or a URI (through pyarrow's filesystems), decoded as edgecnn-infer does."""
    if URI_MARK not in path:
        return read_image(path)
    from pyarrow import fs

    try:
        filesystem, inside = fs.FileSystem.from_uri(path)
        with filesystem.open_input_stream(inside) as stream:
            data = stream.read()
    except Exception as exc:  # noqa: BLE001  (pyarrow raises OSError, ArrowInvalid, ...)
        raise EdgecnnError(f"{path}: cannot read ({first_line(exc)})") from None
    return decode_image(data, path)


class BatchClassifier:
    """The Ray actor: one loaded model; each call classifies a batch of paths into result columns."""

    def __init__(self, model: str, sha256: str, top: int, threads: int) -> None:
        import edgecnn

        self.model = edgecnn.load(model, device="cpu", threads=threads)
        if sha256_file(self.model.path) != sha256:
            raise EdgecnnError(
                f"{model} on {socket.gethostname()} is not the driver's model file (SHA-256 differs): "
                "give every node the same file, or a path they all read"
            )
        import ray

        self.top = top
        self.node = f"{socket.gethostname()}:{ray.get_runtime_context().get_node_id()[:8]}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        paths = [str(path) for path in batch["path"]]
        frames: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for path in paths:
            try:
                frames.append(read_frame(path))
                errors.append(None)
            except EdgecnnError as exc:
                frames.append(None)
                errors.append(str(exc))
        readable: list[np.ndarray] = [frame for frame in frames if frame is not None]
        probabilities = iter(self.model.classifier.classify(readable) if readable else [])
        names = np.array(self.model.class_names)
        columns: dict[str, list[Any]] = {"top_labels": [], "top_probabilities": [], "probabilities": []}
        for frame in frames:
            if frame is None:
                columns["top_labels"].append([])
                columns["top_probabilities"].append([])
                columns["probabilities"].append([])
                continue
            row = next(probabilities)
            order = np.argsort(-row, kind="stable")[: self.top]  # ties: the lower index first, as top_k
            columns["top_labels"].append(names[order].tolist())
            columns["top_probabilities"].append(row[order].tolist())
            columns["probabilities"].append(row.tolist())
        return {"path": paths, **columns, "error": errors, "node": [self.node] * len(paths)}


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """EdgecnnError unless a HOST:PORT address accepts a TCP connection within `timeout` seconds
    (ray.init waits for an unreachable cluster for many minutes)."""
    if address in (None, "auto") or URI_MARK in str(address):  # local, or ray:// (Ray Client) connects by itself
        return
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit():
        raise EdgecnnError("must be auto or HOST:PORT", parameter="address", value=address)
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise EdgecnnError(
            f"cannot reach a Ray cluster there ({exc.strerror or type(exc).__name__})",
            parameter="address",
            value=address,
        ) from None


def _manifest(model_path: Path, sha256: str, class_names: Sequence[str], top: int) -> dict[str, Any]:
    return {"model": model_path.stem, "sha256": sha256, "class_names": list(class_names), "top": top}


def prepare_output(output: Path, manifest: dict[str, Any]) -> set[str]:
    """Create or reopen the output folder for `manifest`'s model; the paths its parts already hold."""
    import pyarrow.parquet as pq

    if output.exists() and not output.is_dir():
        raise EdgecnnError("exists and is not a folder", parameter="output", value=output)
    output.mkdir(parents=True, exist_ok=True)
    written = output / MANIFEST
    if written.is_file():
        try:
            previous = json.loads(written.read_text())
        except ValueError:
            previous = {}
        if previous.get("sha256") != manifest["sha256"] or previous.get("top") != manifest["top"]:
            raise EdgecnnError(
                f"holds the results of another model or top-k ({previous.get('model')!r}, top "
                f"{previous.get('top')}); choose another output folder",
                parameter="output",
                value=output,
            )
    elif any(output.iterdir()):
        raise EdgecnnError("is not empty and holds no edgecnn results", parameter="output", value=output)
    else:
        write_json_atomically(written, manifest)
    for leftover in output.glob(f".{PART_PREFIX}*"):
        leftover.unlink()  # a part the driver was writing when it stopped: its rows are not in any part
    done: set[str] = set()
    for part in sorted(output.glob(f"{PART_PREFIX}*.parquet")):
        done.update(pq.read_table(part, columns=["path"]).column("path").to_pylist())
    return done


def _write_part(output: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = f"{PART_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
    temporary = output / f".{name}"
    pq.write_table(pa.Table.from_pylist(rows), temporary)
    os.replace(temporary, output / name)


def _rows(batches: Iterator[Any]) -> Iterator[dict[str, Any]]:
    for batch in batches:
        yield from batch.to_pylist()


def classify(
    model: str | os.PathLike,
    sources: Any,
    *,
    output: str | os.PathLike,
    top: int = 3,
    batch_size: int = 32,
    workers: int | None = None,
    threads_per_worker: int = 1,
    address: str | None = None,
) -> ClassifySummary:
    """Classify every image of `sources` on a Ray cluster into Parquet parts in `output`.

    model: a bundled model's name or an .onnx file that every node can read at that path.
    sources: folders, image files, list files (.txt, one path or URI per line), URIs that
    Ray's filesystems read (s3://, gs://), or a Ray Dataset with a "path" column.
    output: a folder; one row per file: path, top_labels and top_probabilities (the `top`
    most likely classes), probabilities (every class, in the manifest's class_names
    order), error (why the file could not be read, else null), and node (the host and Ray
    node that classified it). Rerunning into the same output skips the files already
    there. workers: actors (default: the cluster's CPUs divided by threads_per_worker).
    address: "auto" joins the cluster running here, "HOST:PORT" a remote one, None starts
    a local one for this call.
    """
    for name, value in (("top", top), ("batch_size", batch_size), ("threads_per_worker", threads_per_worker)):
        if value < 1:
            raise EdgecnnError("must be positive", parameter=name, value=value)
    if workers is not None and workers < 1:
        raise EdgecnnError("must be positive", parameter="workers", value=workers)
    ray = import_ray()
    import edgecnn

    model_path = resolve_model(model)
    local = edgecnn.load(model_path, device="cpu")
    sha256 = sha256_file(local.path)
    class_names = local.class_names
    output = Path(output)
    done = prepare_output(output, _manifest(local.path, sha256, class_names, top))

    started_here = not ray.is_initialized()
    if started_here:
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except Exception as exc:  # noqa: BLE001  (ConnectionError, RuntimeError, ValueError by cause)
            raise EdgecnnError(
                f"cannot reach a Ray cluster ({first_line(exc)[:200]})", parameter="address", value=address
            ) from None
    try:
        if isinstance(sources, ray.data.Dataset):
            dataset = sources.filter(lambda row: row["path"] not in done) if done else sources
            todo = None
        else:
            todo = [path for path in source_paths(sources) if path not in done]
            dataset = ray.data.from_items([{"path": path} for path in todo]) if todo else None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = workers or max(1, cpus // threads_per_worker)
        started = time.perf_counter()
        classified = errors = labelled = correct = 0
        by_node: Counter[str] = Counter()
        if dataset is not None:
            results = dataset.map_batches(
                BatchClassifier,
                fn_constructor_kwargs={
                    "model": os.fspath(model) if os.fspath(model) in BUNDLED else str(model_path.absolute()),
                    "sha256": sha256,
                    "top": top,
                    "threads": threads_per_worker,
                },
                batch_size=batch_size,
                concurrency=pool,
                num_cpus=threads_per_worker,
                batch_format="numpy",
            )
            pending: list[dict[str, Any]] = []
            oldest = time.monotonic()
            try:
                for row in _rows(results.iter_batches(batch_size=None, batch_format="pyarrow")):
                    if not pending:
                        oldest = time.monotonic()
                    pending.append(row)
                    classified += 1
                    by_node[row["node"]] += 1
                    if row["error"] is not None:
                        errors += 1
                    else:
                        truth = true_class(row["path"], class_names)
                        if truth is not None:
                            labelled += 1
                            correct += class_names.index(row["top_labels"][0]) == truth
                    if len(pending) >= PART_ROWS or time.monotonic() - oldest >= PART_SECONDS:
                        _write_part(output, pending)
                        pending = []
            finally:
                if pending:  # rows that arrived are complete: keep them, even when stopped
                    _write_part(output, pending)
        return ClassifySummary(
            output=output,
            classified=classified,
            errors=errors,
            skipped=len(done),
            seconds=time.perf_counter() - started,
            workers=pool,
            labelled=labelled,
            correct=correct,
            rows_by_node=dict(by_node),
        )
    finally:
        if started_here:
            ray.shutdown()
