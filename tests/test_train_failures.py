"""Training that cannot finish: bad images found before it starts, interrupts and errors recorded as such."""

import json
import shutil

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")
import bombs
import keras
import tensorflow as tf

from edgecnn.cli import train


def image_folders(root, per_class=3):
    """DIR/{train,validation,test}/{cats,dogs}/N.jpg of small random photos."""
    rng = np.random.default_rng(0)
    for split in ("train", "validation", "test"):
        for cls in ("cats", "dogs"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (40, 30))
                cv2.imwrite(str(folder / f"{i}.jpg"), image)
    return root


def test_every_undecodable_image_is_named_before_training_starts(tmp_path, capsys):
    data = image_folders(tmp_path / "data")
    whole = (data / "train" / "cats" / "0.jpg").read_bytes()
    (data / "train" / "cats" / "0.jpg").write_bytes(whole[: len(whole) // 2] + b"\xff\xd9")  # half + EOI
    (data / "test" / "dogs" / "2.jpg").write_bytes(whole[:300])  # truncated
    (data / "validation" / "dogs" / "1.jpg").write_bytes(bombs.jpeg(20000, 20000))
    (data / "train" / "dogs" / "1.jpg").write_bytes(whole + b"trailing bytes after EOI")  # fine, as in TensorFlow
    out = tmp_path / "run"
    code = train.main(["catsdogs", "--data", str(data), "--out", str(out), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert "3 of 18 images cannot be decoded" in line
    for name in ("train/cats/0.jpg", "test/dogs/2.jpg", "validation/dogs/1.jpg"):
        assert name in line
    assert "train/dogs/1.jpg" not in line
    assert not out.exists()


@pytest.fixture
def previous_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_bytes(b"the previous run's model")
    (out / "metrics.json").write_text('{"previous": true}')
    (out / "run.json").write_text('{"status": "finished"}')
    (out / "notes.txt").write_text("not ours: stays")
    return out


def retrain_over(previous_run, fmnist_dir) -> int:
    """edgecnn-train fmnist --overwrite into `previous_run`: one short epoch."""
    argv = ["fmnist", "--data", str(fmnist_dir), "--out", str(previous_run), "--overwrite", "--epochs", "1"]
    return train.main([*argv, "--limit", "256"])


def test_overwrite_interrupted_before_the_first_epoch_never_reports_the_previous_run(
    previous_run, fmnist_dir, monkeypatch, capsys
):
    def interrupted_fit(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "fit", interrupted_fit)
    code = retrain_over(previous_run, fmnist_dir)
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err and err.strip().endswith("interrupted")
    run = json.loads((previous_run / "run.json").read_text())
    assert run["status"] == "interrupted" and "before the first epoch" in run["error"]
    described = ["model.png", "model.txt"] if shutil.which("dot") else ["model.txt"]  # written before fit
    assert sorted(p.name for p in previous_run.iterdir()) == sorted(
        ["class_names.json", "notes.txt", "run.json", *described]
    )


def test_a_failure_during_training_is_one_line_and_recorded_in_run_json(previous_run, fmnist_dir, monkeypatch, capsys):
    def failing_fit(self, *args, **kwargs):
        raise tf.errors.InvalidArgumentError(None, None, "jpeg::Uncompress failed. Invalid JPEG data or crop window.")

    monkeypatch.setattr(keras.Model, "fit", failing_fit)
    code = retrain_over(previous_run, fmnist_dir)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "Invalid JPEG data" in err.strip().splitlines()[-1]
    run = json.loads((previous_run / "run.json").read_text())
    assert run["status"] == "failed" and "Invalid JPEG data" in run["error"]
    assert not (previous_run / "model.keras").exists()
