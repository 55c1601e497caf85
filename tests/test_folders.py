"""Training on your own class folders: layouts and splits, every bad input named before an epoch,
each architecture family end to end, transfer learning, Korean class names."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras

from edgecnn.cli import export, infer, train
from edgecnn.datasets import IDX_FILES
from edgecnn.sources import read_idx
from edgecnn.training import data, registry
from edgecnn.training.models import base_model, build_convnet, convnet_stages

# Fashion-MNIST's classes as folder names ("/" cannot be in one).
FOLDERS = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.fixture(scope="module")
def fmnist_test_arrays(fmnist_dir):
    images, labels = (read_idx(fmnist_dir / name) for name in IDX_FILES["test"])
    return images, labels


def write_classes(root, arrays, per_class, classes=range(10), start=0, names=FOLDERS, suffix=".png"):
    """`per_class` Fashion-MNIST test images of each class in `classes` as ROOT/NAME/INDEX.png."""
    images, labels = arrays
    for label in classes:
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        for index in np.flatnonzero(labels == label)[start : start + per_class]:
            assert cv2.imwrite(str(folder / f"{index:05d}{suffix}"), images[index])
    return root


def run_train(argv, capsys):
    """edgecnn-train ARGV: (exit code, stdout, stderr)."""
    code = train.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_class_folders_split_stratified_seeded_and_never_touched(fmnist_test_arrays, tmp_path):
    root = write_classes(tmp_path / "photos", fmnist_test_arrays, per_class=20)
    (root / "Bag" / "notes.txt").write_text("not an image")
    (root / "Coat" / ".DS_Store").write_bytes(b"\0\0")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    folders = data.describe_folders(root, seed=3)
    assert folders.layout == "classes" and folders.class_names == tuple(sorted(FOLDERS))
    assert folders.skipped == 2
    counts = folders.counts()
    assert all(counts["train"][c] == 16 and counts["validation"][c] == 2 and counts["test"][c] == 2 for c in FOLDERS)
    splits = [{path for path, _ in folders.files[name]} for name in data.SPLITS]
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    assert sum(map(len, splits)) == 200
    assert all(path.split("/")[0] == folders.class_names[label] for path, label in folders.files["test"])
    assert data.describe_folders(root, seed=3).files == folders.files
    assert data.describe_folders(root, seed=4).files["test"] != folders.files["test"]
    shares = data.describe_folders(root, split=data.parse_split("0.5,0.5"), seed=3).counts()
    assert set(shares) == {"train", "validation"} and shares["validation"]["Bag"] == 10
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing moved or copied


def test_split_layout_takes_val_for_validation_and_test_is_optional(fmnist_test_arrays, tmp_path):
    root = tmp_path / "photos"
    write_classes(root / "train", fmnist_test_arrays, per_class=6, classes=(0, 1, 2))
    write_classes(root / "val", fmnist_test_arrays, per_class=2, classes=(0, 1, 2), start=6)
    folders = data.describe_folders(root)
    assert folders.layout == "splits" and set(folders.files) == {"train", "validation"}
    assert folders.counts()["validation"] == {"Pullover": 2, "T-shirt_top": 2, "Trouser": 2}
    assert "train/, val/: 3 classes, 18 train, 6 validation" in folders.summary()


def test_parse_split_refuses_shares_that_do_not_add_up():
    assert data.parse_split("0.7,0.2,0.1") == (0.7, 0.2, 0.1)
    for text in ("0.8,0.1", "0.5,0.6", "1,0,0", "a,b,c", "0.2,0.2,0.2,0.4"):
        with pytest.raises(ValueError, match="shares summing to 1"):
            data.parse_split(text)


def two_classes(root, per_class=10, size=(30, 40)):
    """ROOT/a and ROOT/b with small random JPEGs."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / name / f"{i}.jpg"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return root


