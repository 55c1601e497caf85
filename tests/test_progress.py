"""Progress bars: on a terminal's stderr (a real pseudo-terminal here), never in pipes or with --json."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from unittest import mock

import cv2
import numpy as np
from conftest import REPO

from edgecnn import progress
from edgecnn.cli import export, infer, train


class Terminal:
    """A pseudo-terminal whose output is collected by a thread (so writers never block)."""

    def __init__(self, rows: int = 40, columns: int = 120) -> None:
        self.master, self.slave = pty.openpty()
        # A new pseudo-terminal is 0x0; a real one has a size (tqdm draws to the width).
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self._chunks: list[bytes] = []
        self._streams: list = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed its end
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def stream(self):
        """A text stream writing to the terminal (closed by `text`)."""
        self._streams.append(os.fdopen(os.dup(self.slave), "w", encoding="utf-8", buffering=1))
        return self._streams[-1]

    def text(self) -> str:
        """Everything written; call once the writers (processes, streams) are done."""
        for stream in self._streams:
            stream.close()
        os.close(self.slave)
        self._reader.join(timeout=30)
        os.close(self.master)
        return b"".join(self._chunks).decode("utf-8", "replace")


@contextlib.contextmanager
def stderr_on_a_terminal() -> Iterator[Terminal]:
    """sys.stderr is a pseudo-terminal and bars show at once, inside the block. (In the test body:
    pytest points sys.stderr back at its capture as each test phase starts.)"""
    term = Terminal()
    with mock.patch.object(sys, "stderr", term.stream()), mock.patch.object(progress, "DELAY_S", 0.0):
        yield term


def bar_shown(text: str, description: str) -> bool:
    return f"{description}:" in text and "%|" in text


def test_a_terminal_run_over_many_photos_shows_count_rate_and_eta(catsdogs_dir, tmp_path):
    """edgecnn-infer as a user starts it, stderr on a pseudo-terminal, stdout piped: the bar is on
    the terminal (count, rate, ETA) and stdout holds only the table."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((catsdogs_dir / "test" / "cats").iterdir())[:300]:
        (photos / path.name).symlink_to(path)
    term = Terminal()
    exe = shutil.which("edgecnn-infer") or str(REPO / ".venv" / "bin" / "edgecnn-infer")
    process = subprocess.Popen([exe, str(photos), "--batch-size", "8"], stdout=subprocess.PIPE, stderr=term.slave)
    out, _ = process.communicate(timeout=600)
    screen = term.text()
    assert process.returncode == 0, screen
    assert bar_shown(screen, "classifying"), screen[-2000:]
    assert "/300 [" in screen and "image/s]" in screen and "<" in screen, "count, rate and time left"
    assert "classified 300 image(s)" in screen
    rows = out.decode().splitlines()
    assert len(rows) == 301 and "\r" not in out.decode() and "%|" not in out.decode(), "the bar stays off stdout"


def images(folder, count=6):
    folder.mkdir()
    for i in range(count):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((28, 28), 20 * i, np.uint8))
    return folder


def test_infer_bar_on_a_terminal_not_with_json(tmp_path):
    folder = images(tmp_path / "in")
    with stderr_on_a_terminal() as terminal:
        assert infer.main(["--model", "fmnist", str(folder), "--batch-size", "2"]) == 0
        assert infer.main(["--model", "fmnist", str(folder), "--json"]) == 0
    screen = terminal.text()
    assert screen.count("classifying:") >= 1 and bar_shown(screen, "classifying")
    assert len(screen.split("classified 6 image(s)")) == 3
    second_run = screen.split("classified 6 image(s)")[1]
    assert "classifying:" not in second_run, "--json: no bar"


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    assert infer.main(["--model", "fmnist", str(images(tmp_path / "in"))]) == 0
    assert "classifying" not in capsys.readouterr().err


def test_make_subset_copying_bar(tmp_path):
    src = tmp_path / "kaggle"
    src.mkdir()
    for cls in ("cat", "dog"):
        for i in range(6):
            (src / f"{cls}.{i}.jpg").write_bytes(b"x")
    with stderr_on_a_terminal() as terminal:
        argv = ["make-subset", str(src), str(tmp_path / "dst"), "--train", "2", "--validation", "2", "--test", "2"]
        assert train.main(argv) == 0
    screen = terminal.text()
    assert bar_shown(screen, "copying") and "/12 [" in screen and "file/s]" in screen


def test_export_step_bar(untrained_fmnist, tmp_path):
    run, _ = untrained_fmnist
    with stderr_on_a_terminal() as terminal:
        assert export.main([str(run), "-o", str(tmp_path / "m.onnx")]) == 0
    screen = terminal.text()
    assert "export: converting with tf2onnx" in screen and "export: saving 5/6" in screen, screen[-1500:]
