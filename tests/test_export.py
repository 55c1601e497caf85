"""Keras vs ONNX parity, the inference graph, and rescaling happening exactly once."""

from collections import Counter

import numpy as np
import onnx
import pytest

pytest.importorskip("tensorflow")

import keras
from conftest import save_untrained

from edgecnn.errors import EdgecnnError
from edgecnn.parity import TOLERANCE
from edgecnn.session import Classifier
from edgecnn.spec import read_model_spec
from edgecnn.training import export


def ops(path):
    return Counter(node.op_type for node in onnx.load(path).graph.node)


@pytest.mark.parametrize("fixture", ["untrained_fmnist", "untrained_catsdogs"])
def test_untrained_models_match_keras_at_several_batch_sizes(fixture, request):
    run, onnx_path = request.getfixturevalue(fixture)
    model = keras.models.load_model(run / "model.keras")
    classifier = Classifier(onnx_path, device="cpu")
    keras_scale = export.keras_scale_of(model)
    for batch in (1, 3, 8, 17):
        x = np.random.default_rng(batch).random((batch, *classifier.spec.input_shape), dtype=np.float32)
        expected = model(x * np.float32(keras_scale), training=False).numpy()
        got = classifier.session.run(None, {"input": x})[0]
        assert np.abs(got - expected).max() <= TOLERANCE


def test_graph_has_dynamic_batch_no_random_ops_and_no_rescaling(untrained_catsdogs):
    _, onnx_path = untrained_catsdogs
    graph = onnx.load(onnx_path).graph
    counts = ops(onnx_path)
    assert not [op for op in counts if "Random" in op]
    assert "Mul" not in counts and "Div" not in counts, "Rescaling(1/255) must be gone from the graph"
    assert counts["Conv"] == 5 and counts["MaxPool"] == 4
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert [o.name for o in graph.output] == ["probabilities"]


def test_rescaling_happens_exactly_once(untrained_catsdogs):
    """Raw pixels through the full Keras model (augmentation + Rescaling) vs edgecnn's runtime.

    The negative controls show this test would fail if the runtime rescaled never or twice.
    """
    run, onnx_path = untrained_catsdogs
    model = keras.models.load_model(run / "model.keras")
    classifier = Classifier(onnx_path, device="cpu")
    assert classifier.spec.rescaling == "runtime" and classifier.spec.pixel_scale == pytest.approx(1 / 255)
    rng = np.random.default_rng(3)
    # smooth images so that an untrained network's output depends on the input's scale
    base = np.linspace(0, 255, 180, dtype=np.float32)
    frames = [
        np.clip(base[None, :, None] * rng.random(3) + rng.normal(0, 20, (180, 180, 3)), 0, 255).astype(np.uint8)
        for _ in range(4)
    ]
    rgb = np.stack([f[:, :, ::-1] for f in frames]).astype(np.float32)
    keras_p = model(rgb, training=False).numpy()[:, 0]
    edge_p = classifier.classify(frames)[:, 1]
    assert np.abs(keras_p - edge_p).max() <= TOLERANCE
    batch = classifier.preprocess(frames)
    never = classifier.predict(batch * 255)[:, 1]
    twice = classifier.predict(batch / 255)[:, 1]
    assert np.abs(keras_p - never).max() > 1e-3
    assert np.abs(keras_p - twice).max() > 1e-3


def test_failed_parity_writes_nothing(untrained_fmnist, tmp_path):
    run, _ = untrained_fmnist
    out = tmp_path / "never.onnx"
    with pytest.raises(EdgecnnError, match="nothing written"):
        export.export_model(run, out, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_display_names_given_to_the_exporter_replace_the_recipes(untrained_fmnist, tmp_path):
    run, _ = untrained_fmnist
    names = tuple(f"Klasse {i}" for i in range(10))
    report = export.export_model(run, tmp_path / "de.onnx", display_names={"de": names})
    assert report.spec.display_names == {"de": names}
    assert read_model_spec(onnx.load(str(tmp_path / "de.onnx")), "de.onnx").labels("de-AT") == names


def test_export_refuses_models_it_cannot_describe(tmp_path):
    folder = save_untrained("fmnist", tmp_path / "run")
    (folder / "class_names.json").unlink()
    with pytest.raises(EdgecnnError, match="class_names: none given"):
        export.export_model(folder, tmp_path / "x.onnx")
    report = export.export_model(folder, tmp_path / "x.onnx", class_names=tuple("abcdefghij"))
    assert report.spec.class_names == tuple("abcdefghij")
    relu = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "relu")])
    relu.save(tmp_path / "relu.keras")
    with pytest.raises(EdgecnnError, match="needs softmax, sigmoid, or none"):
        export.export_model(tmp_path / "relu.keras", tmp_path / "y.onnx", class_names=("a", "b", "c"))
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(EdgecnnError, match="cannot load Keras model"):
        export.export_model(tmp_path / "bad.keras", tmp_path / "z.onnx", class_names=("a", "b"))
    assert not (tmp_path / "y.onnx").exists() and not (tmp_path / "z.onnx").exists()
