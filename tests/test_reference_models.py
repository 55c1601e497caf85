"""Both registered models end to end through the C reference, the three-way checker and
`edgecnn-export --check` (untrained with random biases: fast; the trained runs when present)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import REPO, save_run

from edgecnn.datasets import known_data
from edgecnn.parity import TOLERANCE
from edgecnn.reference import SUPPORTED_OPS, ReferenceModel, check_model, format_report
from edgecnn.reference import model as reference_model

pytest.importorskip("tensorflow")


def save_with_random_biases(name: str, folder: Path) -> Path:
    """A registered model with random weights and non-zero biases (so the graph has bias inputs and Add)."""
    from edgecnn.training import registry

    model = registry.get(name).build()
    rng = np.random.default_rng(len(name))
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0.0, 0.05, layer.bias.shape).astype(np.float32))
    return save_run(name, model, folder)


@pytest.fixture(scope="module", params=["fmnist", "catsdogs"])
def exported(request, tmp_path_factory):
    """(name, run_dir, model.onnx, export report) for each registered model."""
    from edgecnn.training.export import export_model

    run = save_with_random_biases(request.param, tmp_path_factory.mktemp(request.param))
    report = export_model(run, run / "model.onnx")
    return request.param, run, run / "model.onnx", report


def test_export_runs_the_c_reference_check(exported):
    _, _, _, report = exported
    reference = report.extra["reference"]
    assert not reference.skipped and reference.passed, reference.summary()
    assert set(reference.worst) == {"keras vs onnxruntime", "keras vs C reference", "onnxruntime vs C reference"}


def test_three_way_agreement_with_layer_table(exported):
    from edgecnn.training.export import keras_predictor

    name, run, onnx_path, _ = exported
    report = check_model(onnx_path, keras_predictor(run), images=known_data(name), image_limit=6)
    assert report.passed, format_report(report)
    ops = {row.op_type for row in report.layers}
    assert {"Conv", "MaxPool", "Relu", "MatMul", "Add"} <= ops
    assert all(row.relative < TOLERANCE for row in report.layers), format_report(report)
    if known_data(name) is not None:
        assert any("real images" in label for label in report.diffs)


def test_the_c_reference_supports_every_op_of_the_registered_models_exports(exported):
    _, _, onnx_path, _ = exported
    ops = {node.op_type for node in onnx.load(str(onnx_path)).graph.node}
    assert {"Conv", "MaxPool", "MatMul"} <= ops and not ops - set(SUPPORTED_OPS), sorted(ops - set(SUPPORTED_OPS))


def test_reference_batches_independently(exported):
    _, _, onnx_path, _ = exported
    reference = ReferenceModel(onnx_path)
    shape = [d.dim_value for d in reference.inputs[0].type.tensor_type.shape.dim[1:]]
    x = np.random.default_rng(7).random((3, *shape), dtype=np.float32)
    whole = reference(x)
    np.testing.assert_array_equal(np.concatenate([reference(x[i : i + 1]) for i in range(3)]), whole)


def test_cli_check_passes_and_prints_the_table(exported, capsys):
    from edgecnn.cli import export

    _, run, onnx_path, _ = exported
    assert export.main(["--check", str(onnx_path), "--keras", str(run), "--images", str(run / "nowhere")]) == 2
    assert "--images" in capsys.readouterr().err
    assert export.main(["--check", str(onnx_path), "--keras", str(run)]) == 0
    out = capsys.readouterr().out
    assert (
        "per-layer, onnxruntime vs C reference" in out
        and "Conv" in out
        and out.rstrip().splitlines()[-1].startswith("PASS")
    )


def test_cli_check_exits_2_when_the_reference_disagrees(exported, capsys, monkeypatch):
    from edgecnn.cli import export

    name, _, onnx_path, _ = exported
    op = "Softmax" if name == "fmnist" else "Sigmoid"
    original = reference_model.COMPILERS[op]

    def skewed(node):
        run = original(node)
        return lambda x: (run(x)[0] + np.float32(1e-3),)

    monkeypatch.setitem(reference_model.COMPILERS, op, skewed)
    assert export.main(["--check", str(onnx_path)]) == 2
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("FAIL") and "onnxruntime vs C reference 1.00e-03" in out


def test_export_refuses_to_write_when_the_reference_disagrees(exported, tmp_path, monkeypatch):
    from edgecnn.errors import EdgecnnError
    from edgecnn.training.export import export_model

    name, run, _, _ = exported
    op = "Sigmoid" if name == "catsdogs" else "Softmax"
    original = reference_model.COMPILERS[op]
    monkeypatch.setitem(
        reference_model.COMPILERS, op, lambda node: lambda x: (original(node)(x)[0] + np.float32(1e-3),)
    )
    with pytest.raises(EdgecnnError, match=rf"C reference disagrees.*first drift at node \d+ \({op}"):
        export_model(run, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_check_user_errors(tmp_path, capsys):
    from edgecnn.cli import export

    assert export.main(["--check", str(tmp_path / "missing.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_text("not onnx")
    assert export.main(["--check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a readable ONNX model" in err and err.count("\n") == 1
    assert export.main(["--check", str(bad), "some_run"]) == 2
    assert "--check takes the ONNX file only" in capsys.readouterr().err
    assert export.main([]) == 2
    assert "give a SOURCE and -o OUTPUT" in capsys.readouterr().err


def test_console_script_check_smoke(exported):
    _, _, onnx_path, _ = exported
    script = shutil.which("edgecnn-export") or str(Path(sys.executable).parent / "edgecnn-export")
    result = subprocess.run([script, "--check", str(onnx_path)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout


def test_trained_fmnist_three_way_on_known_data(short_fmnist_run, fmnist_dir):
    """fmnist trained on real data (one short epoch): Keras, onnxruntime and C agree on real test images."""
    from edgecnn.training.export import keras_predictor

    run, onnx_path = short_fmnist_run
    check = check_model(onnx_path, keras_predictor(run), images=fmnist_dir)
    assert check.passed, format_report(check)
