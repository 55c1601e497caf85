"""Bring your own model: Keras Applications and hand-written graphs export, pass the three-way
check (Keras / onnxruntime / C reference, per layer) and classify real photos as Keras does;
models edgecnn cannot serve are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("tensorflow")

import keras
import tensorflow as tf
from zoo import SIZE, ZOO, ZooModel

from edgecnn.cli import export as export_cli
from edgecnn.cli import infer as infer_cli
from edgecnn.parity import TOLERANCE
from edgecnn.postprocess import class_probabilities
from edgecnn.reference import SUPPORTED_OPS
from edgecnn.reference.check import check_model
from edgecnn.session import Classifier
from edgecnn.sources import read_image
from edgecnn.training.export import keras_scale_of

pytestmark = pytest.mark.slow  # each zoo model is a Keras Application exported and checked: minutes in all
PHOTOS_PER_CLASS = 6
LAYER_RTOL = 1e-4


@pytest.fixture(scope="module", params=sorted(ZOO))
def exported(request, tmp_path_factory) -> tuple[ZooModel, keras.Model, Path]:
    entry = ZOO[request.param]
    folder = tmp_path_factory.mktemp(entry.name)
    model = entry.build()
    model.save(folder / "model.keras")
    out = folder / "model.onnx"
    argv = [
        str(folder / "model.keras"),
        "-o",
        str(out),
        "--class-names",
        ",".join(entry.class_names),
        *entry.export_args,
    ]
    assert export_cli.main(argv) == 0
    return entry, model, out


def test_three_way_parity_and_per_layer_table(exported):
    entry, model, path = exported
    scale = np.float32(keras_scale_of(model))
    report = check_model(path, lambda x: np.asarray(model(x * scale, training=False)), tolerance=TOLERANCE)
    assert not report.skipped, report.skipped
    assert report.passed, report.summary()
    worst = max(report.layers, key=lambda row: row.relative)
    assert worst.relative <= LAYER_RTOL, f"node {worst.index} {worst.op_type}: rel {worst.relative:.3g}"


def test_the_c_reference_supports_every_op_the_exporter_wrote(exported):
    _, _, path = exported
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops - set(SUPPORTED_OPS), sorted(ops - set(SUPPORTED_OPS))


def keras_probabilities(entry: ZooModel, model: keras.Model, photos: list[Path], classifier: Classifier) -> np.ndarray:
    """What a Keras user computes: TensorFlow's decode and bilinear resize (image_dataset_from_directory's),
    then the application's preprocess_input, then the model."""
    images = [tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(str(p)), channels=3), (SIZE, SIZE)) for p in photos]
    x = tf.stack(images).numpy()
    if entry.keras_preprocess is not None:
        x = getattr(keras.applications, entry.keras_preprocess).preprocess_input(x)
    return class_probabilities(np.asarray(model(x, training=False)), classifier.spec)


def test_classifies_real_photos_like_keras(exported, catsdogs_dir, capsys):
    entry, model, path = exported
    photos = [
        p for kind in ("cats", "dogs") for p in sorted((catsdogs_dir / "test" / kind).glob("*.jpg"))[:PHOTOS_PER_CLASS]
    ]
    capsys.readouterr()
    assert infer_cli.main([str(path), *map(str, photos), "--json", "--top-k", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    edge = {Path(r["source"]).name: r["predictions"][0]["label"] for r in lines if "predictions" in r}
    classifier = Classifier(path, device="cpu")
    expected = keras_probabilities(entry, model, photos, classifier)
    names = classifier.spec.class_names
    assert [edge[p.name] for p in photos] == [names[i] for i in expected.argmax(axis=1)]
    edge_p = classifier.classify([read_image(p) for p in photos])
    assert np.abs(edge_p - expected).max() <= 1e-4


def refused(capsys, argv: list[str], out: Path) -> str:
    capsys.readouterr()
    assert export_cli.main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob(f"*{out.name}*"))
    return err


def test_models_edgecnn_cannot_serve_are_refused_in_one_line(tmp_path, capsys):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    two = keras.Model(inputs, [keras.layers.Dense(2, activation="softmax")(x), keras.layers.Dense(3)(x)])
    spatial = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(inputs))
    free = keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    normalised = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    cases = {
        "two": (two, [], "1 inputs and 2 outputs"),
        "spatial": (spatial, [], "output must be (batch, classes)"),
        "free": (free, [], "--input-size: the model takes any input size"),
        "twice": (normalised, ["--preprocess", "tf"], "would normalise twice"),
    }
    for name, (model, extra, message) in cases.items():
        model.save(tmp_path / f"{name}.keras")
        err = refused(
            capsys, [str(tmp_path / f"{name}.keras"), "--class-names", "a,b", *extra], tmp_path / f"{name}.onnx"
        )
        assert message in err, err


@keras.saving.register_keras_serializable(package="zoo_test")
class Subclassed(keras.Model):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.dense = keras.layers.Dense(2, activation="softmax")

    def call(self, x):
        return self.dense(keras.ops.mean(x, axis=(1, 2)))


def test_subclassed_model_is_refused_by_safe_mode(tmp_path, capsys):
    model = Subclassed()
    model(np.zeros((1, 8, 8, 3), np.float32))
    model.save(tmp_path / "sub.keras")
    keras.saving.get_custom_objects().clear()  # a fresh process, as edgecnn-export would be
    err = refused(capsys, [str(tmp_path / "sub.keras"), "--class-names", "a,b"], tmp_path / "sub.onnx")
    assert "needs custom Python code" in err, err


def test_convnext_exports_and_is_checked(tmp_path):
    """ConvNeXt: exact GELU (TensorFlow's Erfc, written as 1 - Erf), LayerNormalization and
    depthwise convolutions, checked three ways; tf2onnx alone could not convert it."""
    from zoo import calibrate

    keras.utils.set_random_seed(4)
    model = calibrate(keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3), classes=3))
    model.save(tmp_path / "convnext.keras")
    out = tmp_path / "convnext.onnx"
    assert export_cli.main([str(tmp_path / "convnext.keras"), "--class-names", "a,b,c", "-o", str(out)]) == 0
    scale = np.float32(keras_scale_of(model))
    report = check_model(out, lambda x: np.asarray(model(x * scale, training=False)))
    assert report.passed and "Erf" in {node.op_type for node in onnx.load(str(out)).graph.node}, report.summary()
