"""INT8: the C reference's QuantizeLinear/DequantizeLinear against onnx's conformance cases and
their numpy twins, the quantiser end to end on Fashion-MNIST, the accuracy gate refusing a
broken quantisation, the step-unit check of onnxruntime's integer kernels, and the spec."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecnn.fileio import sha256_file
from edgecnn.reference import quant, quant_slow
from edgecnn.reference.model import ModelError, ReferenceModel
from edgecnn.spec import ModelSpec

SUPPORTED_CASES = (
    "test_quantizelinear",
    "test_quantizelinear_axis",
    "test_dequantizelinear",
    "test_dequantizelinear_axis",
)


def _conformance_cases():
    import warnings

    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return [c for c in cases if "quantizelinear" in c.name and "dynamic" not in c.name]


def _array(value) -> np.ndarray:
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


@pytest.mark.parametrize("case", _conformance_cases(), ids=lambda c: c.name)
def test_onnx_conformance_cases_exact_or_refused(case):
    """uint8/int8(/int32) cases must match onnx's expected outputs bit for bit; every other type
    (float8, 4- and 16-bit, blocked) must be refused by name, never computed wrongly."""
    if case.name not in SUPPORTED_CASES:
        with pytest.raises(
            (ModelError, ValueError), match="not supported|must be uint8|output type|numeric tensors only"
        ):
            model = ReferenceModel(case.model)
            for inputs, _ in case.data_sets:
                model.run(dict(zip(model.input_names, map(_array, inputs), strict=True)))
        return
    model = ReferenceModel(case.model)
    assert case.data_sets
    for inputs, outputs in case.data_sets:
        got = model.run(dict(zip(model.input_names, map(_array, inputs), strict=True)))
        for g, want in zip(got, map(_array, outputs), strict=True):
            assert g.dtype == want.dtype and g.shape == want.shape
            np.testing.assert_array_equal(g, want)


def test_every_supported_conformance_case_is_present():
    names = {c.name for c in _conformance_cases()}
    assert set(SUPPORTED_CASES) <= names


def _hard_floats(rng, shape, scale):
    """Values at exact ties (k + 0.5) * scale, saturating values, +-inf, zeros and noise."""
    k = rng.integers(-300, 300, shape)
    x = ((k + 0.5) * scale).astype(np.float32)
    noise = rng.normal(0, 200 * scale, shape).astype(np.float32)
    x = np.where(rng.random(shape) < 0.5, x, noise)
    flat = x.reshape(-1)
    flat[: min(4, flat.size)] = np.array([np.inf, -np.inf, 0.0, 1e30], np.float32)[: min(4, flat.size)]
    return x


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize(
    "shape, axis",
    [((1,), 0), ((7,), 0), ((2, 3, 5, 4), 1), ((1, 1, 1, 1), 1), ((3, 17), -1), ((4, 1, 9), 0), ((2, 5, 3, 3), 3)],
)
@pytest.mark.parametrize("per_axis", [False, True])
def test_quantize_matches_its_numpy_twin_on_ties_saturation_and_infinities(dtype, shape, axis, per_axis):
    rng = np.random.default_rng(len(shape) * 10 + axis + per_axis)
    channels = shape[axis]
    scale = (rng.uniform(0.01, 0.1, channels) if per_axis else np.array(rng.uniform(0.01, 0.1))).astype(np.float32)
    zp = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, scale.shape).astype(dtype)
    x = _hard_floats(rng, shape, float(scale.min()))
    for z in (zp, None):
        got = quant.quantize_linear(x, scale, z, axis, dtype)
        want = quant_slow.quantize_linear(x, scale, z, axis, dtype)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)
        back = quant.dequantize_linear(got, scale, z, axis)
        np.testing.assert_array_equal(back, quant_slow.dequantize_linear(got, scale, z, axis))


def test_rounding_is_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 254.5, 255.5, 300.0, -3.0, np.nan], np.float32)
    got = quant.quantize_linear(x, np.float32(1.0), np.uint8(0))
    np.testing.assert_array_equal(got, [0, 2, 2, 0, 0, 254, 255, 255, 0, 0])
    got = quant.quantize_linear(x, np.float32(1.0), np.int8(-3))
    np.testing.assert_array_equal(got, [-3, -1, -1, -3, -5, 127, 127, 127, -6, -3])


def test_dequantize_int32_bias_and_a_transposed_view_keep_their_values():
    rng = np.random.default_rng(3)
    q = rng.integers(-(1 << 20), 1 << 20, (8, 5)).astype(np.int32)
    scale = rng.uniform(1e-5, 1e-3, 5).astype(np.float32)
    np.testing.assert_array_equal(
        quant.dequantize_linear(q, scale, None, 1), quant_slow.dequantize_linear(q, scale, None, 1)
    )
    nhwc = rng.integers(0, 256, (2, 4, 5, 3)).astype(np.uint8)
    view = nhwc.transpose(0, 3, 1, 2)  # what the graph's Transpose hands a DequantizeLinear
    got = quant.dequantize_linear(view, np.float32(0.02), np.uint8(7))
    assert got.shape == view.shape
    np.testing.assert_array_equal(got, quant_slow.dequantize_linear(view, np.float32(0.02), np.uint8(7)))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: quant.quantize_linear(np.zeros(3, np.float64), np.float32(1)), "x must be a float32 array"),
        (lambda: quant.quantize_linear(np.zeros(3, np.float32), np.float32(0)), "bad parameter"),
        (lambda: quant.quantize_linear(np.zeros((2, 3), np.float32), np.ones(2, np.float32), axis=1), "axis 1"),
        (lambda: quant.quantize_linear(np.zeros(3, np.float32), np.float32(1), dtype=np.int16), "uint8 or int8"),
        (lambda: quant.dequantize_linear(np.zeros(3, np.uint16), np.float32(1)), "uint8, int8 or int32"),
        (lambda: quant.dequantize_linear(np.zeros(3, np.uint8), np.float32(1), np.int8(0)), "zero_point must be uint8"),
    ],
)
def test_wrappers_refuse_bad_inputs_in_one_line(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


# ----- spec -----


def test_older_specs_load_as_fp32_and_int8_needs_its_provenance():
    base = dict(
        name="m", height=28, width=28, channels=1, color="gray", class_names=("a", "b"), output_activation="softmax"
    )
    old = json.loads(ModelSpec(**base).to_json())
    for key in ("precision", "calibration_method", "calibration_count", "fp32_sha256"):
        old.pop(key)
    assert ModelSpec.from_json(json.dumps(old)).precision == "fp32"
    good = ModelSpec(**base, precision="int8", calibration_method="minmax", calibration_count=200, fp32_sha256="a" * 64)
    assert ModelSpec.from_json(good.to_json()) == good
    with pytest.raises(ValueError, match="needs a calibration method"):
        ModelSpec(**base, precision="int8", calibration_method="minmax", calibration_count=200)
    with pytest.raises(ValueError, match="precision must be one of"):
        ModelSpec(**base, precision="int4")
    with pytest.raises(ValueError, match="an fp32 model has no calibration"):
        ModelSpec(**base, calibration_count=5)


# ----- the quantiser, the gate and the step check, on the bundled Fashion-MNIST model -----


@pytest.fixture(scope="module")
def fmnist_int8(tmp_path_factory, fmnist_dir):
    """The bundled FP32 fmnist quantised with 64 calibration images, gated on 2,000 test images."""
    from edgecnn.models import bundled_path
    from edgecnn.training.quantize import quantize_model

    out = tmp_path_factory.mktemp("int8") / "fmnist-int8.onnx"
    report = quantize_model(
        bundled_path("fmnist"), out, calibrate=fmnist_dir, validate=fmnist_dir, count=64, validate_limit=2000
    )
    return report, out


def test_quantiser_writes_a_gated_int8_model_on_integer_kernels(fmnist_int8):
    from edgecnn.models import bundled_path
    from edgecnn.session import Classifier

    report, out = fmnist_int8
    assert report.passed and report.path == out and out.is_file(), report.reasons
    spec = Classifier(out, device="cpu").spec
    assert (spec.precision, spec.calibration_method, spec.calibration_count) == ("int8", "minmax", 64)
    assert spec.fp32_sha256 == sha256_file(bundled_path("fmnist"))
    assert report.ops.get("QLinearConv") == 2 and "Conv" not in report.ops and "FusedConv" not in report.ops
    assert report.changes["fixed reshapes"] == 1
    assert not any(n.op_type in ("Shape", "Gather", "Concat") for n in onnx.load(str(out)).graph.node)
    gate = report.gate
    assert gate.count == 2000 and gate.accuracy >= gate.baseline_accuracy - 0.005 and gate.agreement >= 0.99


def test_int8_check_finds_onnxruntime_within_one_step_of_the_c_reference(fmnist_int8, fmnist_dir):
    from edgecnn.reference.quant_check import check_quantized

    report = check_quantized(fmnist_int8[1], images=fmnist_dir)
    assert report.passed, report.format()
    assert len(report.rows) >= 4 and not report.notes, report.format()
    assert all(row.isolated_steps <= 1 for row in report.rows)


def test_int8_check_fails_when_the_reference_is_off_by_two_steps(fmnist_int8, fmnist_dir, monkeypatch):
    """Skew injection: the check must be able to fail."""
    from edgecnn.reference.quant_check import check_quantized

    honest = quant.quantize_linear

    def skewed(x, scale, zero_point=None, axis=1, dtype=None):
        q = honest(x, scale, zero_point, axis, dtype)
        return np.clip(q.astype(np.int32) + 2, 0, 255).astype(q.dtype)

    monkeypatch.setattr(quant, "quantize_linear", skewed)
    report = check_quantized(fmnist_int8[1], images=fmnist_dir)
    assert not report.passed and max(r.isolated_steps for r in report.rows) >= 2


def test_gate_refuses_a_quantisation_calibrated_on_black_images(tmp_path, fmnist_dir):
    """All-black calibration collapses every activation range: the gate must refuse and write nothing."""
    from edgecnn.cli import export
    from edgecnn.models import bundled_path

    black = tmp_path / "black"
    black.mkdir()
    for i in range(8):
        cv2.imwrite(str(black / f"{i}.png"), np.zeros((28, 28), np.uint8))
    out = tmp_path / "broken-int8.onnx"
    code = export.main(
        [
            str(bundled_path("fmnist")),
            "--int8",
            "--calibrate",
            str(black),
            "--validate",
            str(fmnist_dir),
            "-o",
            str(out),
        ]
    )
    assert code == 2 and not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_int8_cli_errors_are_one_line(tmp_path, capsys):
    from edgecnn.cli import export

    assert export.main([str(tmp_path / "none.onnx"), "--int8", "-o", str(tmp_path / "o.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not onnx")
    assert (
        export.main([str(model), "--int8", "--calibrate", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o.onnx")])
        == 2
    )
    err = capsys.readouterr().err
    assert "--calibrate" in err and err.count("\n") == 1


def test_one_element_scale_is_per_tensor_as_in_onnx_reference():
    """onnxruntime's quantiser writes biases with a (1,) scale and a () zero point, axis 1 on a 1-D
    tensor; onnx's reference (and onnxruntime) read a one-element scale as per tensor."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    q = np.array([5, -7, 100], np.int32)
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.INT32, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [
            numpy_helper.from_array(np.array([0.25], np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int32), "z"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    want = ReferenceEvaluator(model).run(None, {"x": q})[0]
    np.testing.assert_array_equal(ReferenceModel(model).run({"x": q})[0], want)


def test_reference_pad_is_constant_padding_per_onnx():
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    x = np.random.default_rng(0).random((2, 3, 5, 4), dtype=np.float32)
    node = helper.make_node("Pad", ["x", "p"], ["y"], mode="constant")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 1, 0, 2], np.int64), "p")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    got = ReferenceModel(model).run({"x": x})[0]
    assert got.shape == (2, 4, 6, 6)
    np.testing.assert_array_equal(got, ReferenceEvaluator(model).run(None, {"x": x})[0])
