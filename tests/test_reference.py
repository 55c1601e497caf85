"""The C reference kernels (csrc/ via edgecnn.reference.kernels) against their numpy twins,
onnx's ReferenceEvaluator and TensorFlow, and the ONNX interpreter over them.

Impulse tests: a one-hot input and a weight of 2**tap per kernel tap make every output an
exact integer naming the taps that saw the impulse, so an off-by-one in padding or stride
is a wrong integer, not a tolerance miss.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from edgecnn.models import BUNDLED, bundled_path
from edgecnn.reference import SUPPORTED_OPS, ModelError, ReferenceModel, kernels, slow

# ---------------------------------------------------------------- helpers


def impulse_weights(kh: int, kw: int, cin: int, cout: int) -> np.ndarray:
    """HWIO weights 2**(tap index) * (1 + output channel): exact in float32 for small kernels."""
    taps = (2.0 ** np.arange(kh * kw * cin)).reshape(kh, kw, cin, 1)
    return (taps * (1 + np.arange(cout))).astype(np.float32)


def one_hot(shape: tuple[int, ...], index: tuple[int, ...]) -> np.ndarray:
    x = np.zeros(shape, dtype=np.float32)
    x[index] = 1.0
    return x


def onnx_pads(window: tuple[int, ...]) -> list[int]:
    top, left, bottom, right = window[6:10]
    return [top, left, bottom, right]


def single_node_model(op: str, x_shape, inputs: dict[str, np.ndarray], opset: int = 17, **attrs) -> onnx.ModelProto:
    """A one-node NCHW graph: input 'x' (dynamic batch) plus initializers, output 'y'."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape[1:]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(v, name) for name, v in inputs.items()]
    node = helper.make_node(op, ["x", *inputs], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def evaluator_conv(x_nhwc, w_hwio, bias, window) -> np.ndarray:
    """onnx.reference Conv on the same problem, back in NHWC."""
    kh, kw, sh, sw, dh, dw = window[:6]
    inputs = {"w": np.ascontiguousarray(w_hwio.transpose(3, 2, 0, 1))}
    if bias is not None:
        inputs["b"] = bias
    model = single_node_model(
        "Conv",
        x_nhwc.transpose(0, 3, 1, 2).shape,
        inputs,
        kernel_shape=[kh, kw],
        strides=[sh, sw],
        dilations=[dh, dw],
        pads=onnx_pads(window),
    )
    out = ReferenceEvaluator(model).run(None, {"x": np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))})[0]
    return out.transpose(0, 2, 3, 1)


# ---------------------------------------------------------------- shapes and TF same padding


@pytest.mark.parametrize(
    "size, kernel, stride, expected_out, expected_pads",
    [
        (4, 3, 2, 2, (0, 1)),  # even size, stride 2: the odd pad goes after (TF)
        (5, 3, 2, 3, (1, 1)),
        (6, 2, 2, 3, (0, 0)),
        (4, 4, 1, 4, (1, 2)),  # even kernel: 3 pads, 1 before, 2 after
        (1, 3, 1, 1, (1, 1)),  # 1x1 input
        (1, 3, 2, 1, (1, 1)),
        (1, 1, 1, 1, (0, 0)),
        (7, 1, 3, 3, (0, 0)),
    ],
)
def test_same_padding_follows_tensorflow(size, kernel, stride, expected_out, expected_pads):
    window = kernels.resolve_window((size, size), kernel, stride, "same")
    assert window[6:10] == (expected_pads[0], expected_pads[0], expected_pads[1], expected_pads[1])
    assert kernels.conv2d_output_shape((1, size, size, 2), (kernel, kernel, 2, 5), stride, "same") == (
        1,
        expected_out,
        expected_out,
        5,
    )
    lower = kernels.resolve_window((size, size), kernel, stride, "same_lower")
    assert lower[6:10] == (expected_pads[1], expected_pads[1], expected_pads[0], expected_pads[0])


