"""The runtime: no TensorFlow, provider choice, postprocessing, models without metadata."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgecnn.errors import EdgecnnError
from edgecnn.postprocess import Prediction, class_probabilities, top_k
from edgecnn.session import Classifier
from edgecnn.spec import ModelSpec


def test_runtime_never_imports_tensorflow_nor_ray():
    code = (
        "import sys, edgecnn, edgecnn.session, edgecnn.preprocess, edgecnn.sources, edgecnn.cli.infer, "
        "edgecnn.cli.export, edgecnn.cli.train, edgecnn.ray; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'tf2onnx', 'ray', 'pyarrow')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def spec(activation="softmax", names=("a", "b", "c")):
    return ModelSpec(
        name="t", height=2, width=2, channels=3, color="rgb", class_names=names, output_activation=activation
    )


def test_sigmoid_output_becomes_two_columns_and_top_k_orders_them():
    probs = class_probabilities(np.array([[0.9], [0.2]], dtype=np.float32), spec("sigmoid", ("cat", "dog")))
    assert np.allclose(probs, [[0.1, 0.9], [0.8, 0.2]])
    assert top_k(probs, ("cat", "dog"), 5) == [
        [Prediction("dog", pytest.approx(0.9), 1), Prediction("cat", pytest.approx(0.1), 0)],
        [Prediction("cat", pytest.approx(0.8), 0), Prediction("dog", pytest.approx(0.2), 1)],
    ]
    with pytest.raises(ValueError, match="does not match 3 class names"):
        class_probabilities(np.zeros((2, 4), np.float32), spec())


def plain_onnx(path, metadata=None, classes=3):
    """(N, 2, 2, 3) -> mean over the pixels -> (N, 3), or the first `classes` of those 3 values."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Slice", ["mean", "starts", "ends", "axes"], ["out"]),
    ]
    constants = [
        helper.make_tensor(name, TensorProto.INT64, [1], [value])
        for name, value in (("starts", 0), ("ends", classes), ("axes", 1))
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2, 2, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, classes])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if metadata is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "edgecnn.spec", metadata
    onnx.save(model, path)
    return path


def test_models_without_or_with_bad_metadata_are_refused(tmp_path):
    with pytest.raises(EdgecnnError, match="has no edgecnn metadata"):
        Classifier(plain_onnx(tmp_path / "plain.onnx"), device="cpu")
    with pytest.raises(EdgecnnError, match="not valid JSON"):
        Classifier(plain_onnx(tmp_path / "bad.onnx", "{oops"), device="cpu")
    wrong = spec().to_json().replace('"height": 2', '"height": 5')
    with pytest.raises(EdgecnnError, match="does not match the spec"):
        Classifier(plain_onnx(tmp_path / "shape.onnx", wrong), device="cpu")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(EdgecnnError, match="not a loadable ONNX model"):
        Classifier(tmp_path / "junk.onnx", device="cpu")
    with pytest.raises(EdgecnnError, match="no such model file"):
        Classifier(tmp_path / "absent.onnx")


def test_the_reported_provider_is_the_one_onnxruntime_ran_the_convolutions_on(monkeypatch, tmp_path):
    """Classifier.provider checked against onnxruntime's own profile of a run, per device."""
    import json
    from pathlib import Path

    import edgecnn.session as session
    from edgecnn.models import bundled_path

    plain_options = session.session_options

    def profiled(*args, **kwargs):
        options = plain_options(*args, **kwargs)
        options.enable_profiling = True
        options.profile_file_prefix = str(tmp_path / "profile")
        return options

    monkeypatch.setattr(session, "session_options", profiled)

    def run(device: str) -> tuple[str, set[str]]:
        """(the provider the Classifier reports, the providers its Conv nodes ran on)."""
        classifier = Classifier(bundled_path("fmnist"), device=device)
        classifier.classify([np.zeros((28, 28, 3), np.uint8)] * 2)
        events = json.loads(Path(classifier.session.end_profiling()).read_text())
        nodes = [e["args"] for e in events if e.get("cat") == "Node"]
        return classifier.provider, {n["provider"] for n in nodes if "Conv" in n.get("op_name", "")}

    assert run("cpu") == ("CPUExecutionProvider", {"CPUExecutionProvider"})
    auto, ran = run("auto")
    assert ran == {auto}
    try:
        cuda, ran = run("cuda")
    except EdgecnnError as exc:  # no usable CUDA here: auto fell back to the CPU
        assert "cuda" in str(exc) and auto == "CPUExecutionProvider"
    else:
        assert cuda == auto == "CUDAExecutionProvider" and ran == {cuda}


def test_logits_become_probabilities():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    probs = class_probabilities(logits, spec("logits"))
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    binary = class_probabilities(np.array([[0.0], [2.0]], np.float32), spec("logits", ("cat", "dog")))
    np.testing.assert_allclose(binary[:, 1], [0.5, 1 / (1 + np.exp(-2.0))], rtol=1e-6)
    np.testing.assert_allclose(binary.sum(axis=1), 1.0, rtol=1e-6)


