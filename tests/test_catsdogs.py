"""Cats vs dogs on real photos: the folder pipeline end to end, and Keras-vs-edgecnn parity."""

import json
import shutil

import numpy as np
import onnx
import pytest

pytest.importorskip("tensorflow")

import keras
import tensorflow as tf

from edgecnn.parity import TOLERANCE
from edgecnn.session import Classifier
from edgecnn.sources import read_image


def photos(catsdogs_dir, split, per_class):
    return [p for cls in ("cats", "dogs") for p in sorted((catsdogs_dir / split / cls).glob("*.jpg"))[:per_class]]


def tf_decode(path):
    """What image_dataset_from_directory decodes: tf.image.decode_image(channels=3), uint8 RGB."""
    return tf.image.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False).numpy()


@pytest.fixture(scope="module")
def tiny_layout(catsdogs_dir, tmp_path_factory):
    """A few real photos per class in the train/validation/test layout."""
    root = tmp_path_factory.mktemp("catsdogs_tiny")
    for split, n in (("train", 24), ("validation", 8), ("test", 8)):
        for path in photos(catsdogs_dir, split, n):
            target = root / split / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return root


@pytest.mark.slow
def test_train_export_infer_from_photo_folders(tiny_layout, tmp_path, capsys):
    from edgecnn.cli import export, infer, train

    run = tmp_path / "run"
    assert train.main(["catsdogs", "--data", str(tiny_layout), "--epochs", "1", "--out", str(run)]) == 0
    for name in ("model.keras", "metrics.json", "curves.png", "confusion.png", "predictions.png", "samples"):
        assert (run / name).exists(), name
    assert json.loads((run / "class_names.json").read_text()) == ["cat", "dog"]
    assert json.loads((run / "run.json").read_text())["data"]["counts"] == {"train": 48, "validation": 16, "test": 16}
    assert export.main([str(run), "-o", str(run / "m.onnx")]) == 0
    assert not [n.op_type for n in onnx.load(run / "m.onnx").graph.node if "Random" in n.op_type]
    capsys.readouterr()
    assert infer.main([str(run / "m.onnx"), str(tiny_layout / "test"), "--json", "--top-k", "1"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 16 and {r["predictions"][0]["label"] for r in records} <= {"cat", "dog"}


def test_training_batches_are_drawn_afresh_each_epoch_in_an_order_the_seed_fixes(tiny_layout):
    from edgecnn.training.data import describe_folders, load_folders

    def epochs(seed, first=0, last=2):
        """The training images of epochs `first` to `last` - 1, each as its batches of image fingerprints."""
        splits = load_folders(describe_folders(tiny_layout), (180, 180), "rgb", "bilinear", 8, seed)
        batches = [
            tuple(sorted(float(image.sum()) for image in images.numpy()))
            for images, _ in splits.train_epochs(first, last)
        ]
        steps = splits.steps_per_epoch
        return [batches[start : start + steps] for start in range(0, len(batches), steps)]

    first, second = epochs(seed=1)
    assert sorted(s for batch in first for s in batch) == sorted(s for batch in second for s in batch)
    assert len(first) == 6 and set(first) != set(second)  # the same 48 photos, grouped anew
    assert epochs(seed=1) == [first, second]
    assert epochs(seed=1, first=1) == [second]  # a run resumed at epoch 2 reads what it would have
    assert epochs(seed=2)[0] != first


def test_kernel_resize_matches_tensorflow_on_real_photos(catsdogs_dir):
    from edgecnn.preprocess import to_batch

    for path in photos(catsdogs_dir, "test", 6):
        rgb = tf_decode(path)
        expected = tf.image.resize(rgb, (180, 180), method="bilinear", antialias=False).numpy() * np.float32(1 / 255)
        got = to_batch([rgb], (180, 180), color="rgb", src_order="rgb")[0]
        assert np.abs(got - expected).max() <= 1e-5, path.name


def test_identically_decoded_photos_give_keras_probabilities(untrained_catsdogs, catsdogs_dir):
    """Full Keras model on tf-decoded, tf-resized pixels vs edgecnn on the same decoded pixels."""
    run, onnx_path = untrained_catsdogs
    model = keras.models.load_model(run / "model.keras")
    classifier = Classifier(onnx_path, device="cpu")
    decoded = [tf_decode(p) for p in photos(catsdogs_dir, "test", 8)]
    resized = np.stack([tf.image.resize(d, (180, 180), method="bilinear", antialias=False).numpy() for d in decoded])
    keras_p = model(resized, training=False).numpy()[:, 0]
    edge_p = classifier.classify([np.ascontiguousarray(d[:, :, ::-1]) for d in decoded])[:, 1]
    assert np.abs(keras_p - edge_p).max() <= TOLERANCE


def test_photos_decode_exactly_as_tensorflow_does(catsdogs_dir):
    """read_image gives image_dataset_from_directory's pixels bit for bit (TF's default
    INTEGER_FAST IDCT); OpenCV alone would give INTEGER_ACCURATE's, a level or so off."""
    import cv2

    paths = sorted(catsdogs_dir.rglob("*.jpg"))
    for path in paths[:: max(1, len(paths) // 60)]:
        expected = tf_decode(path)
        assert np.array_equal(read_image(path)[:, :, ::-1], expected), path.name
        opencv = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)[:, :, ::-1]
        accurate = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3, dct_method="INTEGER_ACCURATE")
        assert np.array_equal(opencv, accurate.numpy()), path.name


def test_the_folder_pipeline_gives_image_dataset_from_directory_pixels_and_labels(tiny_layout):
    """The recipes trained on image_dataset_from_directory before edgecnn's own folder pipeline
    (which reads every format edgecnn-infer reads): same order, labels and pixels."""
    from edgecnn.training.data import describe_folders, load_folders

    ours = load_folders(describe_folders(tiny_layout), (180, 180), "rgb", "bilinear", 4, 0).validation
    theirs = keras.utils.image_dataset_from_directory(
        tiny_layout / "validation", image_size=(180, 180), batch_size=4, label_mode="binary", shuffle=False
    )
    for (pixels, labels), (expected, expected_labels) in zip(ours, theirs, strict=True):
        assert np.abs(pixels.numpy() - expected.numpy()).max() <= 255 * 1e-5
        np.testing.assert_array_equal(labels.numpy(), expected_labels.numpy())