def bad_data(kind, root):
    """A data folder with one thing wrong; returns the extra command-line arguments."""
    if kind == "missing":
        return ["--data", root / "nope"]
    if kind == "file":
        root.mkdir()
        (root / "photos.zip").write_bytes(b"PK")
        return ["--data", root / "photos.zip"]
    two_classes(root)
    if kind == "one class":
        shutil.rmtree(root / "b")
    elif kind == "empty class":
        (root / "c").mkdir()
        (root / "c" / "readme.txt").write_text("to do")
    elif kind == "foreign validation class":
        two_classes(root / "split")
        (root / "split" / "train").mkdir()
        for name in ("a", "b"):
            shutil.move(root / "split" / name, root / "split" / "train" / name)
        two_classes(root / "split" / "validation")
        (root / "split" / "validation" / "c").mkdir()
        shutil.copy(root / "a" / "0.jpg", root / "split" / "validation" / "c")
        return ["--data", root / "split"]
    elif kind == "split leaves no validation":
        for i in range(1, 10):
            (root / "b" / f"{i}.jpg").unlink()
        return ["--data", root, "--split", "0.8,0.1,0.1"]
    elif kind == "size below minimum":
        return ["--data", root, "--imgsz", "8"]
    elif kind == "gray for an rgb base":
        return ["--data", root, "--color", "gray", "--model", "mobilenetv2"]
    elif kind == "symlink loop":
        os.symlink(root / "a", root / "a" / "again")
    elif kind == "weights of another base":
        keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(
            root / "v3.weights.h5"
        )
        return ["--data", root, "--weights", root / "v3.weights.h5", "--imgsz", "32", "--model", "mobilenetv2"]
    elif kind == "no weights file":
        return ["--data", root, "--weights", root / "missing.h5", "--imgsz", "32", "--model", "mobilenetv2"]
    elif kind == "recipe option":
        return ["--data", root, "--imgsz", "64", "--model", "catsdogs"]
    return ["--data", root]


BAD_DATA = {
    "missing": "--data {root}/nope: no such directory",
    "file": "--data {root}/photos.zip: not a directory",
    "one class": "--data {root}: needs at least 2 class folders (one per class), found 1: a",
    "empty class": "--data {root}: class folder c/ holds no images",
    "foreign validation class": "--data {root}/split: validation/ has class 'c' that train/ does not have",
    "split leaves no validation": "--split: class 'b' has 1 images: a 0.8/0.1/0.1 split leaves it no validation image",
    "size below minimum": "--imgsz: 8x8 is below convnet's minimum of 12x12",
    "gray for an rgb base": "--color: mobilenetv2 takes rgb images, not gray",
    "symlink loop": "--data {root}: symbolic link loop: a/again leads back to",
    "weights of another base": "--weights {root}/v3.weights.h5: does not fit mobilenetv2's base",
    "no weights file": "--weights {root}/missing.h5: no such weights file",
    "recipe option": "--imgsz: recipe 'catsdogs' fixes it; train an architecture",
}