def test_io_binding_path_matches_plain_run():
    """The IO-binding path (CUDA's default) exercised on the CPU provider: same probabilities,
    one bound input per batch size, reused."""
    from conftest import random_frames

    from edgecnn.models import resolve_model

    frames = random_frames(np.random.default_rng(5), [(120, 160, 3), (90, 90, 3), (200, 100, 3)])
    plain = Classifier(resolve_model("catsdogs"), device="cpu")
    bound = Classifier(resolve_model("catsdogs"), device="cpu", io_binding=True)
    assert bound.io_binding and not plain.io_binding
    for n in (1, 3, 3, 1):
        np.testing.assert_array_equal(bound.classify(frames[:n]), plain.classify(frames[:n]))
    assert sorted(bound._bound) == [1, 3]


def test_missing_cuda_libraries_are_named_with_their_package(monkeypatch):
    import edgecnn.session as session

    monkeypatch.setattr(
        session.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(session, "load_cuda_libraries", lambda: ["libcudnn.so.9", "libcublasLt.so.13"])
    with pytest.raises(EdgecnnError) as info:
        session._providers_for("cuda")
    message = str(info.value)
    assert "libcudnn.so.9 (nvidia-cudnn-cu13)" in message and "libcublasLt.so.13 (nvidia-cublas)" in message
    assert "pip install 'edgecnn[gpu]'" in message and "\n" not in message
    assert session._providers_for("auto") == ["CPUExecutionProvider"]
    monkeypatch.setattr(session, "load_cuda_libraries", lambda: ["libcuda.so.1"])
    with pytest.raises(EdgecnnError, match="no NVIDIA driver"):
        session._providers_for("cuda")
    monkeypatch.setattr(session, "load_cuda_libraries", lambda: [])
    assert session._providers_for("cuda") == [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]


def test_cuda_library_loading_reports_what_this_machine_lacks():
    """The real preload on this machine: without a GPU the driver library is reported missing."""
    import ctypes

    from edgecnn.session import load_cuda_libraries

    missing = load_cuda_libraries()
    try:
        ctypes.CDLL("libcuda.so.1")
        has_driver = True
    except OSError:
        has_driver = False
    assert ("libcuda.so.1" in missing) == (not has_driver)
    assert all(name.startswith("lib") and ".so" in name for name in missing)


def test_gpu_extra_resolves_against_the_installed_onnxruntime():
    """edgecnn[gpu] names onnxruntime-gpu extras that exist and a version range that holds what is
    installed (the full resolution, with the NVIDIA wheels, is `pip install --dry-run '.[gpu]'`)."""
    from importlib import metadata
    from pathlib import Path

    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    gpu = [Requirement(text) for text in project["optional-dependencies"]["gpu"]]
    runtime = next(r for r in gpu if r.name == "onnxruntime-gpu")
    assert runtime.extras == {"cuda", "cudnn"}
    assert {r.name for r in gpu} == {"onnxruntime-gpu", "nvidia-cublas"}
    try:
        installed = metadata.distribution("onnxruntime-gpu")
    except metadata.PackageNotFoundError:
        pytest.skip("onnxruntime-gpu is not installed here (not x86-64 Linux or Windows)")
    assert runtime.specifier.contains(installed.version), (runtime.specifier, installed.version)
    assert {"cuda", "cudnn"} <= set(installed.metadata.get_all("Provides-Extra"))
    needed = {Requirement(r).name for r in installed.requires or [] if "extra ==" in r}
    assert {"nvidia-cuda-runtime", "nvidia-cudnn-cu13"} <= needed and "nvidia-cublas" not in needed


def cuda_or_skip() -> None:
    """Skip without a working CUDA provider, unless EDGECNN_REQUIRE_CUDA=1 (GPU runs: then fail)."""
    import os

    from edgecnn.session import _providers_for

    try:
        _providers_for("cuda")
    except EdgecnnError as exc:
        if os.environ.get("EDGECNN_REQUIRE_CUDA") == "1":
            pytest.fail(f"EDGECNN_REQUIRE_CUDA=1 but CUDA cannot run: {exc}")
        pytest.skip(f"no working CUDA here ({exc})")


@pytest.mark.parametrize("name", ["catsdogs", "fmnist"])
def test_cuda_matches_cpu_with_io_binding(name):
    cuda_or_skip()
    from conftest import random_frames

    from edgecnn.models import resolve_model

    frames = random_frames(np.random.default_rng(7), [(480, 640, 3)] * 8)
    cpu = Classifier(resolve_model(name), device="cpu")
    gpu = Classifier(resolve_model(name), device="cuda")
    assert gpu.provider == "CUDAExecutionProvider" and gpu.io_binding
    for n in (1, 8):
        np.testing.assert_allclose(gpu.classify(frames[:n]), cpu.classify(frames[:n]), atol=1e-5)


def test_infer_cli_reports_cuda(tmp_path, capsys):
    cuda_or_skip()
    import cv2

    from edgecnn.cli import infer

    photo = tmp_path / "x.png"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    assert infer.main(["--model", "catsdogs", str(photo), "--device", "cuda", "--json"]) == 0
    assert "CUDAExecutionProvider" in capsys.readouterr().err
