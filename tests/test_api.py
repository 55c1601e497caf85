"""The Python API (`edgecnn.__all__`): load, classify frames and files, video by iterator and
callback, one exception type whose parameter the CLIs name by their flags."""

import ast
import pickle
import re
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
from conftest import REPO, random_frames

import edgecnn
from edgecnn.cli import error_message
from edgecnn.live import EndReason
from edgecnn.sinks import record_video


@pytest.fixture(scope="module")
def model():
    return edgecnn.load("catsdogs", device="cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """30 frames of 160x120 MJPEG at 30 FPS, each a different grey level."""
    path = tmp_path_factory.mktemp("api") / "clip.avi"
    with record_video(path, 30.0) as writer:
        for i in range(30):
            writer.write(np.full((120, 160, 3), i * 8, np.uint8))
    return path


def test_import_edgecnn_loads_neither_tensorflow_nor_the_runtime_until_used():
    code = (
        "import sys, edgecnn\n"
        "light = not any(m in sys.modules for m in ('tensorflow', 'onnxruntime', 'cv2'))\n"
        "names = [getattr(edgecnn, name) for name in edgecnn.__all__]\n"
        "print(light, 'tensorflow' in sys.modules, 'onnxruntime' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.split() == ["True", "False", "True"], result.stderr
    assert set(edgecnn.__all__) <= set(dir(edgecnn))
    with pytest.raises(AttributeError, match="no attribute 'classify'"):
        edgecnn.classify  # noqa: B018  (the attribute access is the test)


def test_frames_and_files_give_the_same_predictions(model, tmp_path):
    frames = random_frames(np.random.default_rng(1), [(120, 160, 3), (90, 90, 3), (200, 100, 3)])
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), frame)
    expected = model.probabilities(frames)
    assert expected.shape == (3, 2) and expected.dtype == np.float32
    np.testing.assert_array_equal(model.probabilities(paths), expected)
    for i, (frame, path) in enumerate(zip(frames, paths, strict=True)):
        best, second = model.classify(frame, top=2)
        assert model.classify(str(path), top=5) == [best, second]  # top beyond the class count: all classes
        assert best.index == int(expected[i].argmax()) and best.label == model.class_names[best.index]
        assert best.probability == pytest.approx(float(expected[i].max())) and best.probability >= second.probability
    batched = [top1 for (top1,) in model.classify_many([*frames, *paths], top=1, batch_size=2)]
    assert [p.index for p in batched] == [int(i) for i in expected.argmax(1)] * 2
    assert [p.probability for p in batched] == pytest.approx(expected.max(1).tolist() * 2, abs=1e-6)
    assert model.spec.name == "catsdogs" and model.spec.input_shape == (180, 180, 3)
    assert model.provider == "CPUExecutionProvider" and "catsdogs" in repr(model)


def test_classify_files_reports_bad_files_in_order_and_counts(model, tmp_path):
    for name in ("a.png", "c.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"not a png")
    run = model.classify_files([tmp_path], top=1, batch_size=1)
    results = list(run)
    assert [r.path.name for r in results] == ["a.png", "b.png", "c.png"]
    assert [r.error is None for r in results] == [True, False, True] and "b.png" in results[1].error
    assert results[1].predictions == [] and len(results[0].predictions) == 1
    assert (run.summary.classified, run.summary.failed) == (2, 1)
    with pytest.raises(edgecnn.EdgecnnError, match="no such file or directory"):
        model.classify_files([tmp_path / "absent"])


def test_classify_files_counts_top1_right_where_the_folder_names_the_class(model, tmp_path, capsys):
    rng = np.random.default_rng(2)
    for folder, count in (("cats", 3), ("dogs", 4), ("unsorted", 2)):
        (tmp_path / folder).mkdir()
        for i, frame in enumerate(random_frames(rng, [(60, 80, 3)] * count)):
            cv2.imwrite(str(tmp_path / folder / f"{i}.png"), frame)
    (tmp_path / "dogs" / "broken.png").write_bytes(b"not a png")
    run = model.classify_files([tmp_path], top=1)
    results = [r for r in run if r.error is None]
    right = sum(r.predictions[0].label + "s" == r.path.parent.name for r in results)
    assert (run.summary.labelled, run.summary.correct) == (7, right)
    assert run.summary.accuracy == right / 7
    unlabelled = model.classify_files([tmp_path / "unsorted"])
    list(unlabelled)
    assert unlabelled.summary.labelled == 0 and unlabelled.summary.accuracy is None
    from edgecnn.cli import infer

    assert infer.main(["--model", "catsdogs", str(tmp_path)]) == 2  # one unreadable file
    assert f"top-1 accuracy {right / 7:.4f}: {right} / 7 right" in capsys.readouterr().err


def test_bad_arguments_are_edgecnn_errors_naming_the_parameter(model, tmp_path):
    cases = [
        (lambda: model.classify(np.zeros((8, 8, 3), np.float64)), None, "must be a uint8"),
        (lambda: model.classify(42), "image", "or an image file path, got int"),
        (lambda: model.classify(tmp_path / "absent.jpg"), None, "absent.jpg: no such file"),
        (lambda: model.classify_many([], top=0), "top", "must be positive"),
        (lambda: model.video(0, workers=10_000), "workers", "must be at most"),
        (lambda: edgecnn.load("catsdogs", threads=-1), "threads", "must be from 0"),
        (lambda: model.probabilities([]), "images", "no images given"),
        (lambda: model.video("gopher://x/y"), "source", "unsupported stream scheme"),
        (lambda: model.video(tmp_path), "source", "is a directory, not a video"),
        (lambda: model.video(0, duration=0), "duration", "must be positive"),
        (lambda: edgecnn.load("resnet"), "model", "not a bundled model"),
        (lambda: edgecnn.load("catsdogs", device="tpu"), "device", "must be one of auto, cpu, cuda"),
        (lambda: edgecnn.load(tmp_path / "absent.onnx"), None, "no such model file"),
    ]
    for call, parameter, text in cases:
        with pytest.raises(edgecnn.EdgecnnError, match=re.escape(text)) as info:
            call()
        assert isinstance(info.value, ValueError) and info.value.parameter == parameter, info.value
        assert "--" not in str(info.value), "library messages name parameters, never flags"


def test_error_names_parameter_and_value_and_the_cli_names_its_flag():
    error = edgecnn.EdgecnnError("no CUDA here", parameter="device", value="cuda")
    assert str(error) == "device='cuda': no CUDA here" and error.reason == "no CUDA here"
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.parameter, again.value) == (type(error), str(error), "device", "cuda")
    flags = {"device": "--device", "data_dir": "--data"}
    assert error_message(error, flags) == "--device cuda: no CUDA here"
    assert (
        error_message(edgecnn.EdgecnnError("needs a folder", parameter="data_dir"), flags) == "--data: needs a folder"
    )
    unmapped = edgecnn.EdgecnnError("must be positive", parameter="limit", value=0)
    assert error_message(unmapped, flags) == "limit=0: must be positive"
    assert error_message(edgecnn.EdgecnnError("plain"), flags) == "plain"


def test_video_as_an_iterator_stops_early_and_cleans_up(model, clip):
    before = threading.active_count()
    with model.video(clip, top=1) as run:
        assert not run.live and run.info.frame_count == 30
        indices = []
        for result in run:
            indices.append(result.frame.index)
            assert len(result.predictions) == 1 and result.age >= 0
            if len(indices) == 5:
                break
    assert indices == [0, 1, 2, 3, 4]
    assert run.summary.end is EndReason.STOPPED and run.summary.frames == 5
    assert threading.active_count() == before, "capture and inference threads are joined"
    with pytest.raises(edgecnn.EdgecnnError, match="only once"):
        iter(run)


def test_video_with_a_callback_to_the_end_and_stopped_by_it(model, clip):
    seen = []
    summary = model.run_video(clip, lambda r: seen.append(r.frame.index), workers=2, batch_size=4)
    assert seen == list(range(30)) and summary.end is EndReason.END_OF_VIDEO
    assert (summary.workers, summary.batch_size, summary.frames) == (2, 4, 30)
    assert summary.to_dict()["end"] == "end of video"
    summary = model.run_video(clip, lambda r: r.frame.index < 6)
    assert summary.end is EndReason.STOPPED and summary.frames == 7
    summary = model.run_video(clip, lambda r: None, max_frames=3, realtime=True)
    assert summary.end is EndReason.MAX_FRAMES and summary.frames == 3 and summary.realtime


def test_library_modules_never_speak_of_flags():
    """Only the CLIs (edgecnn/cli, and commands with their own argparse parser) name flags:
    a string in any other module that says `--flag` is a message written for the wrong reader.
    Commands recorded as data (the arguments of `shlex.join`) are not messages."""
    offenders = []
    for path in sorted([*(REPO / "edgecnn").rglob("*.py"), *(REPO / "training").rglob("*.py")]):
        source = path.read_text()
        if "cli" in path.relative_to(REPO).parts or "argparse" in source:
            continue
        tree = ast.parse(source)
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        recorded = {
            id(constant)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "shlex.join"
            for constant in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | recorded:
                if re.search(r"(^|[\s(])--[a-z]", node.value):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value[:60]!r}")
    assert not offenders, offenders


def test_a_new_sink_plugs_in_beside_the_others(model, clip):
    """What edgecnn-infer does with its outputs: Sinks hands every call to each sink in turn."""
    from edgecnn.sinks import Sink, Sinks

    class Recorder(Sink):
        def __init__(self, stop_at=None):
            self.calls, self.stop_at = [], stop_at

        def start_video(self, run):
            self.calls.append(("start", run.info.frame_count))

        def frame(self, result):
            self.calls.append(("frame", result.frame.index))
            return result.frame.index != self.stop_at

        def finish_video(self, summary):
            self.calls.append(("finish", summary.end))

    first, stopper = Recorder(), Recorder(stop_at=2)
    sinks = Sinks([first, stopper])
    with model.video(clip) as run:
        sinks.start_video(run)
        summary = run.run(sinks.frame)
    sinks.finish_video(summary)
    expected = [("start", 30), ("frame", 0), ("frame", 1), ("frame", 2), ("finish", EndReason.STOPPED)]
    assert first.calls == expected and stopper.calls == expected
