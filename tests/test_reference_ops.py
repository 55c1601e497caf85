"""The C reference's kernels for modern convnets (grouped/depthwise conv, reduce mean and global
pooling, clip, pad, broadcasting add/sub/mul/div) against their numpy twins, impulses and
onnx's own conformance cases; and the op-level refusals. (The Keras Applications zoo through
the C reference: tests/test_zoo.py.)
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from test_reference import impulse_weights, one_hot, onnx_pads, single_node_model

from edgecnn.reference import ModelError, ReferenceModel, kernels, slow
from edgecnn.reference.check import CheckReport, check_export
from edgecnn.reference.model import ATTRIBUTES, COMPILERS

# ---------------------------------------------------------------- grouped and depthwise convolution

DEPTHWISE_IMPULSES = [  # (h, w, kernel, stride, padding, dilation)
    (5, 5, 3, 1, "same", 1),
    (4, 4, 3, 2, "same", 1),
    (7, 6, 3, 2, (1, 1, 1, 1), 1),
    (1, 1, 3, 1, "same", 1),
    (6, 6, 5, 1, "valid", 1),
    (9, 8, 3, 1, "same", 2),
    (3, 7, 2, 2, "same_lower", 1),
]


@pytest.mark.parametrize("h, w, kernel, stride, padding, dilation", DEPTHWISE_IMPULSES)
def test_depthwise_impulses_exact_against_twin_and_onnx(h, w, kernel, stride, padding, dilation):
    channels = 19  # not a multiple of 16: vector body plus tail
    # Per channel c, tap t: 2**t * (1 + c), so every output names the taps that saw the impulse.
    weights = np.ascontiguousarray(impulse_weights(kernel, kernel, 1, channels))
    bias = np.arange(channels, dtype=np.float32) * 0.25
    window = kernels.resolve_window((h, w), kernel, stride, padding, dilation)
    evaluator_model = single_node_model(
        "Conv",
        (2, channels, h, w),
        {"w": np.ascontiguousarray(weights.transpose(3, 2, 0, 1)), "b": bias},
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        dilations=[dilation, dilation],
        pads=onnx_pads(window),
        group=channels,
    )
    for y, x in [(0, 0), (h - 1, w - 1), (h // 2, w // 2), (0, w - 1)]:
        for c in (0, channels - 1):
            image = one_hot((2, h, w, channels), (1, y, x, c))
            got = kernels.conv2d_nhwc(image, weights, bias, stride, padding, dilation, groups=channels)
            np.testing.assert_array_equal(
                got, slow.conv2d_nhwc(image, weights, bias, stride, padding, dilation, channels)
            )
            nchw = np.ascontiguousarray(image.transpose(0, 3, 1, 2))
            expected = ReferenceEvaluator(evaluator_model).run(None, {"x": nchw})[0].transpose(0, 2, 3, 1)
            np.testing.assert_array_equal(got, expected)
            others = np.delete(got[1], c, axis=-1)
            np.testing.assert_array_equal(others, np.broadcast_to(np.delete(bias, c), others.shape))  # no channel leaks


def random_grouped_cases(count: int, seed: int = 11):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        groups = int(rng.choice([1, 2, 3, 5, 16, 17]))
        cin_g, cout_g = (1, 1) if rng.random() < 0.5 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
        stride = tuple(int(s) for s in rng.integers(1, 3, 2))
        padding = ["valid", "same", "same_lower", (1, 0, 2, 1)][int(rng.integers(4))]
        h, w = int(rng.integers(kernel[0], kernel[0] + 9)), int(rng.integers(kernel[1], kernel[1] + 9))
        yield int(rng.integers(1, 3)), h, w, groups, cin_g, cout_g, kernel, stride, padding


@pytest.mark.parametrize("n, h, w, groups, cin_g, cout_g, kernel, stride, padding", list(random_grouped_cases(30)))
def test_grouped_conv_random_shapes_against_twin(n, h, w, groups, cin_g, cout_g, kernel, stride, padding):
    rng = np.random.default_rng(h * w * groups + cin_g)
    x = rng.standard_normal((n, h, w, groups * cin_g)).astype(np.float32)
    weights = rng.standard_normal((*kernel, cin_g, groups * cout_g)).astype(np.float32)
    bias = rng.standard_normal(groups * cout_g).astype(np.float32)
    got = kernels.conv2d_nhwc(x, weights, bias, stride, padding, 1, groups)
    np.testing.assert_allclose(
        got, slow.conv2d_nhwc(x, weights, bias, stride, padding, 1, groups), rtol=1e-5, atol=1e-5
    )
    assert got.shape == kernels.conv2d_output_shape(x.shape, weights.shape, stride, padding, 1, groups)


def test_grouped_conv_refuses_channels_groups_do_not_divide():
    x = np.zeros((1, 4, 4, 6), np.float32)
    with pytest.raises(
        ValueError, match="groups must be a positive int dividing the 6 input and 4 output channels, got 4"
    ):
        kernels.conv2d_nhwc(x, np.zeros((3, 3, 1, 4), np.float32), groups=4)
    with pytest.raises(ValueError, match=r"with groups 3 expect 3 input channels, x \(1, 4, 4, 6\) has 6"):
        kernels.conv2d_nhwc(x, np.zeros((3, 3, 1, 6), np.float32), groups=3)


# ---------------------------------------------------------------- reduce mean / global pooling


@pytest.mark.parametrize(
    "shape, axes, transpose",
    [
        ((2, 5, 6, 7), (1, 2), (0, 3, 1, 2)),  # GlobalAveragePool of NHWC memory seen as NCHW: in place
        ((1, 1, 1, 3), (1, 2), None),
        ((3, 4), (0,), None),
        ((3, 4), (-1,), None),
        ((2, 3, 4, 5), (0, 2), None),
        ((2, 3, 70), (1,), None),  # inner > 64: two blocks of double accumulators
        ((4, 9, 9, 33), (1, 2), (0, 3, 1, 2)),
        ((2, 3, 4), (0, 1, 2), (2, 0, 1)),
        ((5,), (0,), None),
    ],
)
def test_reduce_mean_against_twin(shape, axes, transpose):
    rng = np.random.default_rng(len(shape) + sum(axes))
    x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
    if transpose is not None:
        x = x.transpose(transpose)
        axes = tuple(transpose.index(a % len(shape)) for a in axes)
    for keepdims in (True, False):
        got = kernels.reduce_mean(x, axes, keepdims)
        np.testing.assert_allclose(got, slow.reduce_mean(x, axes, keepdims), rtol=1e-6, atol=1e-7)
    power_of_two = np.full(x.shape, 0.5, np.float32)
    np.testing.assert_array_equal(kernels.reduce_mean(power_of_two, axes), slow.reduce_mean(power_of_two, axes))


def test_global_pool_of_an_nchw_view_stays_nhwc_underneath():
    x = np.random.default_rng(2).standard_normal((2, 4, 5, 6)).astype(np.float32)
    pooled = kernels.reduce_mean(x.transpose(0, 3, 1, 2), (2, 3))
    assert pooled.shape == (2, 6, 1, 1) and pooled.transpose(0, 2, 3, 1).flags.c_contiguous
    assert np.isnan(kernels.reduce_mean(np.zeros((2, 0, 3), np.float32), (1,))).all()
    with pytest.raises(ValueError, match=r"axes must be distinct and within 2 dimensions, got \[2\]"):
        kernels.reduce_mean(np.zeros((2, 3), np.float32), (2,))


# ---------------------------------------------------------------- clip


def test_clip_against_twin_with_nan_inf_and_crossed_bounds():
    x = np.array([-np.inf, -7, -6, -0.0, 0.0, 3, 6, 6.5, np.inf, np.nan], np.float32)
    for lo, hi in [(0, 6), (-np.inf, 0.5), (2, np.inf), (5, 1), (-1e30, 1e30)]:
        np.testing.assert_array_equal(kernels.clip(x, lo, hi), slow.clip(x, lo, hi))
    np.testing.assert_array_equal(kernels.clip(x, 5, 1)[:-1], np.ones(9, np.float32))  # lo > hi: all hi (ONNX)
    view = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32).transpose(0, 3, 1, 2)
    out = kernels.clip(view, -0.5, 0.5)
    np.testing.assert_array_equal(out, np.clip(view, -0.5, 0.5))
    assert out.transpose(0, 2, 3, 1).flags.c_contiguous
    with pytest.raises(ValueError, match="clip: lo must be a number, got nan"):
        kernels.clip(x, float("nan"), 1)


# ---------------------------------------------------------------- pad


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize(
    "shape, begin, end",
    [
        ((1, 3, 4, 5), (0, 0, 1, 0), (0, 0, 1, 1)),  # ZeroPadding2D ((1, 1), (0, 1)) on NCHW
        ((2, 3, 1, 1), (0, 0, 1, 1), (0, 0, 1, 1)),  # 1x1 image
        ((3, 4), (2, -1), (7, 3)),  # crop one side, pad past the axis length
        ((5,), (-2,), (-2,)),
        ((2, 3, 4), (1, 0, -1), (0, 2, 2)),
        ((1, 2, 1, 2, 1, 2, 1, 3), (0,) * 7 + (1,), (1,) + (0,) * 7),
    ],
)
def test_pad_against_twin(mode, shape, begin, end):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(kernels.pad(x, begin, end, mode, 2.5), slow.pad(x, begin, end, mode, 2.5))


@pytest.mark.parametrize(
    "h, w, pads", [(4, 4, (1, 0, 1, 1)), (1, 1, (2, 3, 0, 1)), (5, 3, (0, 0, 2, 0)), (3, 6, (-1, 1, 0, -2))]
)
def test_pad_impulses_move_exactly_and_stay_nhwc(h, w, pads):
    top, left, bottom, right = pads
    channels = 17
    for y, x, c in [(0, 0, 0), (h - 1, w - 1, channels - 1), (h // 2, w // 2, 3)]:
        image = one_hot((1, h, w, channels), (0, y, x, c))
        nchw_view = image.transpose(0, 3, 1, 2)
        got = kernels.pad(nchw_view, (0, 0, top, left), (0, 0, bottom, right))
        assert got.transpose(0, 2, 3, 1).flags.c_contiguous
        np.testing.assert_array_equal(got, slow.pad(nchw_view, (0, 0, top, left), (0, 0, bottom, right)))
        ty, tx = y + top, x + left
        inside = 0 <= ty < h + top + bottom and 0 <= tx < w + left + right and y >= -top and x >= -left
        assert got.sum() == (1.0 if inside else 0.0)
        if inside:
            assert got[0, c, ty, tx] == 1.0


def test_pad_errors_are_one_line():
    with pytest.raises(ValueError, match="mode must be one of"):
        kernels.pad(np.zeros((2, 2), np.float32), (0, 0), (0, 0), "symmetric")
    with pytest.raises(
        ValueError, match=r"pad of x \(2, 2\) by \[-2, 0\] before and \[0, 0\] after: pad shape: bad shape"
    ):
        kernels.pad(np.zeros((2, 2), np.float32), (-2, 0), (0, 0))
    with pytest.raises(ValueError, match="needs 2 begin and end pads"):
        kernels.pad(np.zeros((2, 2), np.float32), (1,), (1,))


# ---------------------------------------------------------------- broadcasting arithmetic

BROADCASTS = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((2, 3, 4), (1, 4)),
    ((3, 4), ()),
    ((), (3, 4)),
    ((), ()),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (3, 1)),
    ((2, 1, 3), (1, 5, 1)),
    ((1, 1, 1), (7,)),
    ((2, 16, 5, 5), (1, 16, 1, 1)),
    ((2, 1, 1, 24), (2, 7, 7, 24)),
    ((1, 2, 1, 2, 1, 2, 1, 2), (2, 1, 2, 1, 2, 1, 2, 1)),
]


@pytest.mark.parametrize("a_shape, b_shape", BROADCASTS)
def test_binary_ops_broadcast_like_numpy(a_shape, b_shape):
    rng = np.random.default_rng(len(a_shape) * 10 + len(b_shape))
    a = np.asarray(rng.standard_normal(a_shape), np.float32)
    b = np.asarray(rng.standard_normal(b_shape) + 0.1, np.float32)
    for name in ("add", "sub", "mul", "div"):
        for x, y in ((a, b), (b, a)):
            got, want = getattr(kernels, name)(x, y), getattr(slow, name)(x, y)
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want)


def test_binary_ops_on_views_keep_the_memory_order():
    rng = np.random.default_rng(4)
    nhwc = rng.standard_normal((2, 5, 6, 7)).astype(np.float32)
    view = nhwc.transpose(0, 3, 1, 2)
    scale = rng.standard_normal((1, 7, 1, 1)).astype(np.float32)
    for name in ("add", "sub", "mul", "div"):
        out = getattr(kernels, name)(view, scale)
        np.testing.assert_array_equal(out, getattr(slow, name)(view, scale))
        assert out.transpose(0, 2, 3, 1).flags.c_contiguous
    flipped = view[:, :, ::-1, ::2]  # negative and non-unit strides: copied first
    np.testing.assert_array_equal(kernels.sub(flipped, view[:, :, :, ::2]), flipped - view[:, :, :, ::2])
    special = np.array([1, -1, 0, np.inf, np.nan], np.float32)
    zeros = np.zeros(5, np.float32)
    np.testing.assert_array_equal(kernels.div(special, zeros), slow.div(special, zeros))


# ---------------------------------------------------------------- onnx's conformance cases

# What the reference refuses on purpose, by the name it refuses it by: 1-D and 3-D windows and
# convolutions, attribute values it does not implement (ceil_mode, Gemm alpha, pool dilations...),
# batched MatMul, non-float windowed ops and Pad, non-tensor inputs, tensor types numpy has no
# exact dtype for (bfloat16, float8/4, int4/2, strings), and 16-bit quantisation.
EXOTIC = r"(BFLOAT16|FLOAT8\w*|FLOAT4E2M1|U?INT[24]|STRING)"
REFUSALS = (
    r"only 2-D (pooling|windows|convolution) (are|is) supported",
    r"attribute \w+=.+ is not supported",
    r"the Indices output is not supported",
    r"only \(\.\.\., K\) @ \(K, M\) is supported",
    r"is a (sequence|optional)_type;",
    r"input must be NCHW float32, got .* dtype u?int",
    r"only float32 is supported, got u?int",
    rf"cast to {EXOTIC} is not supported",
    rf"input '\w+' is a tensor of {EXOTIC};",
    r"attribute\(s\) round_mode not supported",
    # Q/DQ: the integer types edgecnn's INT8 graphs use (uint8, int8, int32 biases) and no others
    r"x must be uint8, int8 or int32, got u?int16",
    r"output type must be uint8 or int8, got u?int16",
    # the ops the layer sweep brought: float32 only, 2-D only, no groups in ConvTranspose
    r"must be a float32 array, got float(16|64)",
    r"(float16|float64|bool) inputs are not supported \(",
    r"float32 inputs are not supported \(integers are\)",
    r"inputs must all be float32 \(or all integer\), got \['float(16|64)'",
    r"only float32( and integer)? inputs are supported, got float(16|64)",
    r"only integer ranges are supported",
    r"operands must both be float32 \(or both integer( or bool)?\), got float(16|64)",
    r"only a float32 base is supported",
    r"ConvTranspose '\w*'\): group=\d+ is not supported",
    r"only 2-D NCHW input and \(C, M, kh, kw\) weights are supported",
    r"auto_pad='SAME_\w+' is not supported without output_shape",
)


def _array(value) -> np.ndarray:
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


@pytest.fixture(scope="session")
def conformance_cases():
    """onnx's node test cases (built in memory) whose only op is one the C reference implements."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    picked = []
    for case in cases:
        if case.model is None or not case.data_sets:
            continue
        ops = {(n.domain, n.op_type) for n in case.model.graph.node}
        if ops and all(domain in ("", "ai.onnx") and op in COMPILERS for domain, op in ops):
            picked.append(case)
    return picked


