"""The run directory's model.txt (Keras summary + multiply-accumulates) and model.png, and the
lines edgecnn-train ends with."""

from __future__ import annotations

import re
import shutil

import pytest

keras = pytest.importorskip("keras")

from edgecnn.training import summary  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def total_params(text: str) -> int:
    found = re.findall(r"Total params: ([\d,]+)", text)
    assert len(found) == 1, text[-500:]
    return int(found[0].replace(",", ""))


def test_run_directory_model_txt_matches_the_model(short_fmnist_run):
    run, _ = short_fmnist_run
    model = keras.models.load_model(run / "model.keras", safe_mode=True)
    text = (run / "model.txt").read_text()
    assert total_params(text) == model.count_params() == 333_526
    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__})" in text
    assert "(None, 14, 14, 64)" in text and "18,496" in text, "shapes and per-layer parameter counts"
    # conv 28*28*32*9 + conv 14*14*64*9*32 + dense 3136*100 + dense 100*10
    assert "Total MACs per image: 4,153,064 (4.15 M)" in text
    if shutil.which("dot"):
        assert (run / "model.png").read_bytes()[:8] == PNG_SIGNATURE


def test_macs_per_layer_by_hand():
    inputs = keras.Input((9, 9, 4))
    x = keras.layers.Conv2D(6, 3, strides=2, groups=2)(inputs)  # 4x4 out: 16 * 6 * 9 * 4/2
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)  # 16 * 12 * 9
    x = keras.layers.SeparableConv2D(5, 3, depth_multiplier=1, padding="same")(x)  # 16 * 12 * 9 + 16 * 12 * 5
    x = keras.Sequential([keras.layers.Dense(7)], name="head")(x)  # per position: 16 * 5 * 7
    x = keras.layers.MaxPooling2D(2)(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))  # 28 * 3
    rows = summary.mac_rows(model)
    assert [macs for *_, macs in rows] == [16 * 6 * 9 * 2, 16 * 12 * 9, 16 * 12 * 9 + 16 * 12 * 5, 16 * 5 * 7, 28 * 3]
    assert rows[3][0].startswith("head/") and rows[3][2] == (4, 4, 7)
    text = summary.summary_text(model)
    assert f"Total MACs per image: {sum(r[3] for r in rows):,}" in text
    assert total_params(text) == model.count_params()


def test_without_graphviz_the_diagram_is_skipped_in_one_line(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    monkeypatch.setattr(summary.shutil, "which", lambda name: None)
    note = summary.write_model_files(model, tmp_path)
    assert note == "model.png skipped: Graphviz's dot program is not installed (apt-get install graphviz)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.txt"]


def test_train_ends_with_the_test_accuracy_and_where_the_pictures_are(tmp_path, capsys, monkeypatch):
    from edgecnn.cli import train
    from edgecnn.training import fit

    def fake_train(name, data, out, **settings):
        out.mkdir(parents=True)
        for picture in train.PICTURES:
            (out / picture).write_bytes(PNG_SIGNATURE)
        split = {"loss": 0.25, "accuracy": 0.9151}
        return dict(
            train=split,
            validation=split,
            test=split,
            epochs_run=9,
            fit_seconds=90,
            best_epoch=7,
            interrupted=False,
            evaluated_split="test",
            per_class_accuracy={"Shirt": 0.7, "Bag": 0.98},
        )

    monkeypatch.setattr(fit, "train", fake_train)
    monkeypatch.setattr(train, "import_tensorflow_quietly", lambda: None)
    assert train.main(["fmnist", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "fmnist: 9 epochs in 90 s, best epoch 7: test accuracy 0.9151, loss 0.2500" in out
    assert f"pictures: {tmp_path / 'run' / 'curves.png'}, " in out and "model.png" in out
    assert f"summary:  {tmp_path / 'run' / 'model.txt'}" in out
    assert "lowest test accuracy per class: Shirt 0.700, Bag 0.980" in out
