"""Live inference: a capture thread, inference workers, results in order, honest timing.

    source --(FrameReader thread)--> frames --(InferenceWorker threads)--> results --> sink

`FrameReader` reads a cv2.VideoCapture on its own thread (OpenCV releases the GIL
while it decodes). A live source (camera, stream, or a file played with
realtime=True) keeps only the newest frame: when inference is slower than the
source, stale frames are dropped and counted instead of queueing, so the frame age
at result stays bounded. A file is otherwise read in order, every frame, through a
bounded queue (the reader waits while inference catches up).

Each `InferenceWorker` owns its Classifier (its own session and batch buffer) and
takes up to `batch_size` consecutive frames at a time. A `LiveRun` yields the results
in frame order (or hands them to a callback), measures every stage, and ends with a
`VideoSummary`. `plan_video` decides workers, threads and batch size for a source.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.postprocess import Prediction, top_k
from edgecnn.session import CUDA, Classifier
from edgecnn.sources import VideoInfo

STAGES = ("capture", "preprocess", "inference", "postprocess", "output")  # the summary's stage_ms, in order
FILE_QUEUE_FRAMES = 16  # frames a file reader may decode ahead of inference
MAX_READ_RETRIES = 5  # failed reads in a row before a file counts as truncated


class EndReason(str, Enum):
    """Why a live run (or its capture thread) ended; the value is what summaries print."""

    RUNNING = "running"  # the capture thread has not ended yet
    END_OF_VIDEO = "end of video"
    END_OF_SOURCE = "end of source"
    MAX_FRAMES = "max frames"
    DURATION = "duration"
    STOPPED = "stopped by user"
    INTERRUPTED = "interrupted"
    SOURCE_FAILED = "source failed"

    def __str__(self) -> str:
        return self.value


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
        self.end = EndReason.RUNNING
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
            self.end, self.failure = EndReason.SOURCE_FAILED, f"{self.info.name}: capture failed ({exc})"
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
                self.end = EndReason.MAX_FRAMES
                return
            due = self.started_at + index * period
            if self.realtime and index and time.perf_counter() >= due + period:
                # This frame is stale before we decoded it: a camera would have replaced it already.
                if not cap.grab():
                    self.end = EndReason.END_OF_VIDEO
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
                        self.end = EndReason.SOURCE_FAILED
                        self.failure = (
                            f"{info.name}: video stopped at frame {index} of {info.frame_count} "
                            "(file truncated or corrupt)"
                        )
                        return
                    self.end = EndReason.END_OF_VIDEO
                    return
                if now - self._last_read > self.stall_timeout:
                    what = "stream ended or dropped" if info.kind == "stream" else "camera stopped delivering"
                    self.end = EndReason.SOURCE_FAILED
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
    predictions: list[list[Prediction]]
    seconds: dict[str, float]


class InferenceWorker(threading.Thread):
    """Takes batches from a FrameReader, classifies them, puts BatchResults (then None) on `results`."""

    def __init__(
        self,
        classifier: Classifier,
        reader: FrameReader,
        results: queue.Queue,
        *,
        batch_size: int,
        k: int,
        display_labels: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name="edgecnn-infer", daemon=True)
        self.classifier, self.reader, self.results = classifier, reader, results
        self.batch_size, self.k, self.display_labels = batch_size, k, display_labels
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
                predictions = top_k(probabilities, names, self.k, self.display_labels)
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
    """One classified frame; `age` is capture -> result in seconds, `fps` results per second so far."""

    frame: Frame
    predictions: list[Prediction]
    age: float
    fps: float


@dataclass
class VideoSummary:
    """A video run in numbers. stage_ms: mean milliseconds per frame in each stage (with
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
    end: EndReason
    error: str | None = None
    realtime: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; `extra` entries (e.g. what a sink saved) sit beside the fields."""
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        data["end"] = self.end.value
        data.update(self.extra)
        return data


@dataclass(frozen=True)
class VideoPlan:
    """How a video source is run: `workers` sessions of `threads` intra-op threads, `batch_size` frames a call."""

    workers: int
    threads: int
    batch_size: int


def sessions_plan(sessions: str, batch_size: int, cpus: int) -> VideoPlan:
    """ "one": one session using all `cpus`; "per-cpu": one single-threaded session per CPU (at most 8)."""
    return VideoPlan(1, cpus, batch_size) if sessions == "one" else VideoPlan(min(cpus, 8), 1, batch_size)


def plan_video(
    live: bool,
    provider: str,
    *,
    workers: int | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    measured: Mapping[str, Mapping[str, Any]] | None = None,
) -> VideoPlan:
    """The plan for a source and execution provider; the values given win over the defaults.

    On the CPU, `measured` (edgecnn.models.video_setups: what benchmarks/bench_live.py
    measured fastest for a bundled model) picks the sessions and batch for files
    ("file") and live sources ("live"): one session using every CPU, or one
    single-threaded session per CPU (at most 8). Without it, live sources get one session
    using every CPU on one frame at a time (lowest latency), files one single-threaded
    session per CPU, 4 frames a batch (sessions run in parallel while the capture thread
    decodes). On CUDA: one session, 16 frames a batch. A live source's batch is 1 unless
    measured otherwise.
    """
    cpus = cpu_count()
    cuda = provider == CUDA
    setup = (measured or {}).get("live" if live else "file")
    if setup is not None and not cuda:
        plan = sessions_plan(setup["sessions"], int(setup["batch"]), cpus)
    elif live:
        plan = VideoPlan(1, cpus, 1)
    elif cuda:
        plan = VideoPlan(1, cpus, 16)
    else:
        plan = VideoPlan(min(cpus, 8), 1, 4)
    if workers is not None:
        spread = threads is None and not live and not cuda
        plan = VideoPlan(workers, max(1, cpus // workers) if spread else plan.threads, plan.batch_size)
    if threads is not None:
        plan = VideoPlan(plan.workers, threads, plan.batch_size)
    if batch_size is not None and not live:
        plan = VideoPlan(plan.workers, plan.threads, batch_size)
    return plan


class LiveRun:
    """A video source through the pipeline: iterate it for one FrameResult per frame, in frame
    order, or call `run(on_result)`. `summary` is the VideoSummary once the run has ended.

    One InferenceWorker per classifier, each taking up to `batch_size` frames at a time;
    `threads` is what each session was given (reported in the summary); `display_labels` (in class
    order) are the predictions' display labels. The run ends when the source ends or fails, after
    `max_frames` results or `duration` seconds, on `stop()`, or when a Ctrl-C (KeyboardInterrupt)
    reaches a `with` block around it. Iterable once; the threads start at the first result asked
    for and are always stopped and joined at the end.
    """

    def __init__(
        self,
        classifiers: Sequence[Classifier],
        reader: FrameReader,
        *,
        batch_size: int,
        k: int,
        threads: int,
        max_frames: int | None = None,
        duration: float | None = None,
        display_labels: Sequence[str] | None = None,
    ) -> None:
        if not classifiers:
            raise EdgecnnError("a live run needs at least one classifier", parameter="classifiers")
        self.classifiers, self.reader = list(classifiers), reader
        self.info = reader.info
        self.batch_size, self.k, self.threads = batch_size, k, threads
        self.max_frames, self.duration = max_frames, duration
        self.end: EndReason | None = None
        self.error: str | None = None
        self.summary: VideoSummary | None = None
        self._results: queue.Queue = queue.Queue()
        self._workers = [
            InferenceWorker(c, reader, self._results, batch_size=batch_size, k=k, display_labels=display_labels)
            for c in self.classifiers
        ]
        self._iterator: Generator[FrameResult, None, None] | None = None
        self._started_at = self._last_result = 0.0
        self._emitted = 0
        self._ages: list[float] = []
        self._stage_seconds = dict.fromkeys(STAGES[1:], 0.0)  # capture is timed by the reader

    @property
    def workers(self) -> int:
        return len(self.classifiers)

    @property
    def live(self) -> bool:
        """Whether only the newest frame is kept (a camera, a stream, a file played in real time)."""
        return self.reader.latest_only

    def __iter__(self) -> Iterator[FrameResult]:
        if self._iterator is not None:
            raise EdgecnnError("a live run can be iterated only once")
        self._iterator = self._frames()
        return self._iterator

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt) and self.end is None:
            self.end = EndReason.INTERRUPTED
        self.close()

    def run(self, on_result: Callable[[FrameResult], bool | None]) -> VideoSummary:
        """Hand every result to `on_result` on this thread, in frame order, until the run ends or
        `on_result` returns False; Ctrl-C ends it as INTERRUPTED. Returns the summary."""
        try:
            with self:
                for result in self:
                    if on_result(result) is False:
                        self.stop()
        except KeyboardInterrupt:
            pass  # recorded by __exit__ as the end of the run
        assert self.summary is not None
        return self.summary

    def stop(self) -> None:
        """End the run early (STOPPED); the iteration then ends before its next result."""
        if self.end is None:
            self.end = EndReason.STOPPED

    def close(self) -> None:
        """Stop and join the threads (also when the run never started) and make the summary; idempotent.

        A run closed before it ended by itself ends as STOPPED.
        """
        if self.summary is None and self.end is None:
            self.end = EndReason.STOPPED
        if self._iterator is not None:
            self._iterator.close()  # runs the generator's clean-up when it is suspended at a result
        self._shut_down()

    def _shut_down(self) -> None:
        if self.summary is not None:
            return
        self.reader.stop()
        for worker in self._workers:
            worker.stop()
        for thread in (*self._workers, self.reader):
            if thread.is_alive():
                thread.join(timeout=2.0)
        if self.reader.ident is None:
            self.reader.cap.release()  # never started, so the reader thread did not take the capture over
        if self.end is None:
            self.end = self.reader.end if self.reader.end != EndReason.RUNNING else EndReason.END_OF_SOURCE
            self.error = self.reader.failure
        self.summary = self._summarise(self.end)

    def _frames(self) -> Generator[FrameResult, None, None]:
        reader, pending, next_batch, done_workers = self.reader, {}, 0, 0
        reader.start()
        for worker in self._workers:
            worker.start()
        self._started_at = self._last_result = time.perf_counter()
        try:
            while self.end is None:
                now = time.perf_counter()
                if self.duration is not None and now - self._started_at >= self.duration:
                    self.end = EndReason.DURATION
                    break
                if reader.idle_seconds() > reader.stall_timeout + 1.0:
                    self.end = EndReason.SOURCE_FAILED
                    self.error = f"{self.info.name}: no frame for {reader.stall_timeout:g} s (source stalled)"
                    break
                try:
                    item = self._results.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is None:
                    done_workers += 1
                    if done_workers == len(self._workers):
                        break
                    continue
                if isinstance(item, BaseException):
                    raise item
                pending[item.number] = item
                while next_batch in pending and self.end is None:
                    batch = pending.pop(next_batch)
                    next_batch += 1
                    for name, seconds in batch.seconds.items():
                        self._stage_seconds[name] += seconds
                    for frame, predictions in zip(batch.frames, batch.predictions, strict=True):
                        now = time.perf_counter()
                        self._ages.append(now - frame.captured)
                        self._emitted += 1
                        self._last_result = now
                        elapsed = now - self._started_at
                        fps = self._emitted / elapsed if elapsed > 0 else 0.0
                        try:
                            yield FrameResult(frame, predictions, now - frame.captured, fps)
                        finally:  # the consumer's time with the result is the output stage
                            self._stage_seconds["output"] += time.perf_counter() - now
                        if self.end is not None:
                            break
                        if self.max_frames is not None and self._emitted >= self.max_frames:
                            self.end = EndReason.MAX_FRAMES
                            break
        except KeyboardInterrupt:
            if self.end is None:
                self.end = EndReason.INTERRUPTED
            raise
        finally:
            self._shut_down()

    def _summarise(self, end: EndReason) -> VideoSummary:
        reader, emitted = self.reader, self._emitted
        elapsed = max(self._last_result - self._started_at, 1e-9)
        per_frame = 1000.0 / max(emitted, 1)
        stage_ms = {"capture": 1000.0 * reader.capture_seconds / max(reader.decoded, 1)}
        stage_ms.update({name: seconds * per_frame for name, seconds in self._stage_seconds.items()})
        age_ms = np.asarray(self._ages, dtype=np.float64) * 1000.0
        percentiles = {
            name: float(np.percentile(age_ms, q)) if len(age_ms) else 0.0
            for name, q in (("p50", 50), ("p95", 95), ("max", 100))
        }
        first = self.classifiers[0]
        return VideoSummary(
            source=self.info.name,
            kind=self.info.kind,
            model=first.spec.name,
            provider=first.provider,
            frames=emitted,
            dropped=reader.dropped,
            bad_frames=reader.bad_frames,
            seconds=round(elapsed, 4),
            fps=round(emitted / elapsed, 2) if emitted else 0.0,
            stage_ms={k: round(v, 3) for k, v in stage_ms.items()},
            frame_age_ms={k: round(v, 2) for k, v in percentiles.items()},
            workers=len(self.classifiers),
            threads=self.threads,
            batch_size=self.batch_size,
            end=end,
            error=self.error,
            realtime=reader.realtime,
        )