def test_onnx_conformance_cases_agree_or_are_refused_by_name(conformance_cases):
    ran, refused, failures = [], [], []
    for case in conformance_cases:
        try:
            reference = ReferenceModel(case.model)
            names = [i.name for i in case.model.graph.input]
            results = [
                reference.run({n: _array(v) for n, v in zip(names, inputs, strict=True)})
                for inputs, _ in case.data_sets
            ]
        except ModelError as exc:
            if not any(re.search(pattern, str(exc)) for pattern in REFUSALS):
                failures.append(f"{case.name}: refused unexpectedly: {exc}")
            refused.append(case.name)
            continue
        for got, (_, outputs) in zip(results, case.data_sets, strict=True):
            for g, e in zip(got, outputs, strict=True):
                e = _array(e)
                if g.shape != e.shape or g.dtype != e.dtype:
                    failures.append(f"{case.name}: shape/dtype {g.shape} {g.dtype}, expected {e.shape} {e.dtype}")
                elif not np.allclose(
                    g.astype(np.float64), e.astype(np.float64), rtol=case.rtol, atol=case.atol, equal_nan=True
                ):
                    failures.append(f"{case.name}: max |diff| {np.nanmax(np.abs(g.astype(np.float64) - e)):.3g}")
        ran.append(case.name)
    print(
        f"onnx conformance: {len(ran)} ran and agreed, {len(refused)} refused by name "
        f"({len(conformance_cases)} cases of supported ops)"
    )
    assert not failures, "\n".join(failures)
    new_ops = {"Conv", "Clip", "Pad", "GlobalAveragePool", "ReduceMean", "Sub", "Div", "Add", "Mul", "Cast"}
    new_ops |= {"Tanh", "Erf", "Sqrt", "Reciprocal", "Neg", "Exp", "Softplus", "Softsign", "Elu", "LeakyRelu", "Selu"}
    new_ops |= {"Max", "Min", "Pow", "Greater", "Less", "Equal", "Not", "Where", "LogSoftmax", "ReduceMax"}
    new_ops |= {"ReduceSum", "GlobalMaxPool", "ConvTranspose", "Resize", "Tile", "Expand", "ConstantOfShape", "MatMul"}
    covered = {n.op_type for case in conformance_cases if case.name in ran for n in case.model.graph.node}
    assert new_ops <= covered, new_ops - covered


