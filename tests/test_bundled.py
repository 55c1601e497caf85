"""The models shipped inside the package: finished training runs, recipes that match the
files, the accuracy their recipes claim on the real test sets, and onnxruntime agreeing
with the C reference on real images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecnn.datasets import IDX_FILES
from edgecnn.fileio import sha256_file
from edgecnn.models import BUNDLED_FP32, BUNDLED_INT8, bundled_path, recipe
from edgecnn.reference import check_model, format_report
from edgecnn.session import Classifier
from edgecnn.sources import expand_image_paths, read_idx, read_image

# issues 2, 3 and 25; catsdogs-xception is short of issue 11's 0.90 (docs/models.md)
ACCURACY_FLOOR = {"fmnist": 0.91, "catsdogs": 0.80, "catsdogs-xception": 0.87, "catsdogs-xception-s2": 0.90}


@pytest.mark.parametrize("name", BUNDLED_FP32)
def test_recipe_describes_the_shipped_file_of_a_finished_run(name):
    shipped = recipe(name)
    assert shipped["status"] == "finished", f"{name} was bundled from an unfinished run"
    assert shipped["onnx"]["sha256"] == sha256_file(bundled_path(name)), "recipe is stale: re-run the bundle command"
    assert shipped["metrics"]["test"]["accuracy"] >= ACCURACY_FLOOR[name]


def fmnist_test_set(fmnist_dir) -> tuple[list[np.ndarray], np.ndarray]:
    images, labels = (read_idx(fmnist_dir / name) for name in IDX_FILES["test"])
    return list(images), labels


def catsdogs_test_set(catsdogs_dir) -> tuple[list[np.ndarray], np.ndarray]:
    paths = expand_image_paths([catsdogs_dir / "test"])
    labels = np.array([["cats", "dogs"].index(p.parent.name) for p in paths])
    return [read_image(p) for p in paths], labels


@pytest.mark.slow
def test_bundled_fmnist_accuracy_on_the_10000_test_images(fmnist_dir):
    images, labels = fmnist_test_set(fmnist_dir)
    classifier = Classifier(bundled_path("fmnist"), device="cpu")
    predicted = np.concatenate([classifier.classify(images[i : i + 500]).argmax(1) for i in range(0, len(images), 500)])
    accuracy = float((predicted == labels).mean())
    assert accuracy == pytest.approx(recipe("fmnist")["metrics"]["test"]["accuracy"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["catsdogs", "catsdogs-xception", "catsdogs-xception-s2"])
def test_bundled_catsdogs_accuracy_on_the_2000_test_photos(name, catsdogs_dir):
    """edgecnn's own decode and resize reproduce Keras' test accuracy on the photos."""
    images, labels = catsdogs_test_set(catsdogs_dir)
    classifier = Classifier(bundled_path(name), device="cpu")
    predicted = np.concatenate([classifier.classify(images[i : i + 32]).argmax(1) for i in range(0, len(images), 32)])
    accuracy = float((predicted == labels).mean())
    assert accuracy >= ACCURACY_FLOOR[name]
    assert accuracy == pytest.approx(recipe(name)["metrics"]["test"]["accuracy"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED_FP32)
def test_bundled_model_onnxruntime_agrees_with_the_c_reference_on_real_images(name, fmnist_dir, catsdogs_dir):
    images = fmnist_dir if name == "fmnist" else catsdogs_dir / "test"
    report = check_model(bundled_path(name), images=images)
    assert any("real images" in label for label in report.diffs), report.notes
    assert report.passed, format_report(report)


@pytest.mark.parametrize("name", BUNDLED_INT8)
def test_int8_recipe_matches_its_file_and_its_fp32_source(name):
    shipped = recipe(name)
    fp32 = name.removesuffix("-int8")
    assert shipped["onnx"]["sha256"] == sha256_file(bundled_path(name)), "recipe is stale: re-run the bundle command"
    assert shipped["source"]["sha256"] == sha256_file(bundled_path(fp32)) == shipped["spec"]["fp32_sha256"]
    gate = shipped["gate"]
    assert gate["int8_accuracy"] >= gate["fp32_accuracy"] - 0.005 and gate["top1_agreement"] >= 0.99
    assert gate["fp32_accuracy"] == pytest.approx(recipe(fp32)["metrics"]["test"]["accuracy"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED_INT8)
def test_bundled_int8_accuracy_and_agreement_on_the_full_test_set(name, fmnist_dir, catsdogs_dir):
    images, labels = fmnist_test_set(fmnist_dir) if name.startswith("fmnist") else catsdogs_test_set(catsdogs_dir)
    int8 = Classifier(bundled_path(name), device="cpu")
    fp32 = Classifier(bundled_path(name.removesuffix("-int8")), device="cpu")
    assert int8.spec.precision == "int8"
    top_int8, top_fp32 = [], []
    for i in range(0, len(images), 250):  # each from the frames, through its own preprocessing
        top_int8.append(int8.classify(images[i : i + 250]).argmax(1))
        top_fp32.append(fp32.classify(images[i : i + 250]).argmax(1))
    top_int8, top_fp32 = np.concatenate(top_int8), np.concatenate(top_fp32)
    assert (top_int8 == labels).mean() == pytest.approx(recipe(name)["gate"]["int8_accuracy"], abs=1e-3)
    assert (top_int8 == top_fp32).mean() >= 0.99


@pytest.mark.parametrize("name", BUNDLED_INT8)
def test_bundled_int8_integer_kernels_within_one_step_of_the_c_reference(name, fmnist_dir, catsdogs_dir):
    from edgecnn.reference.quant_check import check_quantized

    report = check_quantized(
        bundled_path(name), images=fmnist_dir if name.startswith("fmnist") else catsdogs_dir / "test"
    )
    assert report.passed, report.format()


def test_bundle_command_exports_a_run_and_writes_its_recipe(untrained_fmnist, tmp_path, capsys):
    from edgecnn.cli import bundle

    run, _ = untrained_fmnist
    runs, out = tmp_path / "runs", tmp_path / "out"
    runs.mkdir()
    out.mkdir()
    (runs / "fmnist").symlink_to(run)
    assert bundle.main(["fmnist", "--runs", str(runs), "--out", str(out)]) == 2
    assert "run status is None, not 'finished'" in capsys.readouterr().err and not any(out.iterdir())
    assert bundle.main(["fmnist", "--runs", str(runs), "--out", str(out), "--allow-unfinished"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["fmnist.onnx", "fmnist.recipe.json"]
    shipped = json.loads((out / "fmnist.recipe.json").read_text())
    assert shipped["onnx"]["sha256"] == sha256_file(out / "fmnist.onnx")
    assert shipped["checkpoint"]["sha256"] == sha256_file(run / "model.keras")
    assert shipped["compile"]["optimizer"]["class_name"] == "Adam"  # fmnist's, as the checkpoint saved it
    assert shipped["compile"]["loss"] == "sparse_categorical_crossentropy"
    assert shipped["spec"] == json.loads(Classifier(out / "fmnist.onnx", device="cpu").spec.to_json())
    assert shipped["export_command"] == f"edgecnn-export {runs / 'fmnist'} -o {out / 'fmnist.onnx'}"


def test_spec_only_rewrite_of_the_shipped_files_changes_nothing(tmp_path, capsys):
    """The shipped files already carry what the registry says (display names): rewriting only their
    ModelSpec again leaves every model and recipe byte for byte as shipped."""
    pytest.importorskip("tensorflow")
    from edgecnn.cli import bundle

    for name in BUNDLED_FP32 + BUNDLED_INT8:
        for suffix in (".onnx", ".recipe.json"):
            (tmp_path / f"{name}{suffix}").write_bytes(bundled_path(name).with_suffix(suffix).read_bytes())
    assert bundle.main(["--spec-only", "--out", str(tmp_path)]) == 0
    for name in BUNDLED_FP32 + BUNDLED_INT8:
        for suffix in (".onnx", ".recipe.json"):
            shipped = bundled_path(name).with_suffix(suffix).read_bytes()
            assert (tmp_path / f"{name}{suffix}").read_bytes() == shipped, f"{name}{suffix}"
    assert recipe("fmnist")["spec"]["display_names"]["ko"][0] == "티셔츠"


LIVE_FPS_FLOOR = 300  # issue 25: live 640x480 video at this rate or more, on the machine the set-ups were measured


def test_the_default_is_the_most_accurate_cats_dogs_model_that_keeps_live_video_at_300_fps():
    from edgecnn.models import BUNDLED, DEFAULT_MODEL

    def accuracy(name):
        shipped = recipe(name)
        return shipped["gate"]["int8_accuracy"] if "gate" in shipped else shipped["metrics"]["test"]["accuracy"]

    catsdogs = [name for name in BUNDLED if name.startswith("catsdogs")]
    fast = [name for name in catsdogs if max(m["fps"] for m in recipe(name)["video"]["measured"]) >= LIVE_FPS_FLOOR]
    assert fast, "no bundled cats-vs-dogs model keeps live video at 300 FPS"
    assert DEFAULT_MODEL == max(fast, key=accuracy)


@pytest.mark.parametrize("name", BUNDLED_FP32 + BUNDLED_INT8)
def test_the_video_set_ups_recorded_are_the_fastest_measured(name):
    video = recipe(name)["video"]
    measured = video["measured"]
    assert {(m["sessions"], m["batch"]) for m in measured} == {("per-cpu", 4), ("per-cpu", 1), ("one", 1), ("one", 4)}
    fastest = max(measured, key=lambda m: m["fps"])
    fastest_live = max((m for m in measured if m["batch"] == 1), key=lambda m: m["fps"])
    assert video["file"] == {"sessions": fastest["sessions"], "batch": fastest["batch"]}
    assert video["live"] == {"sessions": fastest_live["sessions"], "batch": 1}