def test_shape_errors_are_one_line_and_quote_the_input():
    with pytest.raises(ValueError, match=r"x \(1, 1, 1, 1\) with weights \(3, 3, 1, 1\).*does not fit"):
        kernels.conv2d_output_shape((1, 1, 1, 1), (3, 3, 1, 1), 1, "valid")
    with pytest.raises(ValueError, match="padding must be one of"):
        kernels.resolve_window((4, 4), 3, 1, "full")
    with pytest.raises(ValueError, match="bad parameter"):
        kernels.resolve_window((4, 4), 3, 0, "valid")
    with pytest.raises(ValueError, match="pool pad >= kernel"):
        kernels.max_pool2d_nhwc(np.zeros((1, 4, 4, 1), np.float32), 2, 1, (2, 0, 0, 0))
    with pytest.raises(ValueError, match=r"x must be NHWC float32, got shape \(4, 4\) dtype float32"):
        kernels.conv2d_nhwc(np.zeros((4, 4), np.float32), np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(ValueError, match="dtype float64"):
        kernels.conv2d_nhwc(np.zeros((1, 4, 4, 1)), np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(ValueError, match="expect 2 input channels"):
        kernels.conv2d_nhwc(np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 1, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"bias must be \(3,\)"):
        kernels.dense(np.zeros((2, 4), np.float32), np.zeros((4, 3), np.float32), np.zeros(2, np.float32))


# ---------------------------------------------------------------- impulses

IMPULSE_CASES = [  # (h, w, kernel, stride, padding, dilation)
    (5, 5, 3, 1, "valid", 1),
    (4, 4, 3, 2, "same", 1),
    (6, 7, 3, 2, "same", 1),
    (1, 1, 3, 1, "same", 1),
    (1, 1, 3, 2, "same", 1),
    (6, 6, 2, 2, "same_lower", 1),
    (7, 9, 3, 1, (2, 0, 1, 3), 1),
    (9, 8, 2, 3, "same", 2),
    (9, 12, 3, 1, "same", 1),  # wide enough for the 4-pixel interior blocks
]


@pytest.mark.parametrize("h, w, kernel, stride, padding, dilation", IMPULSE_CASES)
def test_conv_impulses_exact_against_twin_and_onnx(h, w, kernel, stride, padding, dilation):
    cin, cout = 2, 17  # 17 = one 16-channel block plus a tail
    weights = impulse_weights(kernel, kernel, cin, cout)
    bias = np.arange(cout, dtype=np.float32) * 0.5
    window = kernels.resolve_window((h, w), kernel, stride, padding, dilation)
    for y, x, c in [(0, 0, 0), (h - 1, w - 1, 1), (h // 2, w // 2, 0), (0, w - 1, 1), (h - 1, 0, 0)]:
        image = one_hot((2, h, w, cin), (1, y, x, c))
        got = kernels.conv2d_nhwc(image, weights, bias, stride, padding, dilation)
        np.testing.assert_array_equal(got, slow.conv2d_nhwc(image, weights, bias, stride, padding, dilation))
        np.testing.assert_array_equal(got, evaluator_conv(image, weights, bias, window))
        np.testing.assert_array_equal(got[0], np.broadcast_to(bias, got[0].shape))  # image 0 is all zeros


@pytest.mark.parametrize(
    "h, w, pool, stride, padding",
    [
        (4, 4, 2, 2, "valid"),
        (5, 5, 2, 2, "same"),
        (4, 6, 3, 2, "same"),
        (1, 1, 2, 2, "same"),
        (7, 5, 3, 1, (1, 1, 1, 2)),
    ],
)
def test_pool_impulses_against_twin_and_onnx(h, w, pool, stride, padding):
    rng = np.random.default_rng(h * w)
    # Distinct integers: the max names exactly one input pixel.
    image = rng.permutation(2 * h * w * 3).astype(np.float32).reshape(2, h, w, 3) - h * w
    window = kernels.resolve_window((h, w), pool, stride, padding)
    got_max = kernels.max_pool2d_nhwc(image, pool, stride, padding)
    got_avg = kernels.avg_pool2d_nhwc(image, pool, stride, padding)
    np.testing.assert_array_equal(got_max, slow.max_pool2d_nhwc(image, pool, stride, padding))
    np.testing.assert_allclose(got_avg, slow.avg_pool2d_nhwc(image, pool, stride, padding), rtol=1e-6)
    nchw = np.ascontiguousarray(image.transpose(0, 3, 1, 2))
    for op, got in (("MaxPool", got_max), ("AveragePool", got_avg)):
        model = single_node_model(
            op, nchw.shape, {}, kernel_shape=[pool, pool], strides=[stride, stride], pads=onnx_pads(window)
        )
        expected = ReferenceEvaluator(model).run(None, {"x": nchw})[0].transpose(0, 2, 3, 1)
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_avg_pool_counts_only_inside_taps_unless_asked():
    ones = np.ones((1, 3, 3, 1), np.float32)
    np.testing.assert_array_equal(kernels.avg_pool2d_nhwc(ones, 2, 2, "same"), np.ones((1, 2, 2, 1)))
    np.testing.assert_array_equal(
        kernels.avg_pool2d_nhwc(ones, 2, 2, "same", count_include_pad=True)[0, :, :, 0], [[1, 0.5], [0.5, 0.25]]
    )


# ---------------------------------------------------------------- TensorFlow's own conv/pool on the edge cases

TF_CASES = [(4, 4, 3, 2), (6, 7, 3, 2), (1, 1, 3, 1), (1, 1, 3, 2), (8, 8, 2, 2), (5, 6, 4, 3), (10, 13, 3, 1)]


@pytest.mark.parametrize("h, w, kernel, stride", TF_CASES)
def test_same_padding_matches_tensorflow(h, w, kernel, stride):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(h * 100 + w)
    x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
    weights = rng.standard_normal((kernel, kernel, 3, 20)).astype(np.float32)
    expected = tf.nn.conv2d(x, weights, stride, "SAME").numpy()
    np.testing.assert_allclose(kernels.conv2d_nhwc(x, weights, None, stride, "same"), expected, rtol=1e-5, atol=1e-5)
    for padding in ("SAME", "VALID"):
        if padding == "VALID" and (h < kernel or w < kernel):
            continue
        np.testing.assert_array_equal(
            kernels.max_pool2d_nhwc(x, kernel, stride, padding.lower()),
            tf.nn.max_pool2d(x, kernel, stride, padding).numpy(),
        )
        np.testing.assert_allclose(
            kernels.avg_pool2d_nhwc(x, kernel, stride, padding.lower()),
            tf.nn.avg_pool2d(x, kernel, stride, padding).numpy(),
            rtol=1e-6,
            atol=1e-6,
        )


# ---------------------------------------------------------------- random shapes


def random_conv_cases(count: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    paddings = ["valid", "same", "same_lower", "explicit"]
    for _ in range(count):
        kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
        stride = tuple(int(s) for s in rng.integers(1, 4, 2))
        dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
        padding = paddings[rng.integers(len(paddings))]
        if padding == "explicit":
            padding = tuple(int(p) for p in rng.integers(0, 4, 4))
        extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
        h, w = (int(rng.integers(e, e + 12)) for e in extent)
        if rng.random() < 0.2:
            h, w = (1, int(rng.integers(20, 60))) if padding in ("same", "same_lower") else (extent[0], w)
        yield (
            int(rng.integers(1, 3)),
            h,
            w,
            int(rng.integers(1, 9)),
            int(rng.integers(1, 40)),
            kernel,
            stride,
            padding,
            dilation,
        )


@pytest.mark.parametrize("n, h, w, cin, cout, kernel, stride, padding, dilation", list(random_conv_cases(40)))
def test_conv_random_shapes_against_twin(n, h, w, cin, cout, kernel, stride, padding, dilation):
    rng = np.random.default_rng(h * w + cin * cout)
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    weights = rng.standard_normal((*kernel, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    got = kernels.conv2d_nhwc(x, weights, bias, stride, padding, dilation)
    np.testing.assert_allclose(got, slow.conv2d_nhwc(x, weights, bias, stride, padding, dilation), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", range(12))
def test_pool_random_shapes_against_twin(seed):
    rng = np.random.default_rng(seed)
    pool = tuple(int(p) for p in rng.integers(1, 4, 2))
    stride = tuple(int(s) for s in rng.integers(1, 4, 2))
    padding = ["valid", "same", "same_lower"][seed % 3]
    x = rng.standard_normal(
        (
            int(rng.integers(1, 3)),
            int(rng.integers(pool[0], 15)),
            int(rng.integers(pool[1], 15)),
            int(rng.integers(1, 40)),
        )
    ).astype(np.float32)
    np.testing.assert_array_equal(
        kernels.max_pool2d_nhwc(x, pool, stride, padding), slow.max_pool2d_nhwc(x, pool, stride, padding)
    )
    np.testing.assert_allclose(
        kernels.avg_pool2d_nhwc(x, pool, stride, padding),
        slow.avg_pool2d_nhwc(x, pool, stride, padding),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("rows, k, m", [(1, 1, 1), (3, 12544, 1), (5, 7, 33), (2, 3136, 100), (1, 0, 4)])
def test_dense_against_twin(rows, k, m):
    rng = np.random.default_rng(k + m)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    weights = rng.standard_normal((k, m)).astype(np.float32)
    bias = rng.standard_normal(m).astype(np.float32)
    np.testing.assert_allclose(kernels.dense(x, weights, bias), slow.dense(x, weights, bias), rtol=1e-5, atol=1e-4)
    powers = (2.0 ** -np.arange(k)).astype(np.float32)[:, None] * np.ones((1, m), np.float32)
    np.testing.assert_array_equal(
        kernels.dense(np.ones((rows, k), np.float32), powers), slow.dense(np.ones((rows, k), np.float32), powers)
    )


def test_activations_against_twins_including_extremes():
    x = np.array([[-1e30, -100, -3.5, -0.0, 0.0, 1e-8, 2.0, 88.0, 100.0, np.inf, -np.inf]], np.float32)
    np.testing.assert_array_equal(kernels.relu(x), slow.relu(x))
    np.testing.assert_array_equal(kernels.sigmoid(x), slow.sigmoid(x))
    np.testing.assert_allclose(kernels.softmax(x[:, :9]), slow.softmax(x[:, :9]), rtol=1e-6, atol=1e-30)
    assert np.isnan(kernels.relu(np.array([np.nan], np.float32)))[0]
    assert np.isnan(kernels.max_pool2d_nhwc(np.array([1, np.nan, 3, 2], np.float32).reshape(1, 2, 2, 1), 2))[0, 0, 0, 0]
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((6, 10)) * 20).astype(np.float32)
    np.testing.assert_allclose(kernels.softmax(logits), slow.softmax(logits), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(kernels.softmax(logits).sum(axis=1), 1, rtol=1e-6)


def test_unary_kernels_keep_a_transposed_view_transposed():
    x = np.random.default_rng(1).standard_normal((2, 5, 6, 7)).astype(np.float32)
    view = x.transpose(0, 3, 1, 2)
    out = kernels.relu(view)
    np.testing.assert_array_equal(out, np.maximum(view, 0))
    assert out.transpose(0, 2, 3, 1).flags.c_contiguous


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((3, 4), (3, 4)),
        ((3, 4), (4,)),
        ((2, 3, 4), (1, 4)),
        ((3, 4), ()),
        ((), (3, 4)),
        ((3, 1), (3, 4)),
        ((2, 3, 4), (3, 1)),
        ((5,), (1,)),
    ],
)
def test_add_mul_broadcast_like_numpy(a_shape, b_shape):
    rng = np.random.default_rng(len(a_shape) * 10 + len(b_shape))
    a = np.asarray(rng.standard_normal(a_shape), np.float32)
    b = np.asarray(rng.standard_normal(b_shape), np.float32)
    np.testing.assert_array_equal(kernels.add(a, b), a + b)
    np.testing.assert_array_equal(kernels.mul(a, b), a * b)
    with pytest.raises(ValueError, match="do not broadcast"):
        kernels.add(np.zeros((3, 4), np.float32), np.zeros((5,), np.float32))


# ---------------------------------------------------------------- the ONNX interpreter


def small_cnn(opset: int = 17) -> onnx.ModelProto:
    """NHWC input -> Transpose -> Conv(same, bias) -> Relu -> MaxPool -> AveragePool(pads) -> Transpose
    -> Flatten -> Gemm(transB) -> Mul/Add (a Rescaling-like affine) -> Softmax, plus a Sigmoid side output."""
    rng = np.random.default_rng(3)
    inits = {
        "w": rng.standard_normal((16, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(16).astype(np.float32),
        "fc": rng.standard_normal((5, 16 * 3 * 3)).astype(np.float32),
        "fc_b": rng.standard_normal(5).astype(np.float32),
        "scale": np.array(0.5, np.float32),
        "shift": rng.standard_normal((1, 5)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Transpose", ["input"], ["t0"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t0", "w", "b"], ["c1"], kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[1, 1]),
        helper.make_node("AveragePool", ["p1"], ["p2"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["p2"], ["t1"], perm=[0, 2, 3, 1]),
        helper.make_node("Flatten", ["t1"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fc_b"], ["g"], transB=1),
        helper.make_node("Mul", ["g", "scale"], ["m"]),
        helper.make_node("Add", ["m", "shift"], ["a"]),
        helper.make_node("Softmax", ["a"], ["probabilities"]),
        helper.make_node("Sigmoid", ["a"], ["side"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 11, 12, 3])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 5]),
            helper.make_tensor_value_info("side", TensorProto.FLOAT, ["N", 5]),
        ],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_interpreter_matches_onnx_reference_evaluator():
    model = small_cnn()
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(0).random((3, 11, 12, 3), dtype=np.float32)
    expected = ReferenceEvaluator(model).run(None, {"input": x})
    got = ReferenceModel(model).run(x)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    values = ReferenceModel(model).run_all(x)
    assert values["c1"].shape == (3, 16, 6, 6)  # intermediates keep their ONNX (NCHW) shapes


def test_unsupported_operators_are_listed_in_one_line(tmp_path):
    model = small_cnn()
    model.graph.node.append(helper.make_node("Erf", ["a"], ["e"]))
    model.graph.node.append(helper.make_node("LSTM", ["e", "w", "w"], ["l"]))
    with pytest.raises(ModelError) as info:
        ReferenceModel(model)
    message = str(info.value)
    assert "operator(s) Erf, LSTM" in message and "\n" not in message and "Conv" in message
    custom = small_cnn()
    custom.graph.node[2].domain = "com.microsoft"
    with pytest.raises(ModelError, match=r"com\.microsoft\.Relu"):
        ReferenceModel(custom)


def test_malformed_models_fail_clearly(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01not a protobuf at all" * 10)
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        ReferenceModel(garbage)
    with pytest.raises(ModelError, match="no such ONNX file"):
        ReferenceModel(tmp_path / "missing.onnx")
    dangling = small_cnn()
    dangling.graph.node[2].input[0] = "nowhere"
    with pytest.raises(ModelError, match=r"node 2 \(Relu ''\): reads 'nowhere'"):
        ReferenceModel(dangling)
    grouped = small_cnn()  # 16 filters of 3 channels, group 2: the weights want 6 input channels, x has 3
    grouped.graph.node[1].attribute.append(helper.make_attribute("group", 2))
    with pytest.raises(ModelError, match=r"node 1 \(Conv ''\): .*groups must be a positive int dividing the 3 input"):
        ReferenceModel(grouped)(np.zeros((1, 11, 12, 3), np.float32))
    ceil = small_cnn()
    ceil.graph.node[3].attribute.append(helper.make_attribute("ceil_mode", 1))
    with pytest.raises(ModelError, match="ceil_mode=1"):
        ReferenceModel(ceil)
    empty = helper.make_model(helper.make_graph([], "e", [], []))
    with pytest.raises(ModelError, match="no nodes"):
        ReferenceModel(empty)
    model = ReferenceModel(small_cnn())
    with pytest.raises(
        ValueError, match=r"input 'input' must be float32 of shape \('N', 11, 12, 3\), got shape \(1, 12, 11, 3\)"
    ):
        model(np.zeros((1, 12, 11, 3), np.float32))


@pytest.mark.parametrize("name", BUNDLED)
def test_supported_ops_cover_every_op_of_the_bundled_exports(name):
    """The shipped files are what edgecnn-export (and --int8) wrote; the zoo and the registered
    models' fresh exports are checked likewise in test_zoo.py and test_reference_models.py."""
    ops = {node.op_type for node in onnx.load(str(bundled_path(name))).graph.node}
    assert {"Conv", "MaxPool"} <= ops and not ops - set(SUPPORTED_OPS), sorted(ops - set(SUPPORTED_OPS))


def test_importing_and_running_the_reference_needs_neither_onnxruntime_nor_tensorflow():
    code = (
        "import sys, numpy as np\n"
        "from tests.test_reference import small_cnn\n"
        "from edgecnn.reference import ReferenceModel\n"
        "ReferenceModel(small_cnn())(np.zeros((1, 11, 12, 3), np.float32))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'tensorflow', 'keras'))\n"
        "assert not bad, bad\n"
    )
    from pathlib import Path

    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
