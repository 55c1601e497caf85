"""Where live results go besides stdout: an overlay on the frame, a window, a video file.

`annotate` draws the top label, its probability and the FPS on a BGR frame in place
(with an `edgecnn.text.TextPainter`, so class names in any script can be drawn).
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
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import UserError
from edgecnn.fileio import Discard, atomic_output
from edgecnn.sources import quiet_opencv
from edgecnn.text import TextPainter

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
    `TextPainter(font)` draws any script the font has (see `edgecnn.text.drawable_labels`).
    """
    return painter.draw(frame, [[label, f" {probability:.2f}"], [f"{fps:.0f} FPS"]])


def check_video_suffix(path: Path) -> None:
    """UserError unless `path` ends in a container VIDEO_CODECS can write."""
    suffix = path.suffix.lower()
    if suffix not in VIDEO_CODECS:
        raise UserError(
            f"--save {path}: unsupported video type {suffix or '(none)'!r} (use one of {', '.join(VIDEO_CODECS)})"
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
        """Append one uint8 BGR (or gray) frame; UserError when it cannot be written (disk full)."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        size = (frame.shape[1], frame.shape[0])
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.temp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
            if not self._writer.isOpened():
                raise UserError(f"--save {self.path}: OpenCV cannot write {self.fourcc} video here")
            self._size = size
        elif size != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        with quiet_opencv():  # ffmpeg's own warning would come before our one-line error
            written = self._writer.write(frame)
        if not written:
            raise UserError(
                f"--save {self.path}: writing frame {self.frames + 1} failed "
                f"(disk full or not writable?); nothing saved"
            )
        self.frames += 1

    def release(self) -> None:
        """Finish the container (index, trailer)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def verify(self) -> None:
        """UserError unless the finished temp file reopens with `frames` frames and its last one decodes."""
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
            raise UserError(
                f"--save {self.path}: wrote {self.frames} frame(s) but the finished file {found} "
                f"(disk full?); nothing saved"
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
