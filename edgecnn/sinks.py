"""The last stage: where results go. Tables, JSON lines, the report on stderr, a progress bar,
probability charts, an overlay on the frame, a window, a video file.

A `Sink` receives a run's results in order: `start_images`, `image` per file and
`finish_images` for image files (an `edgecnn.api.ImageRun`); `start_video`, `frame` per
frame and `finish_video` for a video source (an `edgecnn.live.LiveRun`). `Sinks` hands
each call to several. `Table`, `JsonLines` and `Report` are edgecnn-infer's outputs;
`ProgressBar` shows a terminal's progress over image files (`edgecnn.progress`); `Chart`
draws images beside their top-k bars (`edgecnn.plot`); `Overlay` draws on the frames and
records and/or shows them. Text for people shows each prediction's `display_label`.

`annotate` draws the top label, its probability and the FPS on a BGR frame in place (with an
`edgecnn.fonts.TextPainter`, so class names in any script can be drawn).
`Window` shows frames with cv2.imshow once `display_problem()` says a display exists
(OpenCV's Qt backend aborts the process when it cannot reach one, so we look first).
`record_video` writes a video through `edgecnn.fileio.atomic_output`: the file appears
only once it is finished and verified (every write succeeded, it reopens with as many
frames as were written); a failure (a full disk) leaves no partial file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import cv2
import numpy as np

from edgecnn import plot, progress
from edgecnn.errors import EdgecnnError
from edgecnn.fileio import Discard, atomic_output
from edgecnn.fonts import TextPainter, drawable_labels
from edgecnn.labels import pad_left, true_class
from edgecnn.sources import quiet_opencv
from edgecnn.text import json_line, printable

if TYPE_CHECKING:
    from edgecnn.api import ImageResult, ImageRun, ImagesSummary
    from edgecnn.live import FrameResult, LiveRun, VideoSummary
    from edgecnn.postprocess import Prediction
    from edgecnn.spec import ModelSpec

# Container suffix -> fourcc OpenCV's bundled ffmpeg can write (it has no H.264 encoder).
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
HERSHEY_PAINTER = TextPainter(None)


def _x_server_reachable(display: str) -> bool:
    """Whether an X server answers at `display` (":99", "host:0.0"); a cheap socket connect."""
    host, _, number = display.rpartition(":")
    number = number.split(".")[0]
    if not number.isdigit():
        return False
    try:
        if host in ("", "unix"):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1.0)
                s.connect(f"/tmp/.X11-unix/X{number}")
        else:
            with socket.create_connection((host, 6000 + int(number)), timeout=1.0):
                pass
    except OSError:
        return False
    return True


def display_problem() -> str | None:
    """None when a window can be opened, else why not (one short phrase)."""
    if sys.platform in ("win32", "darwin"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal")):
        return f"QT_QPA_PLATFORM={platform} has no windows"
    if os.environ.get("WAYLAND_DISPLAY") and not platform.startswith("xcb"):
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        if Path(runtime, os.environ["WAYLAND_DISPLAY"]).exists():
            return None
    display = os.environ.get("DISPLAY", "")
    if not display:
        return "no display ($DISPLAY is not set)"
    if not _x_server_reachable(display):
        return f"no X server answers at DISPLAY={display}"
    return None


class Window:
    """An OpenCV window; `show` returns False once the user pressed q/Esc or closed it."""

    def __init__(self, title: str) -> None:
        self.title = title
        # opencv-python's Qt ships no fonts and warns on every text draw; point it at the system's.
        if not os.path.isdir(os.environ.get("QT_QPA_FONTDIR", "")):
            for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/truetype"):
                if os.path.isdir(folder):
                    os.environ["QT_QPA_FONTDIR"] = folder
                    break
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)

    def show(self, frame: np.ndarray) -> bool:
        cv2.imshow(self.title, frame)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


def annotate(
    frame: np.ndarray, label: str, probability: float, fps: float, painter: TextPainter = HERSHEY_PAINTER
) -> np.ndarray:
    """Draw "label probability" and "FPS" on a uint8 BGR (or gray) frame, in place; returns it.

    `painter` draws the text: the default, OpenCV's Hershey font, has ASCII glyphs only;
    `TextPainter(font)` draws any script the font has (see `edgecnn.fonts.drawable_labels`).
    """
    return painter.draw(frame, [[label, f" {probability:.2f}"], [f"{fps:.0f} FPS"]])


def check_video_suffix(path: Path) -> None:
    """EdgecnnError unless `path` ends in a container VIDEO_CODECS can write."""
    suffix = path.suffix.lower()
    if suffix not in VIDEO_CODECS:
        raise EdgecnnError(
            f"unsupported video type {suffix or '(none)'!r} (use one of {', '.join(VIDEO_CODECS)})",
            parameter="path",
            value=path,
        )


class VideoRecorder:
    """cv2.VideoWriter that checks every write; made by `record_video`.

    The codec follows the suffix (VIDEO_CODECS). The writer opens on the first frame,
    whose size every later frame gets. `frames` counts the frames written.
    """

    def __init__(self, path: Path, temp: Path, fps: float) -> None:
        self.path, self.temp = path, temp
        self.fps = fps if fps > 0 else 30.0
        self.fourcc = VIDEO_CODECS[path.suffix.lower()]
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 BGR (or gray) frame; EdgecnnError when it cannot be written (disk full)."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        size = (frame.shape[1], frame.shape[0])
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.temp), cv2.VideoWriter.fourcc(*self.fourcc), self.fps, size)
            if not self._writer.isOpened():
                raise EdgecnnError(f"OpenCV cannot write {self.fourcc} video here", parameter="path", value=self.path)
            self._size = size
        elif size != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        with quiet_opencv():  # ffmpeg's own warning would come before our one-line error
            written = self._writer.write(frame)
        if not written:
            raise EdgecnnError(
                f"writing frame {self.frames + 1} failed (disk full or not writable?); nothing saved",
                parameter="path",
                value=self.path,
            )
        self.frames += 1

    def release(self) -> None:
        """Finish the container (index, trailer)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def verify(self) -> None:
        """EdgecnnError unless the finished temp file reopens with `frames` frames and its last one decodes."""
        cap = cv2.VideoCapture(str(self.temp))
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
            if count == self.frames + 1:  # a signal arrived after the last write finished, before it was counted
                self.frames = count
            cap.set(cv2.CAP_PROP_POS_FRAMES, self.frames - 1)
            last_ok = cap.read()[0] if cap.isOpened() else False
        finally:
            cap.release()
        if count != self.frames or not last_ok:
            found = "does not open" if count < 0 else f"holds {count} frame(s){'' if last_ok else ', last unreadable'}"
            raise EdgecnnError(
                f"wrote {self.frames} frame(s) but the finished file {found} (disk full?); nothing saved",
                parameter="path",
                value=self.path,
            )


