"""The three commands end to end: main([...]) calls, one subprocess smoke test each, error exits."""

import json
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from conftest import REPO

from edgecnn.cli import infer
from edgecnn.parity import TOLERANCE
from edgecnn.sources import read_idx


def fmnist_test_pngs(fmnist_dir, folder, n):
    images = read_idx(fmnist_dir / "t10k-images-idx3-ubyte.gz")[:n]
    labels = read_idx(fmnist_dir / "t10k-labels-idx1-ubyte.gz")[:n]
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
    return images, labels


@pytest.mark.slow
def test_train_writes_a_complete_run_directory(short_fmnist_run):
    run, _ = short_fmnist_run
    for name in (
        "model.keras",
        "history.json",
        "metrics.json",
        "curves.png",
        "confusion.png",
        "predictions.png",
        "class_names.json",
        "run.json",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"train", "validation", "test"}
    assert metrics["test"]["accuracy"] > 0.7  # one short epoch already learns a lot
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["command"][:2] == ["edgecnn-train", "fmnist"]
    assert info["data"]["counts"] == {"train": 6000, "validation": 12000, "test": 10000}
    assert info["settings"]["compile"]["loss"] == "sparse_categorical_crossentropy"
    assert info["settings"]["compile"]["jit_compile"] is False
    assert info["data"]["sha256"]["t10k-labels-idx1-ubyte.gz"].startswith("67da17c7")
    assert json.loads((run / "class_names.json").read_text())[9] == "Ankle boot"
    assert len(json.loads((run / "history.json").read_text())["val_loss"]) == 1


@pytest.mark.slow
def test_trained_model_onnx_matches_keras_on_all_10000_test_images(short_fmnist_run, fmnist_dir):
    import keras

    from edgecnn.session import Classifier

    run, onnx_path = short_fmnist_run
    images = read_idx(fmnist_dir / "t10k-images-idx3-ubyte.gz")
    model = keras.models.load_model(run / "model.keras")
    expected = model.predict(images[..., None].astype(np.float32) / 255.0, batch_size=500, verbose=0)
    classifier = Classifier(onnx_path, device="cpu")
    got = np.concatenate([classifier.classify(list(images[i : i + 500])) for i in range(0, len(images), 500)])
    assert np.abs(got - expected).max() <= TOLERANCE
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.999


