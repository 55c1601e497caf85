"""edgecnn-bench: the table and JSON from main([...]), one subprocess smoke test, one-line errors;
bench_peers' Keras rebuild (skipped, saying why, where the peer packages are absent)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from edgecnn.cli import bench

TINY = ["--runs", "2", "--seconds", "0", "--warmup", "1", "--limit", "40"]


def test_bench_json_has_one_row_per_configuration_with_accuracy_and_agreement(fmnist_dir, capsys):
    assert (
        bench.main(
            [
                "fmnist",
                "fmnist-int8",
                "--images",
                str(fmnist_dir),
                "--threads",
                "1,2",
                "--batch",
                "1,4",
                "--json",
                *TINY,
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["load"].startswith("load average")
    rows = report["rows"]
    assert len(rows) == 2 * 2 * 2
    assert {(r["model"], r["precision"]) for r in rows} == {("fmnist", "fp32"), ("fmnist-int8", "int8")}
    assert {(r["threads"], r["batch"]) for r in rows} == {(1, 1), (1, 4), (2, 1), (2, 4)}
    for r in rows:
        assert r["runs"] >= 2 and 0 < r["median_ms"] <= r["p95_ms"] * 1.0000001
        assert r["images_per_s"] == pytest.approx(r["batch"] * 1e3 / r["median_ms"])
        assert 0.5 < r["accuracy"] <= 1.0
        # agreement: only an INT8 model has an FP32 source to agree with (found by its SHA-256)
        assert (r["agreement"] is None) == (r["precision"] == "fp32")
    assert all(r["agreement"] >= 0.9 for r in rows if r["agreement"] is not None)


def test_bench_table_names_the_provider_and_the_load(capsys):
    assert bench.main(["fmnist-int8", *TINY]) == 0
    out = capsys.readouterr().out
    assert "load average" in out and "median ms" in out and "fmnist-int8" in out and "CPU" in out


def test_bench_console_script_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edgecnn.cli.bench", "fmnist", *TINY],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "fmnist" in result.stdout and "images/s" in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nosuch"], "not a bundled model"),
        (["fmnist", "--threads", "0"], "--threads must be"),
        (["fmnist", "--batch", "a"], "--batch must be"),
        (["fmnist", "--device", "tpu"], "--device must be"),
        (["fmnist", "--images", "/nowhere/at/all"], "no such file or directory"),
        (["fmnist", "--limit", "0"], "--limit must be"),
    ],
)
def test_bench_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_peers_rebuilds_the_keras_model_from_the_onnx_weights():
    """bench_peers feeds LiteRT a Keras model rebuilt from the FP32 file; it must compute the same."""
    pytest.importorskip("tensorflow", reason="bench_peers' LiteRT path needs the [train] extra")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_peers import keras_from_onnx

    from edgecnn.models import bundled_path
    from edgecnn.session import Classifier

    classifier = Classifier(bundled_path("fmnist"), device="cpu")
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    model = keras_from_onnx("fmnist", bundled_path("fmnist"))
    assert np.abs(model(x).numpy() - classifier.predict(x)).max() < 1e-5


def test_bench_peers_openvino_and_litert_fp32_compute_what_edgecnn_computes():
    """Same inputs, same model, same outputs: bench_peers compares like with like. The peers are
    benchmark-only (the [bench] extra) and absent in CI: skip saying so."""
    pytest.importorskip("openvino", reason="openvino is a benchmark-only peer (pip install -e '.[bench]')")
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is a benchmark-only peer (pip install -e '.[bench]')")
    pytest.importorskip("tensorflow", reason="the LiteRT conversion needs the [train] extra")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_peers import keras_from_onnx, litert_predictors, openvino_predictors

    from edgecnn.models import bundled_path
    from edgecnn.session import Classifier

    fp32 = bundled_path("fmnist")
    ours = Classifier(fp32, device="cpu")
    calibration = list(np.random.default_rng(1).random((8, 28, 28, 1), dtype=np.float32))
    peers = {
        **openvino_predictors(fp32, calibration, (28, 28, 1)),
        **litert_predictors(keras_from_onnx("fmnist", fp32), calibration),
    }
    for x in calibration[:3]:
        want = ours.predict(x[None])
        for label in ("OpenVINO FP32", "LiteRT FP32"):
            assert np.abs(peers[label](x[None]) - want).max() < 1e-4, label