@contextlib.contextmanager
def record_video(path: str | os.PathLike, fps: float) -> Iterator[VideoRecorder]:
    """A VideoRecorder whose file appears at `path` only when the block ends cleanly and the
    file verifies; nothing appears when no frame was written or the block raised."""
    path = Path(path)
    check_video_suffix(path)
    with atomic_output(path) as temp:
        recorder = VideoRecorder(path, temp, fps)
        try:
            yield recorder
        finally:
            recorder.release()
        if not recorder.frames:
            raise Discard
        recorder.verify()


# ---------------------------------------------------------------------------
# Text: tables, JSON lines and the report.


def prediction_records(predictions: list[Prediction], display_labels: bool = False) -> list[dict[str, Any]]:
    """Predictions as JSON objects: label and probability (6 decimals), and display_label when asked."""
    records: list[dict[str, Any]] = []
    for p in predictions:
        records.append({"label": p.label, "probability": round(p.probability, 6)})
        if display_labels:
            records[-1]["display_label"] = p.display_label
    return records


def describe_model(spec: ModelSpec, provider: str) -> str:
    """'catsdogs (2 classes, 180x180 rgb) on CPUExecutionProvider'."""
    return f"{spec.name} ({len(spec.class_names)} classes, {spec.height}x{spec.width} {spec.color}) on {provider}"


def video_summary_lines(summary: VideoSummary) -> list[str]:
    """The summary in three lines: frames, FPS, source and why it ended; ms per stage; frame age and drops."""
    stages = ", ".join(f"{name} {ms:.2f}" for name, ms in summary.stage_ms.items())
    age = summary.frame_age_ms
    setup = f"{summary.workers} worker(s) x {summary.threads} thread(s), batch {summary.batch_size}"
    return [
        f"{summary.frames} frame(s) in {summary.seconds:.2f} s ({summary.fps:.1f} FPS) from {summary.source} "
        f"({summary.kind}{', realtime' if summary.realtime else ''}) on {summary.provider}; {summary.end}",
        f"ms per frame: {stages} ({setup})",
        f"frame age at result: p50 {age['p50']:.1f} ms, p95 {age['p95']:.1f} ms, max {age['max']:.1f} ms; "
        f"dropped {summary.dropped} frame(s), {summary.bad_frames} unreadable",
    ]


def _cells(predictions: list[Prediction]) -> str:
    return "  ".join(f"{pad_left(p.display_label, 12)} {p.probability:7.4f}" for p in predictions)


def _cell_headers(k: int) -> str:
    return "  ".join(f"{'top-' + str(i + 1):>12} {'prob':>7}" for i in range(k))


