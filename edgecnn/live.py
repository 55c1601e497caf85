"""Live inference: a capture thread, inference workers, results in order, honest timing.

    source --(FrameReader thread)--> frames --(InferenceWorker threads)--> results --> sink

`FrameReader` reads a cv2.VideoCapture on its own thread (OpenCV releases the GIL
while it decodes). A live source (camera, stream, or a file played with
realtime=True) keeps only the newest frame: when inference is slower than the
source, stale frames are dropped and counted instead of queueing, so the frame age
at result stays bounded. A file is otherwise read in order, every frame, through a
bounded queue (the reader waits while inference catches up).

Each `InferenceWorker` owns its Classifier (its own session and batch buffer) and
takes up to `batch_size` consecutive frames at a time. `run_live` hands results to
a callback in frame order, measures every stage, and returns a `Summary`.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edgecnn.postprocess import top_k
from edgecnn.sources import VideoInfo

STAGES = ("capture", "preprocess", "inference", "postprocess", "output")
FILE_QUEUE_FRAMES = 16  # frames a file reader may decode ahead of inference
MAX_READ_RETRIES = 5  # failed reads in a row before a file counts as truncated


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@dataclass
class Frame:
    """One captured frame. `captured` is the perf_counter time it became available
    (for a file played in real time: the moment it was due); `timestamp` is seconds
    into the source (the video position for files)."""

    index: int
    image: np.ndarray
    captured: float
    timestamp: float


class FrameReader(threading.Thread):
    """Reads frames from an open cv2.VideoCapture on its own (daemon) thread.

    latest_only: keep only the newest frame (live sources); otherwise a bounded
    in-order queue. realtime: pace a file at its native FPS, skipping (grab without
    decode) frames already stale. After the thread ends, `end` says why and
    `failure` holds a one-line message when the source failed (None otherwise).
    """

    def __init__(
        self,
        cap: cv2.VideoCapture,
        info: VideoInfo,
        *,
        latest_only: bool,
        realtime: bool = False,
        max_frames: int | None = None,
        stall_timeout: float = 5.0,
        capacity: int = FILE_QUEUE_FRAMES,
    ) -> None:
        super().__init__(name="edgecnn-capture", daemon=True)
        self.cap, self.info = cap, info
        self.latest_only = latest_only
        self.realtime = realtime and info.kind == "file"
        self.max_frames = None if latest_only else max_frames
        self.stall_timeout = stall_timeout
        self.capacity = 1 if latest_only else max(1, capacity)
        self.dropped = 0  # frames the source produced that inference never saw
        self.bad_frames = 0  # reads that failed but the source went on
        self.decoded = 0
        self.capture_seconds = 0.0  # time inside cap.read(): decode, and for cameras the wait for the sensor
        self.end = "running"
        self.failure: str | None = None
        self.started_at = 0.0
        self._frames: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._halt = threading.Event()
        self._finished = False
        self._next_batch = 0
        self._last_read = 0.0
        self._waiting_for_space = False

    # -- consumer side ------------------------------------------------------
    def take(self, max_frames: int, timeout: float) -> tuple[int, list[Frame]] | None:
        """(batch number, 1..max_frames consecutive frames); (-1, []) on timeout; None at the end."""
        deadline = time.perf_counter() + timeout
        with self._cond:
            while not self._frames:
                if self._finished:
                    return None
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return -1, []
                self._cond.wait(remaining)
            frames = [self._frames.popleft() for _ in range(min(max_frames, len(self._frames)))]
            number = self._next_batch
            self._next_batch += 1
            self._cond.notify_all()
            return number, frames

    def stop(self) -> None:
        self._halt.set()
        with self._cond:
            self._cond.notify_all()

    def idle_seconds(self) -> float:
        """Seconds since the last frame was read (0 while waiting for inference to catch up)."""
        if self._waiting_for_space or not self._last_read:
            return 0.0
        return time.perf_counter() - self._last_read

    # -- producer side ------------------------------------------------------
    def _publish(self, frame: Frame) -> None:
        with self._cond:
            if self.latest_only:
                if self._frames:
                    self.dropped += len(self._frames)
                    self._frames.clear()
            else:
                self._waiting_for_space = True
                while len(self._frames) >= self.capacity and not self._halt.is_set():
                    self._cond.wait(0.1)
                self._waiting_for_space = False
            self._frames.append(frame)
            self._cond.notify_all()

    def run(self) -> None:
        try:
            self._read_loop()
        except Exception as exc:  # noqa: BLE001  (any OpenCV failure ends the source, reported in one line)
            self.end, self.failure = "source failed", f"{self.info.name}: capture failed ({exc})"
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()
            self.cap.release()

    def _read_loop(self) -> None:
        info, cap = self.info, self.cap
        period = 1.0 / info.fps if info.fps > 0 else 1.0 / 30.0
        index = 0
        failures = 0
        self.started_at = self._last_read = time.perf_counter()
        while not self._halt.is_set():
            if self.max_frames is not None and index >= self.max_frames:
                self.end = "max frames"
                return
            due = self.started_at + index * period
            if self.realtime and index and time.perf_counter() >= due + period:
                # This frame is stale before we decoded it: a camera would have replaced it already.
                if not cap.grab():
                    self.end = "end of video"
                    return
                self.dropped += 1
                index += 1
                continue
            start = time.perf_counter()
            ok, image = cap.read()
            now = time.perf_counter()
            if not ok or image is None:
                failures += 1
                if info.kind == "file":
                    remaining = info.frame_count - index
                    if info.frame_count and remaining > 2:
                        if failures < MAX_READ_RETRIES:
                            continue
                        self.end = "source failed"
                        self.failure = (
                            f"{info.name}: video stopped at frame {index} of {info.frame_count} "
                            "(file truncated or corrupt)"
                        )
                        return
                    self.end = "end of video"
                    return
                if now - self._last_read > self.stall_timeout:
                    what = "stream ended or dropped" if info.kind == "stream" else "camera stopped delivering"
                    self.end = "source failed"
                    self.failure = f"{info.name}: {what} (no frame for {self.stall_timeout:g} s)"
                    return
                time.sleep(0.005)
                continue
            if failures and info.kind == "file":
                self.bad_frames += failures
            failures = 0
            self.decoded += 1
            self.capture_seconds += now - start
            self._last_read = now
            if self.realtime:
                if now < due:
                    time.sleep(due - now)
                captured, position = due, index * period
            elif info.kind == "file":
                captured, position = now, index * period
            else:
                captured, position = now, now - self.started_at
            self._publish(Frame(index, image, captured, position))
            index += 1


@dataclass
class BatchResult:
    """What one worker made of one batch of consecutive frames."""

    number: int
    frames: list[Frame]
    predictions: list[list[tuple[str, float]]]
    seconds: dict[str, float]


class InferenceWorker(threading.Thread):
    """Takes batches from a FrameReader, classifies them, puts BatchResults (then None) on `results`."""

    def __init__(self, classifier: Any, reader: FrameReader, results: queue.Queue, *, batch_size: int, k: int) -> None:
        super().__init__(name="edgecnn-infer", daemon=True)
        self.classifier, self.reader, self.results = classifier, reader, results
        self.batch_size, self.k = batch_size, k
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        classifier, names = self.classifier, self.classifier.spec.class_names
        try:
            while not self._halt.is_set():
                taken = self.reader.take(self.batch_size, timeout=0.1)
                if taken is None:
                    break
                number, frames = taken
                if not frames:
                    continue
                t0 = time.perf_counter()
                batch = classifier.preprocess([f.image for f in frames])
                t1 = time.perf_counter()
                probabilities = classifier.predict(batch)
                t2 = time.perf_counter()
                predictions = top_k(probabilities, names, self.k)
                t3 = time.perf_counter()
                self.results.put(
                    BatchResult(
                        number,
                        frames,
                        predictions,
                        {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": t3 - t2},
                    )
                )
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread, which re-raises it)
            self.results.put(exc)
        finally:
            self.results.put(None)


@dataclass
class FrameResult:
    """One classified frame as the sink sees it; `age` is capture -> result in seconds."""

    frame: Frame
    predictions: list[tuple[str, float]]
    age: float
    fps: float  # results per second so far


@dataclass
class Summary:
    """The run in numbers. stage_ms: mean milliseconds per frame in each stage (with
    several workers, stages overlap, so they add up to more than 1000 / fps)."""

    source: str
    kind: str
    model: str
    provider: str
    frames: int
    dropped: int
    bad_frames: int
    seconds: float
    fps: float
    stage_ms: dict[str, float]
    frame_age_ms: dict[str, float]
    workers: int
    threads: int
    batch_size: int
    end: str
    error: str | None = None
    realtime: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        data.update(self.extra)
        return data

    def lines(self) -> list[str]:
        stages = ", ".join(f"{name} {self.stage_ms[name]:.2f}" for name in STAGES)
        age = self.frame_age_ms
        setup = f"{self.workers} worker(s) x {self.threads} thread(s), batch {self.batch_size}"
        first = (
            f"{self.frames} frame(s) in {self.seconds:.2f} s ({self.fps:.1f} FPS) from {self.source} "
            f"({self.kind}{', realtime' if self.realtime else ''}) on {self.provider}; {self.end}"
        )
        return [
            first,
            f"  ms per frame: {stages} ({setup})",
            f"  frame age at result: p50 {age['p50']:.1f} ms, p95 {age['p95']:.1f} ms, max {age['max']:.1f} ms; "
            f"dropped {self.dropped} frame(s), {self.bad_frames} unreadable",
        ]


def run_live(
    classifiers: Sequence[Any],
    reader: FrameReader,
    *,
    batch_size: int,
    k: int,
    threads: int,
    on_result: Callable[[FrameResult], bool],
    max_frames: int | None = None,
    duration: float | None = None,
) -> Summary:
    """Run the pipeline until the source ends, a limit is hit, `on_result` returns False
    or Ctrl-C; always stops the threads and returns the Summary.

    One InferenceWorker per classifier. on_result runs on this thread, in frame order.
    """
    results: queue.Queue = queue.Queue()
    workers = [InferenceWorker(c, reader, results, batch_size=batch_size, k=k) for c in classifiers]
    info = reader.info
    output_seconds = 0.0
    stage_seconds = dict.fromkeys(("preprocess", "inference", "postprocess"), 0.0)
    ages: list[float] = []
    pending: dict[int, BatchResult] = {}
    next_batch = 0
    done_workers = 0
    end = None
    error: str | None = None
    emitted = 0
    fps = 0.0
    reader.start()
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    last_result = started
    try:
        while end is None:
            now = time.perf_counter()
            if duration is not None and now - started >= duration:
                end = "duration"
                break
            if reader.idle_seconds() > reader.stall_timeout + 1.0:
                end, error = "source failed", f"{info.name}: no frame for {reader.stall_timeout:g} s (source stalled)"
                break
            try:
                item = results.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                done_workers += 1
                if done_workers == len(workers):
                    break
                continue
            if isinstance(item, BaseException):
                raise item
            pending[item.number] = item
            while next_batch in pending and end is None:
                batch = pending.pop(next_batch)
                next_batch += 1
                for name, seconds in batch.seconds.items():
                    stage_seconds[name] += seconds
                for frame, predictions in zip(batch.frames, batch.predictions, strict=True):
                    now = time.perf_counter()
                    ages.append(now - frame.captured)
                    emitted += 1
                    last_result = now
                    elapsed = now - started
                    fps = emitted / elapsed if elapsed > 0 else 0.0
                    keep_going = on_result(FrameResult(frame, predictions, now - frame.captured, fps))
                    output_seconds += time.perf_counter() - now
                    if not keep_going:
                        end = "stopped by user"
                        break
                    if max_frames is not None and emitted >= max_frames:
                        end = "max frames"
                        break
    except KeyboardInterrupt:
        end = "interrupted"
    finally:
        reader.stop()
        for worker in workers:
            worker.stop()
        for thread in (*workers, reader):
            thread.join(timeout=2.0)
    if end is None:
        end = reader.end if reader.end != "running" else "end of source"
        error = reader.failure
    elapsed = max(last_result - started, 1e-9)
    per_frame = 1000.0 / max(emitted, 1)
    stage_ms = {"capture": 1000.0 * reader.capture_seconds / max(reader.decoded, 1)}
    stage_ms.update({name: seconds * per_frame for name, seconds in stage_seconds.items()})
    stage_ms["output"] = output_seconds * per_frame
    age_ms = np.asarray(ages, dtype=np.float64) * 1000.0
    percentiles = {
        name: float(np.percentile(age_ms, q)) if len(age_ms) else 0.0
        for name, q in (("p50", 50), ("p95", 95), ("max", 100))
    }
    spec = classifiers[0].spec
    return Summary(
        source=info.name,
        kind=info.kind,
        model=spec.name,
        provider=classifiers[0].provider,
        frames=emitted,
        dropped=reader.dropped,
        bad_frames=reader.bad_frames,
        seconds=round(elapsed, 4),
        fps=round(emitted / elapsed, 2) if emitted else 0.0,
        stage_ms={k: round(v, 3) for k, v in stage_ms.items()},
        frame_age_ms={k: round(v, 2) for k, v in percentiles.items()},
        workers=len(classifiers),
        threads=threads,
        batch_size=batch_size,
        end=end,
        error=error,
        realtime=reader.realtime,
    )