@pytest.mark.slow
def test_infer_classifies_png_files_like_keras(short_fmnist_run, fmnist_dir, tmp_path, capsys):
    import keras

    run, onnx_path = short_fmnist_run
    images, labels = fmnist_test_pngs(fmnist_dir, tmp_path / "pngs", 40)
    assert infer.main([str(onnx_path), str(tmp_path / "pngs"), "--json", "--top-k", "2", "--batch-size", "7"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 40 and all(len(r["predictions"]) == 2 for r in records)
    model = keras.models.load_model(run / "model.keras")
    expected = model.predict(images[..., None] / np.float32(255), verbose=0)
    names = json.loads((run / "class_names.json").read_text())
    assert [r["predictions"][0]["label"] for r in records] == [names[i] for i in expected.argmax(1)]
    assert [r["predictions"][0]["probability"] for r in records] == pytest.approx(
        expected.max(1).tolist(), abs=TOLERANCE
    )


@pytest.mark.slow
def test_infer_table_and_a_bad_image_in_a_directory(short_fmnist_run, fmnist_dir, tmp_path, capsys):
    _, onnx_path = short_fmnist_run
    fmnist_test_pngs(fmnist_dir, tmp_path / "pngs", 3)
    (tmp_path / "pngs" / "00001.png").write_bytes(b"corrupt")
    assert infer.main([str(onnx_path), str(tmp_path / "pngs")]) == 2
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert rows[0].startswith("image") and len(rows) == 3
    assert "00001.png: not a readable image" in captured.err
    assert "classified 2 image(s), 1 failed" in captured.err and "CPUExecutionProvider" in captured.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{model}", "{tmp}/absent.png"], "no such file or directory"),
        (["{tmp}/absent.onnx", "{tmp}"], "no such model file"),
        (["{tmp}/plain.txt", "{tmp}"], "not a loadable ONNX model"),
        (["{model}", "{tmp}", "--batch-size", "0"], "must be positive"),
    ],
)
def test_infer_user_errors_are_one_line_exit_2(argv, message, untrained_fmnist, tmp_path, capsys):
    _, model = untrained_fmnist
    (tmp_path / "plain.txt").write_text("x")
    cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((28, 28), np.uint8))
    argv = [a.format(model=model, tmp=tmp_path) for a in argv]
    assert infer.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edgecnn-infer: error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_train_user_errors(tmp_path, capsys, monkeypatch):
    from edgecnn.cli import train

    assert train.main(["resnet9000", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    known = "known recipes: catsdogs, catsdogs-xception, catsdogs-xception-s2, fmnist; known architectures"
    assert f"unknown model 'resnet9000'; {known}" in err
    assert "convnet, efficientnetb0, fmnist-cnn, mobilenetv2, mobilenetv3small, resnet50, xception" in err
    assert train.main(["fmnist", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert train.main(["fmnist", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "missing train-images-idx3-ubyte.gz" in capsys.readouterr().err
    assert train.main(["catsdogs", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "needs at least 2 class folders (one per class), found 0" in capsys.readouterr().err

    import keras

    def offline():
        raise OSError("URL fetch failure: Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    assert train.main(["fmnist", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--data: could not download Fashion-MNIST" in err and len(err.strip().splitlines()) == 1


def test_train_help_names_every_recipe_and_architecture_with_the_default_epochs():
    """The help is written out by hand (--help must not import TensorFlow), so it is checked
    against the registry: the recipes and architectures in the description and the positional
    argument, and each recipe's epochs as the --epochs default."""
    from edgecnn.cli import train
    from edgecnn.training import registry

    # one line, words argparse wrapped at a hyphen joined again
    text = re.sub(r"(?<=\w)- (?=\w)", "-", " ".join(train.train_parser().format_help().split()))
    described = re.search(r"Train a recipe \(([^)]*)\) or an architecture \(([^)]*)\)", text)
    argument = re.search(r"model a recipe \(([^)]*)\) or an architecture \(([^)]*)\)", text)
    defaults = re.search(r"default: the recipe's: ([^;]*);", text)
    assert described and argument and defaults, text
    for found in (described, argument):
        assert set(found.group(1).split(", ")) == set(registry.names())
        assert set(found.group(2).split(", ")) == set(registry.architecture_names())
    listed = dict(reversed(item.split(" ")) for item in defaults.group(1).split(", "))
    assert listed == {name: str(registry.get(name).epochs) for name in registry.names()}


def test_train_refuses_a_corrupt_idx_file(fmnist_dir, tmp_path, capsys):
    from edgecnn.cli import train

    for f in fmnist_dir.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    assert train.main(["fmnist", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "t10k-labels-idx1-ubyte.gz: not a readable gzip IDX file" in capsys.readouterr().err


def test_export_user_errors(tmp_path, capsys):
    from edgecnn.cli import export

    assert export.main([str(tmp_path / "nothing"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert export.main([str(tmp_path), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "no such model" in capsys.readouterr().err
    assert export.main([str(tmp_path), "-o", str(tmp_path / "m.txt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_make_subset_copies_never_overwrites_and_reports(tmp_path, capsys):
    from edgecnn.cli import train

    src = tmp_path / "kaggle"
    src.mkdir()
    for cls in ("cat", "dog"):
        for i in range(7):
            (src / f"{cls}.{i}.jpg").write_bytes(f"{cls}{i}".encode())
    (src / "cat.3.jpg").unlink()
    dst = tmp_path / "subset"
    args = ["make-subset", str(src), str(dst), "--train", "3", "--validation", "2", "--test", "2"]
    assert train.main(args) == 0
    out = capsys.readouterr().out
    assert "copied 13 images" in out and "missing" in out and "cat.3.jpg" in out
    assert sorted(p.name for p in (dst / "validation" / "dogs").iterdir()) == ["dog.3.jpg", "dog.4.jpg"]
    assert (src / "cat.0.jpg").exists(), "copies, never moves"
    (dst / "train" / "cats" / "cat.0.jpg").write_bytes(b"mine")
    assert train.main(args) == 0
    assert "copied 0 images" in capsys.readouterr().out
    assert (dst / "train" / "cats" / "cat.0.jpg").read_bytes() == b"mine"


def run_script(*args, timeout=600):
    exe = shutil.which(args[0]) or str(REPO / ".venv" / "bin" / args[0])
    return subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=timeout)


def test_console_scripts_smoke(untrained_fmnist, tmp_path):
    run, onnx_path = untrained_fmnist
    cv2.imwrite(str(tmp_path / "x.png"), np.full((30, 20), 128, np.uint8))
    result = run_script("edgecnn-infer", str(onnx_path), str(tmp_path / "x.png"), "--top-k", "1")
    assert result.returncode == 0, result.stderr
    assert "x.png" in result.stdout and "CPUExecutionProvider" in result.stderr

    result = run_script("edgecnn-export", str(run), "-o", str(tmp_path / "again.onnx"))
    assert result.returncode == 0, result.stderr
    assert "max |keras - onnxruntime|" in result.stdout and (tmp_path / "again.onnx").is_file()
    assert "oneDNN" not in result.stderr and "absl" not in result.stderr, "TensorFlow start-up noise leaked"

    result = run_script("edgecnn-train", "nosuchmodel", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "edgecnn-train: error: unknown model 'nosuchmodel'; known recipes: catsdogs, catsdogs-xception, "
        "catsdogs-xception-s2, fmnist; known architectures: convnet, efficientnetb0, fmnist-cnn, mobilenetv2, "
        "mobilenetv3small, resnet50, xception, xception-s2"
    ]