class Sink:
    """One output of a run; every method does nothing until a sink overrides it.

    Image files: `start_images(run)`, then `image(result)` per file in order (unreadable
    ones included, with `result.error`), then `finish_images(summary)`. A video source:
    `start_video(run)` before the first frame, `frame(result)` per frame in order (return
    False to stop the run), `finish_video(summary)` once the run and its outputs are done.
    """

    def start_images(self, run: ImageRun) -> None:
        pass

    def image(self, result: ImageResult) -> None:
        pass

    def finish_images(self, summary: ImagesSummary) -> None:
        pass

    def start_video(self, run: LiveRun) -> None:
        pass

    def frame(self, result: FrameResult) -> bool:
        return True

    def finish_video(self, summary: VideoSummary) -> None:
        pass


class Sinks(Sink):
    """Several sinks as one, each called in the order given; a frame stops the run if any sink says so."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)

    def start_images(self, run: ImageRun) -> None:
        for sink in self.sinks:
            sink.start_images(run)

    def image(self, result: ImageResult) -> None:
        for sink in self.sinks:
            sink.image(result)

    def finish_images(self, summary: ImagesSummary) -> None:
        for sink in self.sinks:
            sink.finish_images(summary)

    def start_video(self, run: LiveRun) -> None:
        for sink in self.sinks:
            sink.start_video(run)

    def frame(self, result: FrameResult) -> bool:
        return all([sink.frame(result) for sink in self.sinks])  # a list: every sink sees every frame

    def finish_video(self, summary: VideoSummary) -> None:
        for sink in self.sinks:
            sink.finish_video(summary)


class Table(Sink):
    """Top-k display labels and probabilities as an aligned text table, the header above the first row.

    Images: the file name, then label and probability per rank. Frames: index, time in the
    source, labels and probabilities, and the frame's age at result in milliseconds. Rows are
    written above a progress bar that may be showing (`edgecnn.progress.write`).
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.width = 0
        self.header_written = False

    def start_images(self, run: ImageRun) -> None:
        self.width = min(60, max((len(str(p)) for p in run.paths), default=0))

    def image(self, result: ImageResult) -> None:
        if result.error is not None:
            return
        self._header(f"{'image':<{self.width}}  {_cell_headers(len(result.predictions))}")
        progress.write(f"{printable(str(result.path)):<{self.width}}  {_cells(result.predictions)}", self.out)

    def frame(self, result: FrameResult) -> bool:
        self._header(f"{'frame':>7} {'time':>9}  {_cell_headers(len(result.predictions))}  {'age ms':>7}")
        frame = result.frame
        print(
            f"{frame.index:>7} {frame.timestamp:8.3f}s  {_cells(result.predictions)}  {result.age * 1000.0:7.1f}",
            file=self.out,
        )
        return True

    def _header(self, line: str) -> None:
        if not self.header_written:
            progress.write(line, self.out)
            self.header_written = True


class JsonLines(Sink):
    """One JSON object per image or frame; a video run ends with {"summary": {...}}.

    Image: source, predictions. Frame: source, frame (index), time (seconds into the
    source), captured_at (Unix time), predictions, latency_ms (capture -> result). A
    prediction is its label and probability, and with `display_labels` its display_label.
    """

    def __init__(self, out: TextIO, display_labels: bool = False) -> None:
        self.out = out
        self.display_labels = display_labels
        self.source = ""
        self.wall_offset = 0.0

    def image(self, result: ImageResult) -> None:
        if result.error is None:
            predictions = prediction_records(result.predictions, self.display_labels)
            record = {"source": str(result.path), "predictions": predictions}
            print(json_line(record), file=self.out)

    def start_video(self, run: LiveRun) -> None:
        self.source = run.info.name
        self.wall_offset = time.time() - time.perf_counter()  # capture times are perf_counter readings

    def frame(self, result: FrameResult) -> bool:
        frame = result.frame
        record = {
            "source": self.source,
            "frame": frame.index,
            "time": round(frame.timestamp, 4),
            "captured_at": round(frame.captured + self.wall_offset, 4),
            "predictions": prediction_records(result.predictions, self.display_labels),
            "latency_ms": round(result.age * 1000.0, 2),
        }
        print(json_line(record), file=self.out)
        return True

    def finish_video(self, summary: VideoSummary) -> None:
        print(json_line({"summary": summary.to_dict()}), file=self.out)
        self.out.flush()


