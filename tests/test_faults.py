"""Fault injection: a disk that fills up part way, signals at random points, interrupted runs.

Whatever happens, no command may leave a partial file, print a traceback, or commit an
output that is not complete. The small disk is a 256 KiB tmpfs where this runs as root
and may mount; elsewhere the child gets RLIMIT_FSIZE, under which writes fail part way
the same (EFBIG instead of ENOSPC).
"""

import errno
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from edgecnn.fileio import PARTIAL_MARK, atomic_output
from edgecnn.sinks import record_video

SMALL_DISK_BYTES = 256 * 1024
SEED = int(os.environ.get("EDGECNN_FAULT_SEED", time.time_ns() % 100_000))


def leftovers(folder):
    return sorted(str(p) for p in folder.rglob("*") if PARTIAL_MARK in p.name or p.name.endswith((".tmp", ".part")))


def assert_clean(result_err, folder):
    assert "Traceback" not in result_err, result_err
    assert not leftovers(folder), leftovers(folder)


@pytest.fixture
def small_disk(tmp_path):
    """(folder, preexec_fn for the child): writes into folder fail after SMALL_DISK_BYTES."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = (
        os.geteuid() == 0
        and shutil.which("mount")
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_BYTES}", "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )
    if mounted:
        yield folder, None
        subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        yield folder, lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (SMALL_DISK_BYTES, SMALL_DISK_BYTES))


def noisy_clip(path, frames=60, size=(160, 120)):
    """MJPEG of random frames: about 15 KB a frame, so 60 frames outgrow the small disk."""
    rng = np.random.default_rng(0)
    with record_video(path, 30.0) as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (size[1], size[0], 3), np.uint8))
    return path


def infer_cmd(*args):
    return [sys.executable, "-m", "edgecnn.cli.infer", "--model", "fmnist", *map(str, args)]


# ---------------------------------------------------------------------------
# A write that fails part way.


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_atomic_output_leaves_the_old_file_when_a_write_fails_part_way(tmp_path, failure):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous, complete file")
    with pytest.raises(type(failure)):
        with atomic_output(target) as temp:
            with open(temp, "wb") as f:
                f.write(b"x" * 100_000)
                raise failure
    assert target.read_bytes() == b"the previous, complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_save_on_a_disk_that_fills_up_commits_nothing_and_says_so(small_disk, tmp_path, suffix):
    folder, limit = small_disk
    clip = noisy_clip(tmp_path / "clip.avi")
    result = subprocess.run(
        infer_cmd("--camera", clip, "--save", folder / f"out{suffix}"),
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "nothing saved" in last and ("failed" in last or "finished file" in last), result.stderr
    assert_clean(result.stderr, folder)
    assert not list(folder.iterdir())


def test_export_on_a_disk_that_fills_up_writes_nothing(untrained_fmnist, tmp_path, capsys, monkeypatch):
    """In process (TensorFlow is loaded already): the ONNX write fails after half the bytes."""
    import onnx

    from edgecnn.cli import export

    def half_then_full(proto, path, *args, **kwargs):
        data = proto.SerializeToString()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(onnx, "save_model", half_then_full)
    run, _ = untrained_fmnist
    out = tmp_path / "m.onnx"
    assert export.main([str(run), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err.strip().splitlines()[-1]
    assert_clean(err, tmp_path)
    assert not out.exists()


# ---------------------------------------------------------------------------
# Signals.


def json_lines_until(child, count):
    lines = []
    while len(lines) < count:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        lines.append(line)
    return lines


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stopping_a_recording_keeps_what_was_recorded(tmp_path, signum):
    clip = noisy_clip(tmp_path / "clip.avi", frames=300)
    out = tmp_path / "recording.avi"
    child = subprocess.Popen(
        infer_cmd("--camera", clip, "--realtime", "--json", "--save", out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    json_lines_until(child, 5)
    child.send_signal(signum)
    rest, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    summary = json.loads(rest.strip().splitlines()[-1])["summary"]
    assert summary["end"] == "interrupted" and summary["saved_frames"] >= 4  # the 5th may be printed, not yet written
    cap = cv2.VideoCapture(str(out))
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    assert decoded == summary["saved_frames"] == int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert_clean(err, tmp_path)


def random_delay(label, low, high):
    rng = random.Random(f"{SEED}-{label}")
    return rng.uniform(low, high)


def assert_stopped_cleanly(code, signum, finished, context):
    """0 (ran to the end), 130 (stopped by the signal, clean-up done), or killed by the signal only
    when the work had finished and the interpreter was shutting down (TensorFlow's teardown takes a
    while), which is where a Unix process stops as it always does."""
    assert code in (0, 130) or (finished and code == -signum), f"exit {code}, finished {finished}; {context}"


def interrupt_at(cmd, delay, signum, **kwargs):
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    try:
        child.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        child.send_signal(signum)
    out, err = child.communicate(timeout=120)
    return child.returncode, out, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_at_random_points_during_save(tmp_path, signum):
    clip = noisy_clip(tmp_path / "clip.avi", frames=90)
    out = tmp_path / "out.avi"
    delay = random_delay(f"save-{signum}", 1.0, 4.0)
    code, stdout, err = interrupt_at(infer_cmd("--camera", clip, "--realtime", "--json", "--save", out), delay, signum)
    assert_stopped_cleanly(code, signum, '"summary"' in stdout, f"seed {SEED}, delay {delay:.2f}: {err}")
    assert_clean(err, tmp_path)
    if out.exists():
        summary = json.loads(stdout.strip().splitlines()[-1])["summary"]
        assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == summary["saved_frames"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_at_random_points_during_export(untrained_fmnist, tmp_path, signum):
    import onnx

    run, _ = untrained_fmnist
    out = tmp_path / "m.onnx"
    delay = random_delay(f"export-{signum}", 1.0, 14.0)
    code, stdout, err = interrupt_at(
        [sys.executable, "-m", "edgecnn.cli.export", str(run), "-o", str(out)], delay, signum
    )
    finished = stdout.startswith("wrote ")
    assert_stopped_cleanly(code, signum, finished, f"seed {SEED}, delay {delay:.2f}: {err}")
    assert_clean(err, tmp_path)
    assert finished == out.exists(), f"seed {SEED}, delay {delay:.2f}: {err}"
    if out.exists():
        onnx.checker.check_model(onnx.load(out))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_at_random_points_during_training_never_leave_another_runs_results(fmnist_dir, tmp_path, signum):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_bytes(b"the previous run's model")
    (out / "metrics.json").write_text('{"previous": true}')
    (out / "run.json").write_text('{"status": "finished", "command": ["previous"]}')
    delay = random_delay(f"train-{signum}", 1.0, 25.0)
    cmd = [
        sys.executable,
        "-m",
        "edgecnn.cli.train",
        "fmnist",
        "--data",
        str(fmnist_dir),
        "--out",
        str(out),
        "--overwrite",
        "--epochs",
        "1",
        "--limit",
        "2000",
    ]
    code, stdout, err = interrupt_at(cmd, delay, signum)
    finished = "run directory:" in stdout
    assert_stopped_cleanly(code, signum, finished, f"seed {SEED}, delay {delay:.2f}: {err}")
    assert_clean(err, tmp_path)
    run = json.loads((out / "run.json").read_text())
    if run["command"] == ["previous"]:  # stopped while the data loaded: the previous run is untouched
        assert code == 130 and (out / "model.keras").read_bytes() == b"the previous run's model"
        return
    assert run["status"] in ("finished", "interrupted"), run
    if finished:  # stopped in an epoch after the first (or not at all): this run's best checkpoint evaluated
        assert (out / "model.keras").exists() and (out / "metrics.json").exists(), err
    else:  # stopped before the first epoch ended, or while the results were written
        assert run["status"] == "interrupted", run
    if (out / "model.keras").exists():
        assert (out / "model.keras").read_bytes() != b"the previous run's model"
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
    assert "previous" not in metrics
