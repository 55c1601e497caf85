"""Live inference: a generated 640x480 video stands in for the camera, end to end.

Every pipeline run here is bounded by the video's length, --max-frames or --duration.
"""

import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import REPO

from edgecnn.cli import infer
from edgecnn.datasets import data_root
from edgecnn.errors import EdgecnnError
from edgecnn.models import BUNDLED, BUNDLED_FP32, DEFAULT_MODEL, bundled_path, recipe, resolve_model
from edgecnn.session import Classifier
from edgecnn.sinks import display_problem, record_video
from edgecnn.sources import parse_video_source

WIDTH, HEIGHT = 640, 480
SUMMARY_FIELDS = {
    "source",
    "kind",
    "model",
    "provider",
    "frames",
    "dropped",
    "bad_frames",
    "seconds",
    "fps",
    "stage_ms",
    "frame_age_ms",
    "workers",
    "threads",
    "batch_size",
    "end",
    "error",
    "realtime",
}


def test_frames(n_images: int = 6) -> list[np.ndarray]:
    """640x480 BGR frames from real cats-vs-dogs test images, or synthetic ones without the data."""
    folder = data_root() / "cats_vs_dogs" / "test"
    files = sorted(folder.glob("cats/*.jpg"))[: n_images // 2] + sorted(folder.glob("dogs/*.jpg"))[: n_images // 2]
    if files:
        return [cv2.resize(cv2.imread(str(f)), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA) for f in files]
    rng = np.random.default_rng(3)  # no data here: smooth random colour fields still exercise everything
    return [cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (WIDTH, HEIGHT)) for _ in range(n_images)]


test_frames.__test__ = False  # a helper, not a test


