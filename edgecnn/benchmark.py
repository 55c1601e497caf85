"""What `edgecnn-bench` measures: latency and throughput of edgecnn models per provider, thread
count and batch size, with accuracy and top-1 agreement on labelled images.

Timing covers `Classifier.classify`: preprocessing, onnxruntime's run and the probabilities,
from a batch of decoded real images when there are any (random uint8 frames of the model's
input size otherwise). Preprocessing is inside because models differ in what their graph
reads (an INT8 file reads quantised windows of the image, written by the preprocess kernel).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.datasets import known_data
from edgecnn.errors import EdgecnnError
from edgecnn.evaluate import ImageSet, compare, draw, load_images, predict_all
from edgecnn.fileio import sha256_file
from edgecnn.session import Classifier

WARMUP = 10
MIN_RUNS = 20
MIN_SECONDS = 1.0


def machine_load() -> str:
    """The 1/5/15-minute load averages and the core count, for the header of every report."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


# The instruction-set features that decide which integer and float kernels a CPU runs:
# x86 (AVX2 only, AVX-512 VNNI, AMX) and ARM (NEON, its dot-product and int8 matrix extensions).
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


def cpu_features() -> str:
    """The CPU's model and its ISA_FLAGS, from /proc/cpuinfo ("unknown CPU" where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    name = fields.get("model name") or fields.get("CPU part") or "unknown CPU"
    return f"{name}; {' '.join(flag for flag in ISA_FLAGS if flag in flags) or 'no listed ISA extensions'}"


def time_calls(
    fn: Callable[[], object], warmup: int = WARMUP, min_runs: int = MIN_RUNS, min_seconds: float = MIN_SECONDS
) -> np.ndarray:
    """Seconds per call of fn(): `warmup` untimed calls, then at least `min_runs` timed calls
    and at least `min_seconds` of them in all."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start_all < min_seconds:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.asarray(times)


@dataclass(frozen=True)
class BenchRow:
    """One configuration's measurements (latency per batch; accuracy and agreement per model)."""

    model: str
    precision: str
    provider: str
    threads: int
    batch: int
    median_ms: float
    p95_ms: float
    images_per_s: float
    runs: int
    accuracy: float | None
    agreement: float | None  # top-1 agreement with the FP32 model it was quantised from

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fp32_partner(path: Path, classifier: Classifier, others: Sequence[Path]) -> Path | None:
    """The FP32 file an INT8 model was quantised from: among `others`, or the bundled one."""
    from edgecnn.models import BUNDLED, bundled_path

    want = classifier.spec.fp32_sha256
    if not want:
        return None
    candidates = [p for p in others if p != path]
    if classifier.spec.name in BUNDLED:
        candidates.append(bundled_path(classifier.spec.name))
    return next((p for p in candidates if p.is_file() and sha256_file(p) == want), None)


def run_bench(
    models: Sequence[Path],
    images: Path | None = None,
    threads: Sequence[int] = (1,),
    batches: Sequence[int] = (1,),
    devices: Sequence[str] = ("cpu",),
    limit: int = 1000,
    warmup: int = WARMUP,
    min_runs: int = MIN_RUNS,
    min_seconds: float = MIN_SECONDS,
    names: Sequence[str] | None = None,
) -> list[BenchRow]:
    """Every model x device x threads x batch; see the module doc."""
    rows = []
    for i, path in enumerate(models):
        label = names[i] if names else str(path)
        for device in devices:
            probe = Classifier(path, device=device, threads=max(threads))
            spec = probe.spec
            folder = images or known_data(spec.name)
            labelled: ImageSet | None = None
            if folder is not None:
                found = load_images(folder, spec, split="test")
                labelled = draw(found, limit) if found.labels is not None else None
                timing_source = draw(found, max(batches))
            accuracy = agreement = None
            if labelled is not None:
                partner = _fp32_partner(path, probe, models)
                predictors = {"model": (spec, probe.predict)}
                if partner is not None:
                    fp32 = Classifier(partner, device=device, threads=max(threads))
                    predictors["fp32"] = (fp32.spec, fp32.predict)
                probs = predict_all(labelled, predictors)
                accuracy = float((probs["model"].argmax(1) == labelled.known_labels).mean())
                if partner is not None:
                    agreement = compare(probs["fp32"], probs["model"], labelled.known_labels).agreement
            for n_threads in threads:
                classifier = Classifier(path, device=device, threads=n_threads)
                for batch in batches:
                    if folder is not None:
                        pool = [f for frames, _ in timing_source.decoded() for f in frames]
                        frames = [pool[k % len(pool)] for k in range(batch)]
                    else:
                        shape = (spec.height, spec.width, spec.channels)
                        frames = list(np.random.default_rng(0).integers(0, 256, (batch, *shape), dtype=np.uint8))
                    t = time_calls(partial(classifier.classify, frames), warmup, min_runs, min_seconds) * 1e3
                    median = statistics.median(t)
                    rows.append(
                        BenchRow(
                            label,
                            spec.precision,
                            classifier.provider,
                            n_threads,
                            batch,
                            float(median),
                            float(np.percentile(t, 95)),
                            batch * 1e3 / median,
                            len(t),
                            accuracy,
                            agreement,
                        )
                    )
    return rows


def parse_int_list(text: str, what: str) -> list[int]:
    """'1,2' -> [1, 2]; EdgecnnError naming `what` for anything else."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EdgecnnError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise EdgecnnError(f"{what} must be comma-separated integers >= 1, got {text!r}")
    return values