# ---------------------------------------------------------------- refusals and the listed bugs


def test_every_compiler_declares_its_attributes():
    assert set(ATTRIBUTES) == set(COMPILERS)


def test_unknown_attribute_is_refused_by_name():
    model = single_node_model("Relu", (1, 3), {})
    model.graph.node[0].attribute.append(helper.make_attribute("alpha", 0.5))
    with pytest.raises(ModelError, match=r"node 0 \(Relu ''\): attribute\(s\) alpha not supported") as info:
        ReferenceModel(model)
    assert info.value.op == "Relu"


def test_cast_to_float8_with_saturate_is_refused_and_plain_saturate_is_exact():
    model = single_node_model("Cast", (1, 3), {}, opset=21, to=TensorProto.FLOAT8E4M3FN, saturate=0)
    with pytest.raises(ModelError, match="cast to FLOAT8E4M3FN is not supported"):
        ReferenceModel(model)
    to_half = single_node_model("Cast", (1, 3), {}, opset=21, to=TensorProto.FLOAT16, saturate=1)
    x = np.array([[1e6, 1.0 / 3, -70000.0]], np.float32)
    np.testing.assert_array_equal(ReferenceModel(to_half).run(x)[0], ReferenceEvaluator(to_half).run(None, {"x": x})[0])