def write_video(path, n_frames: int, fps: float, repeat: int = 5):
    frames = test_frames()
    with record_video(path, fps) as writer:
        for i in range(n_frames):
            writer.write(frames[(i // repeat) % len(frames)])
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """The camera: 60 frames of 640x480 MJPEG at 30 FPS."""
    return write_video(tmp_path_factory.mktemp("live") / "camera.avi", 60, 30.0)


def run_main(argv, capsys):
    code = infer.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_run(argv, capsys):
    code, out, err = run_main([*argv, "--json"], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and set(lines[-1]) == {"summary"}, out[-500:]
    return code, lines[:-1], lines[-1]["summary"], err


def test_camera_video_end_to_end_with_the_default_bundled_model(video, capsys):
    code, records, summary, err = json_run(["--camera", video], capsys)
    assert code == 0, err
    assert [r["frame"] for r in records] == list(range(60)), "a file is read in order, every frame"
    assert set(SUMMARY_FIELDS) <= set(summary)
    assert summary["model"] == DEFAULT_MODEL and summary["frames"] == 60 and summary["end"] == "end of video"
    assert summary["dropped"] == 0 and summary["error"] is None
    assert summary["provider"] == Classifier(resolve_model(None)).provider
    assert set(summary["stage_ms"]) == {"capture", "preprocess", "inference", "postprocess", "output"}
    assert all(v >= 0 for v in summary["stage_ms"].values()) and summary["stage_ms"]["inference"] > 0
    age = summary["frame_age_ms"]
    assert 0 < age["p50"] <= age["p95"] <= age["max"]
    assert summary["fps"] > 0
    first = records[0]
    assert set(first) == {"source", "frame", "time", "captured_at", "predictions", "latency_ms"}
    assert [p["label"] for p in first["predictions"]] in (["cat", "dog"], ["dog", "cat"])
    assert records[30]["time"] == pytest.approx(1.0, abs=1e-3)
    assert abs(first["captured_at"] - time.time()) < 60

    # The same frames, decoded and classified directly, give the same answers.
    classifier = Classifier(bundled_path(DEFAULT_MODEL), device="cpu")
    cap = cv2.VideoCapture(str(video))
    frames = [cap.read()[1] for _ in range(60)]
    expected = classifier.classify(frames)[:, 1]
    got = [next(p["probability"] for p in r["predictions"] if p["label"] == "dog") for r in records]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert "60 frame(s)" in err and "FPS" in err and "frame age at result: p50" in err


def test_bundled_fmnist_model_table_output_and_max_frames(video, capsys):
    code, out, err = run_main(["--model", "fmnist", "--camera", video, "--max-frames", "7", "--top-k", "2"], capsys)
    assert code == 0, err
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["frame", "time", "top-1"] and len(rows) == 8
    assert "fmnist (10 classes, 28x28 gray)" in err and "max frames" in err


def test_realtime_source_faster_than_inference_drops_stale_frames(tmp_path, capsys):
    # 240 FPS is faster than one one-thread catsdogs session (~100-200 FPS): frames must be dropped,
    # never queued, so the age at result stays near one inference, not growing with the run.
    fast = write_video(tmp_path / "fast.avi", 120, 240.0, repeat=10)
    one_thread = ["--model", "catsdogs", "--workers", "1", "--threads", "1"]
    code, records, summary, err = json_run([*one_thread, "--camera", fast, "--realtime"], capsys)
    assert code == 0, err
    assert summary["realtime"] and summary["batch_size"] == 1 and summary["workers"] == 1
    assert summary["dropped"] > 0 and summary["frames"] + summary["dropped"] == 120
    indices = [r["frame"] for r in records]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert summary["frame_age_ms"]["p95"] < 250, summary


def test_sources_that_fail_to_open_are_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a video")
    cases = [
        (["--camera", "9"], "camera 9: cannot open"),
        (["--camera", tmp_path / "absent.mp4"], "no such video file"),
        (["--camera", tmp_path / "notes.txt"], "cannot open (not a video OpenCV can decode)"),
        (["--camera", "gopher://x/y"], "unsupported stream scheme"),
        (["--camera", f"http://127.0.0.1:{free_port()}/cam.mjpg", "--source-timeout", "2"], "cannot open"),
    ]
    for argv, message in cases:
        started = time.perf_counter()
        code, out, err = run_main(argv, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and message in lines[-1] and lines[-1].startswith("edgecnn-infer: error: "), (argv, err)
        assert "Traceback" not in err and "WARN" not in err and out == ""
        assert time.perf_counter() - started < 10


def test_truncated_video_classifies_what_it_can_then_exits_1(video, tmp_path, capsys):
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    code, records, summary, err = json_run(["--camera", cut], capsys)
    assert code == 1
    assert 10 < summary["frames"] < 60 and len(records) == summary["frames"]
    assert "video stopped at frame" in summary["error"] and "truncated or corrupt" in err.splitlines()[-1]


def test_corrupt_frame_does_not_stop_the_video(video, tmp_path, capsys):
    data = bytearray(video.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    for start in (starts[5], starts[20]):
        data[start + 700 : start + 4000] = bytes(3300)  # garbage in the middle of two JPEG frames
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    code, records, summary, err = json_run(["--camera", damaged], capsys)
    assert code == 0, err
    assert summary["frames"] + summary["bad_frames"] == 60 and summary["end"] == "end of video"
    assert "mjpeg" not in err, "ffmpeg's own log must stay quiet"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stream_that_drops_exits_1_with_a_summary(video, tmp_path, capsys):
    shutil.copy(video, tmp_path / "stream.avi")
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/stream.avi"
        code, records, summary, err = json_run(["--camera", url, "--source-timeout", "0.5"], capsys)
    finally:
        server.shutdown()
    assert code == 1, err
    assert summary["kind"] == "stream" and summary["batch_size"] == 1 and summary["frames"] > 0
    assert "stream ended or dropped (no frame for 0.5 s)" in err.splitlines()[-1]


def test_save_writes_the_annotated_video_only_when_complete(video, tmp_path, capsys):
    out = tmp_path / "annotated.mp4"
    code, _, err = run_main(["--camera", video, "--max-frames", "12", "--save", out], capsys)
    assert code == 0, err
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, frame = cap.read()
    assert ok and frame.shape == (HEIGHT, WIDTH, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4"], "no temp file left behind"

    code, _, err = run_main(["--camera", video, "--save", tmp_path / "nodir" / "x.mp4"], capsys)
    assert code == 2 and "no such directory" in err
    code, _, err = run_main(["--camera", video, "--save", tmp_path / "x.gif"], capsys)
    assert code == 2 and "unsupported video type" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4"]


def test_show_without_a_display_says_so_and_goes_on_headless(video, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_problem() is not None
    code, out, err = run_main(["--camera", video, "--show", "--max-frames", "3"], capsys)
    assert code == 0
    assert "cannot show video: no display ($DISPLAY is not set); continuing headless" in err
    assert len(out.splitlines()) == 4


def start_xvfb():
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); the headless fallback is tested instead")
    for number in range(90, 110):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and not os.path.exists(f"/tmp/.X{number}-lock"):
            break
    proc = subprocess.Popen(
        [exe, f":{number}", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if os.path.exists(f"/tmp/.X11-unix/X{number}"):
            return proc, f":{number}"
        time.sleep(0.05)
    proc.kill()
    pytest.skip("Xvfb did not start")


def edgecnn_infer(*args, env=None, timeout=60):
    exe = shutil.which("edgecnn-infer") or str(REPO / ".venv" / "bin" / "edgecnn-infer")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def test_show_opens_a_window_under_xvfb(video):
    xvfb, display = start_xvfb()
    try:
        env = {**os.environ, "DISPLAY": display}
        env.pop("WAYLAND_DISPLAY", None)
        env.pop("QT_QPA_PLATFORM", None)
        result = edgecnn_infer("--camera", video, "--show", "--max-frames", "10", "--json", env=env)
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert "cannot show" not in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["summary"]["frames"] == 10


def test_console_script_with_no_model_argument(video):
    result = edgecnn_infer("--camera", video, "--json", "--max-frames", "5")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 6 and lines[-1]["summary"]["model"] == DEFAULT_MODEL and lines[-1]["summary"]["frames"] == 5


def test_ctrl_c_stops_cleanly_and_prints_the_summary(video):
    exe = shutil.which("edgecnn-infer") or str(REPO / ".venv" / "bin" / "edgecnn-infer")
    proc = subprocess.Popen(
        [exe, "--camera", str(video), "--realtime", "--duration", "30", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()  # the first result: the pipeline is running
        assert json.loads(first)["frame"] == 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert summary["end"] == "interrupted" and summary["frames"] >= 1
    assert "Traceback" not in err


def test_images_with_the_default_model_and_usage_errors(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "pet.png"), test_frames()[0])
    code, out, err = run_main([tmp_path / "pet.png", "--top-k", "1"], capsys)
    assert code == 0 and "pet.png" in out and "catsdogs" in err
    code, out, err = run_main(["--model", "fmnist", tmp_path, "--json"], capsys)
    assert code == 0 and json.loads(out)["predictions"][0]["label"]
    for argv, message in [
        ([tmp_path / "pet.png", "--show"], "--show applies to video only"),
        (["--camera", "0", tmp_path / "pet.png"], "image arguments are not allowed"),
        (["--model", "resnet", tmp_path], f"not a bundled model ({', '.join(BUNDLED)})"),
        ([], "nothing to classify"),
        (["--camera", "0", "--duration", "0"], "--duration 0.0: must be positive"),
    ]:
        code, out, err = run_main(argv, capsys)
        assert code == 2 and message in err.strip().splitlines()[-1], (argv, err)


def test_model_and_source_resolution(tmp_path):
    assert parse_video_source("0") == (0, "camera")
    assert parse_video_source("rtsp://cam/1") == ("rtsp://cam/1", "stream")
    with pytest.raises(EdgecnnError, match="is a directory"):
        parse_video_source(str(tmp_path))
    assert resolve_model(None) == bundled_path(DEFAULT_MODEL)
    assert resolve_model("fmnist").name == "fmnist.onnx"
    assert resolve_model(str(tmp_path / "m.onnx")) == tmp_path / "m.onnx"
    for name in BUNDLED_FP32:
        r = recipe(name)
        assert r["name"] == name and r["train_command"].startswith(f"edgecnn-train {name}")
        assert r["data"]["sha256"] and r["seed"] is not None and r["onnx"]["file"] == f"{name}.onnx"
    assert recipe("fmnist")["metrics"]["test"]["accuracy"] > 0.91


def test_the_video_plan_takes_a_models_measured_set_ups_on_the_cpu_and_the_callers_values_first(monkeypatch):
    from edgecnn import live

    monkeypatch.setattr(live, "cpu_count", lambda: 4)
    measured = {"file": {"sessions": "one", "batch": 4}, "live": {"sessions": "per-cpu", "batch": 1}}
    assert live.plan_video(False, "CPUExecutionProvider") == live.VideoPlan(4, 1, 4)  # nothing measured
    assert live.plan_video(True, "CPUExecutionProvider") == live.VideoPlan(1, 4, 1)
    assert live.plan_video(False, "CPUExecutionProvider", measured=measured) == live.VideoPlan(1, 4, 4)
    assert live.plan_video(True, "CPUExecutionProvider", measured=measured) == live.VideoPlan(4, 1, 1)
    assert live.plan_video(False, live.CUDA, measured=measured) == live.VideoPlan(1, 4, 16)  # measured on a CPU
    given = live.plan_video(False, "CPUExecutionProvider", measured=measured, workers=2, batch_size=8)
    assert given == live.VideoPlan(2, 2, 8)  # the CPUs spread over the sessions asked for


def test_only_bundled_models_carry_measured_set_ups(tmp_path):
    from edgecnn.models import video_setups

    copy = tmp_path / "catsdogs.onnx"
    shutil.copy(bundled_path("catsdogs"), copy)
    shutil.copy(bundled_path("catsdogs").with_suffix(".recipe.json"), copy.with_suffix(".recipe.json"))
    assert video_setups(copy) == {}  # a file elsewhere is the user's: nothing was measured for it
    for name in BUNDLED:
        setups = video_setups(bundled_path(name))
        assert set(setups) == {"file", "live"}, name
        assert setups["live"]["batch"] == 1 and {s["sessions"] for s in setups.values()} <= {"one", "per-cpu"}
