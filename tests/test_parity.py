"""edgecnn.parity's scale-aware rule: large logits alone are not refused, a changed weight is."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.errors import EdgecnnError
from edgecnn.parity import agreement, logit_scale


def test_the_tolerance_scales_with_the_logits_and_names_the_figure_that_failed():
    p = np.array([[0.2, 0.8]], np.float32)
    small = agreement(p + 4e-5, p, np.array([[1.0, 2.0]]) + 1e-5, np.array([[1.0, 2.0]]))
    assert small.scale == 2.0 and small.failure().startswith("probabilities differ by 4e-05 > 2e-05")
    large = agreement(p + 4e-5, p, np.array([[10.0, 50.0]]) + 1e-4, np.array([[10.0, 50.0]]))
    assert large.scale == 50.0 and large.failure() == ""  # 4e-5 and 1e-4 <= 1e-5 x 50
    drifted = agreement(p, p, np.array([[10.0, 50.0]]) + 1e-2, np.array([[10.0, 50.0]]))
    assert drifted.failure() == "logits differ by 0.01 > 0.005 (0.0001 x logit scale 50)"
    assert agreement(p, p, None, None).scale == 1.0 and logit_scale(np.array([0.1])) == 1.0
    assert agreement(p, p * np.nan, None, None).failure()  # NaN never agrees


def _large_logits_run(tmp_path, factor: float) -> None:
    """Save a small convnet whose logits reach about `factor` as tmp_path/model.keras."""
    keras = pytest.importorskip("keras")
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, activation="relu")(layers.Rescaling(1 / 255)(inputs))
    x = layers.BatchNormalization()(layers.Conv2D(16, 3, activation="relu")(x))
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    dense = model.layers[-1]
    dense.kernel.assign(np.asarray(dense.kernel) * np.float32(factor))
    model.save(tmp_path / "model.keras")


@pytest.mark.slow
def test_large_logits_export_and_one_kernel_changed_by_one_percent_is_refused(tmp_path, monkeypatch):
    from edgecnn.training import export

    _large_logits_run(tmp_path, 300.0)
    report = export.export_model(tmp_path / "model.keras", tmp_path / "model.onnx", class_names=("a", "b", "c"))
    scale = report.extra["reference"].scale
    assert scale > 30 and report.extra["reference"].passed, report.extra["reference"].summary()

    convert = export.convert

    def broken(graph_model, spec, opset):  # the exporter's graph, one conv kernel scaled by 1.01
        proto = convert(graph_model, spec, opset)
        from onnx import numpy_helper

        kernel = next(t for t in proto.graph.initializer if numpy_helper.to_array(t).ndim == 4)
        kernel.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(kernel) * np.float32(1.01), kernel.name))
        return proto

    monkeypatch.setattr(export, "convert", broken)
    with pytest.raises(EdgecnnError, match=r"^Keras vs onnxruntime: (logits|probabilities) differ by .* logit scale"):
        export.export_model(tmp_path / "model.keras", tmp_path / "broken.onnx", class_names=("a", "b", "c"))
    assert not (tmp_path / "broken.onnx").exists()
