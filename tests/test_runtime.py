"""The runtime: no TensorFlow, provider choice, postprocessing, models without metadata."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgecnn.errors import UserError
from edgecnn.postprocess import class_probabilities, top_k
from edgecnn.session import Classifier
from edgecnn.spec import ModelSpec


def test_runtime_never_imports_tensorflow():
    code = ("import sys, edgecnn, edgecnn.session, edgecnn.preprocess, edgecnn.sources, edgecnn.cli.infer, "
            "edgecnn.cli.export, edgecnn.cli.train; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'tf2onnx')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def spec(activation="softmax", names=("a", "b", "c")):
    return ModelSpec(name="t", height=2, width=2, channels=3, color="rgb", class_names=names,
                     output_activation=activation)


def test_sigmoid_output_becomes_two_columns_and_top_k_orders_them():
    probs = class_probabilities(np.array([[0.9], [0.2]], dtype=np.float32), spec("sigmoid", ("cat", "dog")))
    assert np.allclose(probs, [[0.1, 0.9], [0.8, 0.2]])
    assert top_k(probs, ("cat", "dog"), 5) == [[("dog", pytest.approx(0.9)), ("cat", pytest.approx(0.1))],
                                               [("cat", pytest.approx(0.8)), ("dog", pytest.approx(0.2))]]
    with pytest.raises(ValueError, match="does not match 3 class names"):
        class_probabilities(np.zeros((2, 4), np.float32), spec())


def plain_onnx(path, metadata=None, classes=3):
    """(N, 2, 2, 3) -> mean over the pixels -> (N, 3), or the first `classes` of those 3 values."""
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2], keepdims=0),
             helper.make_node("Slice", ["mean", "starts", "ends", "axes"], ["out"])]
    constants = [helper.make_tensor(name, TensorProto.INT64, [1], [value])
                 for name, value in (("starts", 0), ("ends", classes), ("axes", 1))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2, 2, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, classes])], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if metadata is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "edgecnn.spec", metadata
    onnx.save(model, path)
    return path


def test_models_without_or_with_bad_metadata_are_refused(tmp_path):
    with pytest.raises(UserError, match="has no edgecnn metadata"):
        Classifier(plain_onnx(tmp_path / "plain.onnx"), device="cpu")
    with pytest.raises(UserError, match="not valid JSON"):
        Classifier(plain_onnx(tmp_path / "bad.onnx", "{oops"), device="cpu")
    wrong = spec().to_json().replace('"height": 2', '"height": 5')
    with pytest.raises(UserError, match="does not match the spec"):
        Classifier(plain_onnx(tmp_path / "shape.onnx", wrong), device="cpu")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="not a loadable ONNX model"):
        Classifier(tmp_path / "junk.onnx", device="cpu")
    with pytest.raises(UserError, match="no such model file"):
        Classifier(tmp_path / "absent.onnx")


def test_device_choice_reports_the_provider_that_really_runs(tmp_path):
    import onnxruntime as ort

    path = plain_onnx(tmp_path / "m.onnx", spec().to_json())
    auto = Classifier(path, device="auto")
    assert auto.provider in auto.session.get_providers()
    assert Classifier(path, device="cpu").provider == "CPUExecutionProvider"
    probe = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider", "CPUExecutionProvider"]) \
        if "CUDAExecutionProvider" in ort.get_available_providers() else None
    cuda_runs = probe is not None and probe.get_providers()[0] == "CUDAExecutionProvider"
    if cuda_runs:
        assert Classifier(path, device="cuda").provider == "CUDAExecutionProvider"
        assert auto.provider == "CUDAExecutionProvider"
    else:
        with pytest.raises(UserError, match="--device cuda"):
            Classifier(path, device="cuda")
        assert auto.provider == "CPUExecutionProvider"