def test_scalar_output_keeps_shape_empty():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    node = helper.make_node("ReduceMean", ["x"], ["y"], keepdims=0)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    out = ReferenceModel(model).run(np.ones((3, 4), np.float32))[0]
    assert out.shape == () and out == 1.0


def test_sequence_input_is_a_one_line_model_error():
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Identity", ["s"], ["y"])
    model = helper.make_model(helper.make_graph([node], "g", [seq], [y]), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(
        ModelError, match=r"^model: input 's' is a sequence_type; the C reference takes numeric tensors only$"
    ):
        ReferenceModel(model)


def _refused_at_run_time() -> onnx.ModelProto:
    """Compiles (Conv is supported) and runs in onnxruntime, but the C reference refuses it when it
    runs: its weights arrive through a node, and turn out to be those of a 1-D convolution."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 5])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, None)
    weights = numpy_helper.from_array(np.ones((2, 3, 3), np.float32), "w")
    nodes = [
        helper.make_node("Identity", ["w"], ["w_dynamic"]),
        helper.make_node("Conv", ["input", "w_dynamic"], ["probabilities"], kernel_shape=[3]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [weights])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


@pytest.mark.parametrize("when", ["compile", "run"])
def test_exporter_reports_a_refusal_as_not_run(when):
    model, op = _refused_at_run_time(), "Conv"
    if when == "compile":
        model.graph.node[1].op_type, op = "Hardmax", "Hardmax"
        del model.graph.node[1].input[1:]
        del model.graph.node[1].attribute[:]
    report = check_export(model, lambda x: x)
    assert isinstance(report, CheckReport) and report.refused_op == op, report.skipped
    assert report.summary() == f"C reference: not run (op {op})"