class Report(Sink):
    """What a command says on stderr, each line starting with its name: the model and source, every
    unreadable image, and the summary (a failed video source last, as `prog: error: ...`)."""

    def __init__(self, prog: str, out: TextIO | None = None) -> None:
        self.prog = prog
        self.out = out if out is not None else sys.stderr

    def say(self, line: str) -> None:
        """One line, `prog: ` first; continuation lines (starting with a space) are indented under it."""
        line = printable(line)
        if line.startswith(" "):
            progress.write(f"{' ' * len(self.prog)}  {line.strip()}", self.out)
        else:
            progress.write(f"{self.prog}: {line}", self.out)

    def start_images(self, run: ImageRun) -> None:
        self.say(describe_model(run.classifier.spec, run.classifier.provider))

    def image(self, result: ImageResult) -> None:
        if result.error is not None:
            self.say(f"skipped {result.error}")

    def finish_images(self, summary: ImagesSummary) -> None:
        self.say(
            f"classified {summary.classified} image(s), {summary.failed} failed, in {summary.seconds:.2f} s "
            f"({summary.rate:.0f} images/s) on {summary.provider}"
        )
        if summary.accuracy is not None:
            self.say(
                f"top-1 accuracy {summary.accuracy:.4f}: {summary.correct} / {summary.labelled} right of the "
                "images whose folder or file name gives their class"
            )

    def start_video(self, run: LiveRun) -> None:
        info, first = run.info, run.classifiers[0]
        rate = f"{info.fps:g} FPS" if info.fps else "unknown FPS"
        self.say(
            f"{describe_model(first.spec, first.provider)}; {info.kind} {info.name} {info.width}x{info.height} "
            f"at {rate} ({'newest frame only' if run.live else 'every frame in order'}; {run.workers} worker(s) x "
            f"{run.threads} thread(s), batch {run.batch_size})"
        )

    def finish_video(self, summary: VideoSummary) -> None:
        first, *rest = video_summary_lines(summary)
        self.say(first)
        for line in rest:
            self.say(f"  {line}")
        if summary.error:
            self.say(f"error: {summary.error}")


class ProgressBar(Sink):
    """Image files: a bar on a terminal's stderr with the count, rate and time left (`edgecnn.progress`;
    nothing elsewhere). Closed when the run finishes; `close()` it when a run stops early."""

    def __init__(self, description: str = "classifying") -> None:
        self.description = description
        self.bar: Any = None

    def start_images(self, run: ImageRun) -> None:
        self.bar = progress.bar(len(run.paths), self.description, unit="image")

    def image(self, result: ImageResult) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def finish_images(self, summary: ImagesSummary) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Chart(Sink):
    """Image files: the first `limit` readable images, each beside a bar chart of its `top` classes with
    the true class marked when its path names it (`edgecnn.plot`), written to `path` when the run finishes.

    `labels` maps each class name, in class order, to the name drawn (a Model's display_labels). A font
    with their glyphs is looked up now; without one the class names are drawn and `note` says so.
    `images` holds what was charted.
    """

    def __init__(
        self, path: str | os.PathLike, labels: Mapping[str, str], top: int, limit: int = plot.MAX_CHART_IMAGES
    ) -> None:
        plot.check_chart_path(path)
        self.path, self.top, self.limit = Path(path), top, limit
        self.class_names = tuple(labels)
        drawn, self.font, self.note = drawable_labels(labels, extra="")
        self.labels = [drawn[name] for name in self.class_names]
        self.images: list[plot.ChartImage] = []

    def image(self, result: ImageResult) -> None:
        if result.image is None or result.probabilities is None or len(self.images) >= self.limit:
            return
        truth = true_class(result.path, self.class_names)
        self.images.append(plot.ChartImage(result.image, result.path.name, result.probabilities, truth))

    def finish_images(self, summary: ImagesSummary) -> None:
        if self.images:
            plot.save_chart(self.path, self.images, self.labels, self.top, self.font)


class Overlay(Sink):
    """Draws the top class, its probability and the FPS on each frame (in place), then writes it to
    `recorder` and/or shows it in `window`; closing the window (q, Esc) stops the run.

    `labels` maps each class name to the text drawn for it (a Model's display_labels), with a font
    that has their glyphs; without one, the class names are drawn and `note` says so. Without
    `labels`: the class names, in OpenCV's Hershey font (ASCII only).
    """

    def __init__(
        self,
        window: Window | None = None,
        recorder: VideoRecorder | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.window, self.recorder = window, recorder
        self.labels: dict[str, str] | None = None
        self.painter, self.note = HERSHEY_PAINTER, None
        if labels is not None:
            self.labels, font, self.note = drawable_labels(labels)
            self.painter = TextPainter(font)

    def frame(self, result: FrameResult) -> bool:
        best = result.predictions[0]
        label = best.label if self.labels is None else self.labels[best.label]
        image = annotate(result.frame.image, label, best.probability, result.fps, self.painter)
        if self.recorder is not None:
            self.recorder.write(image)
        return self.window is None or self.window.show(image)