@pytest.mark.parametrize("kind", sorted(BAD_DATA))
def test_bad_data_is_one_line_and_exit_2_before_any_epoch(kind, tmp_path, capsys):
    root = tmp_path / "photos"
    extra = bad_data(kind, root)
    model = "convnet"
    if "--model" in extra:
        model = extra.pop(extra.index("--model") + 1)
        extra.remove("--model")
    out = tmp_path / "run"
    code, stdout, err = run_train([model, *extra, "--epochs", "1", "--out", out], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert BAD_DATA[kind].format(root=root) in lines[0]
    assert "Epoch" not in stdout and not (out / "model.keras").exists()


def test_registry_lists_every_architecture_with_its_limits(capsys):
    assert train.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in registry.architecture_names():
        arch = registry.get_architecture(name)
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert f"(min {arch.min_size})" in line
        assert ("imagenet weights" in line) == arch.pretrained
    for name in registry.names():
        assert any(line.split()[:1] == [name] for line in out.splitlines())


def test_convnet_is_the_tutorial_model_at_180_and_fits_its_depth_to_the_input():
    assert (convnet_stages(180), convnet_stages(28), convnet_stages(12)) == (4, 2, 1)
    model = build_convnet(2, (180, 180, 3), None, "tutorial")
    kinds = [(type(layer).__name__, getattr(layer, "filters", None)) for layer in model.layers]
    assert kinds == [
        ("RandomFlip", None),
        ("RandomRotation", None),
        ("RandomZoom", None),
        ("Rescaling", None),
        *[pair for filters in (32, 64, 128, 256) for pair in (("Conv2D", filters), ("MaxPooling2D", None))],
        ("Conv2D", 256),
        ("Flatten", None),
        ("Dropout", None),
        ("Dense", None),
    ]
    assert model.outputs[0].shape[-1] == 1 and model.layers[-1].activation.__name__ == "sigmoid"
    assert tuple(build_convnet(10, (28, 28, 1)).outputs[0].shape) == (None, 10)


@pytest.mark.parametrize("name", ["convnet", "fmnist-cnn", "xception", "mobilenetv2"])
def test_every_architecture_builds_at_its_minimum_and_refuses_below(name):
    arch = registry.get_architecture(name)
    recipe = registry.adhoc_recipe(name, (arch.min_size, arch.min_size + 3), arch.colors[0])
    assert recipe.build(5).outputs[0].shape[-1] == 5
    with pytest.raises(ValueError, match=f"minimum of {arch.min_size}x{arch.min_size}"):
        registry.adhoc_recipe(name, (arch.min_size - 1, 64), arch.colors[0])


def read_json(path):
    return json.loads(path.read_text())


LAYOUT_LINES = {
    "classes": "class folders, split 80/10/10 here (seed 42): 10 classes, 320 train, 40 validation, 40 test",
    "splits": "train/, validation/, test/: 10 classes, 320 train, 40 validation, 40 test",
}


@pytest.mark.slow
@pytest.mark.parametrize("layout", sorted(LAYOUT_LINES))
def test_ten_classes_train_export_check_int8_infer(layout, fmnist_test_arrays, tmp_path, capsys):
    root = tmp_path / "photos"
    if layout == "classes":
        write_classes(root, fmnist_test_arrays, per_class=40)
    else:
        for split, start, count in (("train", 0, 32), ("validation", 32, 4), ("test", 36, 4)):
            write_classes(root / split, fmnist_test_arrays, per_class=count, start=start)
    run = tmp_path / "run"
    code, out, err = run_train(["convnet", "--data", root, "--imgsz", "28", "--epochs", "3", "--out", run], capsys)
    assert code == 0, err
    assert LAYOUT_LINES[layout] in out
    run_info, metrics = read_json(run / "run.json"), read_json(run / "metrics.json")
    assert run_info["model"]["color"] == "gray"  # every image is: decided from the images
    assert run_info["data"]["class_counts"]["test"] == dict.fromkeys(sorted(FOLDERS), 4)
    assert read_json(run / "class_names.json") == sorted(FOLDERS)
    assert set(metrics["per_class_accuracy"]) == set(FOLDERS)
    assert np.array(metrics["confusion"]["counts"]).sum() == 40 and metrics["evaluated_split"] == "test"
    split = read_json(run / "split.json")
    test_files = [root / path for path, _ in split["files"]["test"]]
    assert (run / "split" / "test.txt").read_text().splitlines() == [str(p.resolve()) for p in test_files]
    assert len(test_files) == 40 and all(path.is_file() for path in test_files)
    assert metrics["test"]["accuracy"] > 0.3  # 3 epochs on 320 images: well above chance (0.1)

    onnx_path = run / "model.onnx"
    assert export.main([str(run), "-o", str(onnx_path)]) == 0
    assert export.main(["--check", str(onnx_path), "--keras", str(run), "--images", str(root)]) == 0
    capsys.readouterr()
    quantised(onnx_path, root, capsys)
    assert infer.main([str(onnx_path), f"@{run / 'split' / 'test.txt'}", "--json", "--top-k", "1"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"')]
    predicted = [r["predictions"][0]["label"] for r in records if "predictions" in r]
    assert len(predicted) == 40
    truth = [path.parent.name for path in test_files]
    agreement = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    assert abs(agreement - metrics["test"]["accuracy"]) <= 1 / 40 + 1e-9  # a near tie may flip one


@pytest.mark.slow
def test_three_classes_in_the_split_layout_with_mixed_formats_sizes_and_colours(fmnist_test_arrays, tmp_path, capsys):
    root = tmp_path / "photos"
    for split, start, count in (("train", 0, 12), ("validation", 12, 4), ("test", 16, 4)):
        write_classes(root / split, fmnist_test_arrays, per_class=count, classes=(1, 5, 7), start=start)
    extras = root / "train" / "Sandal"
    rng = np.random.default_rng(1)
    for i, suffix in enumerate((".bmp", ".webp", ".tiff", ".jpg")):  # colour, other sizes, other formats
        assert cv2.imwrite(str(extras / f"extra{i}{suffix}"), rng.integers(0, 256, (20 + 9 * i, 50, 3), np.uint8))
    run = tmp_path / "run"
    code, out, err = run_train(["convnet", "--data", root, "--imgsz", "32", "--epochs", "1", "--out", run], capsys)
    assert code == 0, err
    run_info = read_json(run / "run.json")
    assert run_info["model"]["color"] == "rgb" and run_info["model"]["augmentation"] == "tutorial"
    assert run_info["data"]["layout"] == "splits" and run_info["data"]["counts"] == {
        "train": 40,
        "validation": 12,
        "test": 12,
    }
    assert read_json(run / "class_names.json") == ["Sandal", "Sneaker", "Trouser"]
    model = keras.models.load_model(run / "model.keras")
    assert tuple(model.outputs[0].shape) == (None, 3) and model.layers[-1].activation.__name__ == "softmax"


def photos(catsdogs_dir, split, per_class):
    return [p for cls in ("cats", "dogs") for p in sorted((catsdogs_dir / split / cls).glob("*.jpg"))[:per_class]]


@pytest.mark.slow
def test_korean_class_folders_are_the_labels_edgecnn_infer_prints(catsdogs_dir, tmp_path, capsys):
    root = tmp_path / "사진"
    korean = {"cats": "고양이", "dogs": "개"}
    for path in photos(catsdogs_dir, "train", 16):
        (root / korean[path.parent.name]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / korean[path.parent.name] / path.name)
    run = tmp_path / "run"
    code, out, err = run_train(["convnet", "--data", root, "--imgsz", "64", "--epochs", "1", "--out", run], capsys)
    assert code == 0, err
    assert read_json(run / "class_names.json") == ["개", "고양이"]
    assert export.main([str(run), "-o", str(run / "model.onnx")]) == 0
    capsys.readouterr()
    test_files = [root / path for path, _ in read_json(run / "split.json")["files"]["test"]]
    assert infer.main([str(run / "model.onnx"), *map(str, test_files), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    labels = {p["label"] for r in records if "predictions" in r for p in r["predictions"]}
    assert labels == {"개", "고양이"}


def quantised(fp32, images, capsys):
    """edgecnn-export FP32 --int8 on `images`: [the INT8 file] when the gate passed it, [] when the
    gate refused (a model trained one epoch on 30 images may be too unsure: agreement < 0.99);
    any other outcome fails."""
    int8 = fp32.with_name("model-int8.onnx")
    argv = [str(fp32), "--int8", "-o", str(int8), "--calibrate", str(images), "--validate", str(images)]
    code = export.main([*argv, "--calibration-count", "16"])
    err = capsys.readouterr().err
    if code == 0:
        assert int8.is_file()
        return [int8]
    assert code == 2 and "INT8 accuracy gate failed" in err and len(err.strip().splitlines()) == 1, err
    assert not int8.exists()
    return []


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["xception", "fmnist-cnn", "mobilenetv2", "mobilenetv3small", "efficientnetb0", "resnet50"]
)
def test_each_architecture_family_trains_exports_checks_quantises_and_classifies(
    name, fmnist_test_arrays, tmp_path, capsys
):
    root = write_classes(tmp_path / "photos", fmnist_test_arrays, per_class=10, classes=(1, 8, 9))
    run = tmp_path / "run"
    arch = registry.get_architecture(name)
    color = arch.colors[0]
    argv = [name, "--data", root, "--imgsz", "32", "--color", color, "--epochs", "1", "--out", run]
    code, out, err = run_train(argv, capsys)
    assert code == 0, err
    assert read_json(run / "run.json")["model"]["preprocess"] == arch.preprocess
    fp32 = run / "model.onnx"
    assert export.main([str(run), "-o", str(fp32)]) == 0
    assert export.main(["--check", str(fp32), "--keras", str(run), "--images", str(root)]) == 0
    files = sorted(str(p) for p in root.rglob("*.png"))
    for model in (fp32, *quantised(fp32, root, capsys)):
        assert infer.main([str(model), *files, "--json", "--top-k", "1"]) == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert sum("predictions" in r for r in records) == 30


def base_weights(model):
    return [np.array(w) for w in base_model(model).weights]


@pytest.mark.slow
def test_transfer_learning_trains_the_head_on_a_frozen_base_then_fine_tunes_its_top(
    fmnist_test_arrays, tmp_path, capsys
):
    root = write_classes(tmp_path / "photos", fmnist_test_arrays, per_class=12, classes=(0, 1, 2))
    keras.utils.set_random_seed(5)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    weights_file = tmp_path / "mobilenetv2-base.weights.h5"
    base.save_weights(weights_file)
    start = [np.array(w) for w in base.weights]
    runs = {}
    for epochs in (1, 3):
        run = tmp_path / f"run{epochs}"
        argv = ["mobilenetv2", "--data", root, "--imgsz", "32", "--weights", weights_file, "--epochs", epochs]
        code, out, err = run_train([*argv, "--out", run], capsys)
        assert code == 0, err
        runs[epochs] = run
    phase_one = keras.models.load_model(runs[1] / "model.keras")
    assert all(np.array_equal(a, b) for a, b in zip(base_weights(phase_one), start, strict=True))
    settings = read_json(runs[3] / "run.json")["settings"]
    assert [(p["name"], p["epochs"]) for p in settings["phases"]] == [("head", [1, 2]), ("fine-tune", [3, 3])]
    assert settings["phases"][1]["learning_rate"] == pytest.approx(1e-5)
    assert read_json(runs[3] / "history.json")["phase"] == [1, 1, 2]
    tuned = keras.models.load_model(runs[3] / "model.keras")
    original = {layer.name: [np.array(w) for w in layer.weights] for layer in base.layers if layer.weights}
    changed = {
        layer.name
        for layer in base_model(tuned).layers
        if layer.weights
        and any(not np.array_equal(np.array(w), o) for w, o in zip(layer.weights, original[layer.name], strict=True))
    }
    norms = {layer.name for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)}
    first_layers = {layer.name for layer in base.layers[: len(base.layers) // 2]}
    if read_json(runs[3] / "metrics.json")["best_epoch"] == 3:  # the fine-tuned epoch is the one kept
        assert changed and not changed & norms and not changed & first_layers
    else:
        assert not changed


def test_offline_imagenet_weights_name_the_file_and_the_way_out(tmp_path, capsys, monkeypatch):
    from keras.src.utils import file_utils

    def offline(fname, origin, **kwargs):  # what keras.utils.get_file raises without a network
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    root = two_classes(tmp_path / "photos")
    argv = ["mobilenetv2", "--data", root, "--weights", "imagenet", "--imgsz", "96", "--out", tmp_path / "run"]
    code, out, err = run_train(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in err
    assert "give its path as the weights, with --weights FILE" in err


@pytest.mark.slow
def test_balanced_class_weights_and_a_note_on_imbalance(tmp_path, capsys):
    root = two_classes(tmp_path / "photos", per_class=3)
    rng = np.random.default_rng(2)
    for i in range(3, 40):
        cv2.imwrite(str(root / "a" / f"{i}.jpg"), rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    argv = ["convnet", "--data", root, "--imgsz", "16", "--epochs", "1", "--split", "0.6,0.4"]
    code, out, err = run_train([*argv, "--class-weight", "balanced", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert (
        "note: class 'b' has 2 training images, under a tenth of class 'a' (24); consider balanced class weights" in out
    )
    weights = read_json(tmp_path / "run" / "run.json")["settings"]["class_weight"]
    assert weights == pytest.approx({"a": 26 / 48, "b": 26 / 4})


def test_the_python_entry_point_is_what_the_command_runs(tmp_path):
    from edgecnn.training import train as train_function

    root = two_classes(tmp_path / "photos")
    metrics = train_function("convnet", root, tmp_path / "run", image_size=(16, 16), epochs=1, seed=1)
    assert metrics["evaluated_split"] == "test" and set(metrics["per_class_accuracy"]) == {"a", "b"}
    run_info = read_json(tmp_path / "run" / "run.json")
    assert run_info["status"] == "finished" and run_info["model"]["name"] == "photos-convnet"
    assert read_json(tmp_path / "run" / "split.json")["layout"] == "classes"


def test_int8_calibration_and_validation_read_the_splits_of_a_data_set_root(fmnist_test_arrays, tmp_path):
    """--calibrate/--validate DIR with DIR/train, DIR/validation[, DIR/test]: train/ calibrates, test/
    (else validation/) validates, even when the model has as many classes as DIR has splits."""
    from edgecnn.evaluate import load_images
    from edgecnn.spec import ModelSpec

    root = tmp_path / "photos"
    for split, start, count in (("train", 0, 5), ("validation", 5, 2), ("test", 7, 1)):
        write_classes(root / split, fmnist_test_arrays, per_class=count, classes=(0, 1, 2), start=start)
    names = ("Pullover", "T-shirt_top", "Trouser")
    spec = ModelSpec(
        name="m", height=28, width=28, channels=1, color="gray", class_names=names, output_activation="softmax"
    )
    assert len(load_images(root, spec, split="train")) == 15
    tested = load_images(root, spec, split="test", need_labels=True)
    assert len(tested) == 3 and sorted(tested.labels) == [0, 1, 2]
    shutil.rmtree(root / "test")
    assert len(load_images(root, spec, split="test", need_labels=True)) == 6
