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
    out = kernels.unary("tanh", view)
    np.testing.assert_array_equal(out, slow.unary("tanh", view))
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


# ---------------------------------------------------------------- element-wise maps, comparisons, reductions


def assert_ulp_close(got: np.ndarray, want: np.ndarray, maxulp: int) -> None:
    """Same shape, NaN where the twin has NaN, and elsewhere within maxulp float32 ulps (inf only equals inf)."""
    assert got.shape == want.shape and got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_max_ulp(got[~np.isnan(got)], want[~np.isnan(want)], maxulp)


# alpha, beta as an ONNX export would pass them (not the defaults, so that a dropped attribute shows)
UNARY_ATTRIBUTES = {
    "elu": (0.7, 0.0),
    "leaky_relu": (0.1, 0.0),
    "selu": (1.6732632, 1.050701),
    "celu": (1.3, 0.0),
    "hard_sigmoid": (0.2, 0.5),
    "thresholded_relu": (0.75, 0.0),
}
# Ops made of IEEE operations only match their twin exactly; the others call libm and may differ by 1 ulp.
EXACT_UNARY = {"neg", "abs", "sqrt", "reciprocal", "softsign", "floor", "ceil", "round", "sign", "leaky_relu"}
EXACT_UNARY |= {"hard_sigmoid", "thresholded_relu", "hard_swish"}
SPECIAL_VALUES = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 100, -100, 88.7, 89, -104, 0.5, 1.5, 2.5, -2.5]
SPECIAL_VALUES += [1e-8, -1e-8, 1e-40, -1e-40, 0.75, -3, 3, 1, -1]


def unary_inputs(seed: int):
    """Random views of random values (magnitudes 1e-3 to 1e3, the special values planted): contiguous,
    NCHW over NHWC memory, strided, size-1 axes, a scalar."""
    rng = np.random.default_rng(seed)
    for shape in [(len(SPECIAL_VALUES),), (3, 1, 5), (2, 4, 6, 3), (1,), (), (9, 8)]:
        magnitude = 10.0 ** rng.uniform(-3, 3, shape)
        x = np.asarray(rng.choice([-1.0, 1.0], shape) * magnitude, np.float32)
        if x.ndim == 1 and x.size == len(SPECIAL_VALUES):
            x = np.array(SPECIAL_VALUES, np.float32)
        elif x.size > 8:
            x.reshape(-1)[rng.choice(x.size, 8, replace=False)] = rng.choice(SPECIAL_VALUES, 8)
        yield x
        if x.ndim == 4:
            yield x.transpose(0, 3, 1, 2)
        if x.ndim == 2:
            yield x[::2, 1::3]


@pytest.mark.parametrize("op", kernels.UNARY_OPS)
def test_unary_ops_against_twin(op):
    alpha, beta = UNARY_ATTRIBUTES.get(op, (0.0, 0.0))
    for x in unary_inputs(kernels.UNARY_OPS.index(op)):
        got = kernels.unary(op, x, alpha, beta)
        assert_ulp_close(got, slow.unary(op, x, alpha, beta), 0 if op in EXACT_UNARY else 1)
        assert np.isnan(got[np.isnan(x)]).all()
    assert kernels.unary(op, np.zeros((0, 3), np.float32)).shape == (0, 3)


def test_unary_ops_on_extremes():
    f32 = np.float32

    def run(op, values, alpha=0.0, beta=0.0):
        return kernels.unary(op, np.array(values, f32), alpha, beta)

    np.testing.assert_array_equal(
        run("softplus", [100, -100, 1e30, np.inf, -np.inf]), [100, f32(np.exp(-100.0)), f32(1e30), np.inf, 0]
    )
    assert run("softplus", [-100])[0] > 0  # a float32 subnormal, not 0: log1p, not log(1 + tiny)
    np.testing.assert_array_equal(run("exp", [89, -np.inf, np.inf, 0]), [np.inf, 0, np.inf, 1])
    np.testing.assert_array_equal(run("log", [0, 1, np.inf]), [-np.inf, 0, np.inf])
    assert np.isnan(run("log", [-1])).all() and np.isnan(run("sqrt", [-1])).all()
    np.testing.assert_array_equal(run("reciprocal", [0.0, -0.0, np.inf, 4]), [np.inf, -np.inf, 0, 0.25])
    np.testing.assert_array_equal(run("round", [0.5, 1.5, 2.5, -0.5, -2.5, 2.4999998, 3.5]), [0, 2, 2, 0, -2, 2, 4])
    np.testing.assert_array_equal(run("sign", [-3, -0.0, 0.0, 5, np.inf, -np.inf]), [-1, 0, 0, 1, 1, -1])
    np.testing.assert_array_equal(run("tanh", [np.inf, -np.inf, 30]), [1, -1, 1])
    np.testing.assert_array_equal(run("erf", [np.inf, -np.inf, 0]), [1, -1, 0])
    np.testing.assert_array_equal(run("softsign", [1, -3, 0]), [0.5, -0.75, 0])
    np.testing.assert_array_equal(run("elu", [-np.inf, 2, 0], 0.5), [-0.5, 2, 0])
    np.testing.assert_array_equal(run("selu", [-np.inf, 2], 2.0, 3.0), [-6, 6])
    np.testing.assert_array_equal(run("celu", [-np.inf, 2, -1e30], 0.5), [-0.5, 2, -0.5])
    np.testing.assert_array_equal(run("leaky_relu", [-2, 3, -np.inf], 0.25), [-0.5, 3, -np.inf])
    np.testing.assert_array_equal(run("hard_sigmoid", [-10, 0, 10, 1], 0.25, 0.5), [0, 0.5, 1, 0.75])
    np.testing.assert_array_equal(run("thresholded_relu", [0.75, 0.76, -5, 2], 0.75), [0, f32(0.76), 0, 2])
    np.testing.assert_array_equal(
        run("hard_swish", [-3, 3, 1.5, -np.inf]), [0, 3, 1.5 * 0.75, np.nan]
    )  # -inf * 0: the formula, as ONNX's reference
    np.testing.assert_array_equal(run("mish", [100, 0]), [100, 0])
    for op in kernels.UNARY_OPS:  # NaN stays NaN, whatever the formula's branches
        assert np.isnan(run(op, [np.nan], *UNARY_ATTRIBUTES.get(op, (0.0, 0.0)))).all(), op


def test_unary_refuses_bad_ops_dtypes_and_attributes():
    x = np.zeros(3, np.float32)
    cases = [
        (lambda: kernels.unary("gelu", x), r"unary: op must be one of \['tanh', 'exp',.*'mish'\], got 'gelu'"),
        (lambda: kernels.unary("tanh", np.zeros(3)), "x must be a float32 array, got float64"),
        (lambda: kernels.unary("tanh", [1.0]), "x must be a float32 array, got list"),
        (lambda: kernels.unary("elu", x, "1"), "elu: alpha must be a number, got '1'"),
        (lambda: kernels.unary("selu", x, 1.0, float("nan")), "selu: beta must be a number, got nan"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


BINARY_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (3, 1)),
    ((2, 1, 3), (1, 5, 1)),
    ((1,), (6,)),
    ((), (2, 3)),
    ((2, 16, 5, 5), (1, 16, 1, 1)),
]


def binary_operands(a_shape, b_shape, seed: int):
    """Random operands with NaN, +-inf and +-0 planted; b's integers make pow's negative bases real."""
    rng = np.random.default_rng(seed)
    a = np.asarray(rng.standard_normal(a_shape) * 4, np.float32)
    b = np.asarray(
        np.where(rng.random(b_shape) < 0.5, rng.integers(-3, 4, b_shape), rng.standard_normal(b_shape)), np.float32
    )
    for v in (a, b):
        if v.size >= 4:
            v.reshape(-1)[rng.choice(v.size, 4, replace=False)] = [np.nan, np.inf, -np.inf, -0.0]
    return a, b


@pytest.mark.parametrize("a_shape, b_shape", BINARY_SHAPES)
def test_max_min_pow_and_comparisons_broadcast_against_twin(a_shape, b_shape):
    a, b = binary_operands(a_shape, b_shape, len(a_shape) * 10 + len(b_shape))
    for x, y in ((a, b), (b, a)):
        assert_ulp_close(kernels.maximum(x, y), slow.maximum(x, y), 0)
        assert_ulp_close(kernels.minimum(x, y), slow.minimum(x, y), 0)
        assert_ulp_close(kernels.power(x, y), slow.power(x, y), 1)
        for op in kernels.COMPARISONS:
            got = kernels.compare(op, x, y)
            assert got.dtype == np.bool_
            np.testing.assert_array_equal(got, slow.compare(op, x, y))


def test_max_min_propagate_nan_and_comparisons_with_nan_are_false():
    a = np.array([np.nan, 1, np.nan, -np.inf, 0.0, np.inf], np.float32)
    b = np.array([1, np.nan, np.nan, np.nan, -0.0, np.inf], np.float32)
    for x, y in ((a, b), (b, a)):
        for kernel in (kernels.maximum, kernels.minimum):
            got = kernel(x, y)
            assert np.isnan(got[:4]).all()  # C fmax/fmin would give 1 and -inf here
            np.testing.assert_array_equal(got[4:], [0, np.inf])
    np.testing.assert_array_equal(kernels.compare("greater", a, b), [False] * 6)
    np.testing.assert_array_equal(kernels.compare("less", a, b), [False] * 6)
    np.testing.assert_array_equal(kernels.compare("equal", a, b), [False] * 4 + [True, True])  # 0 == -0
    np.testing.assert_array_equal(kernels.compare("greater_equal", a, b), [False] * 4 + [True, True])
    np.testing.assert_array_equal(kernels.compare("less_equal", a, b), [False] * 4 + [True, True])
    np.testing.assert_array_equal(
        kernels.power(
            np.array([2, -2, -8, 0, 0, 1, np.nan], np.float32), np.array([10, 3, 1 / 3, -1, 0, np.nan, 0], np.float32)
        ),
        [1024, -8, np.nan, np.inf, 1, 1, 1],  # C pow: pow(1, NaN) = pow(NaN, 0) = 1
    )


def test_comparisons_keep_the_memory_order_and_refuse_bad_input():
    nhwc = np.random.default_rng(3).standard_normal((2, 5, 6, 7)).astype(np.float32)
    threshold = np.linspace(-1, 1, 7, dtype=np.float32).reshape(1, 7, 1, 1)
    got = kernels.compare("greater", nhwc.transpose(0, 3, 1, 2), threshold)
    np.testing.assert_array_equal(got, nhwc.transpose(0, 3, 1, 2) > threshold)
    assert got.transpose(0, 2, 3, 1).flags.c_contiguous
    assert kernels.maximum(nhwc.transpose(0, 3, 1, 2), threshold).transpose(0, 2, 3, 1).flags.c_contiguous
    x = np.zeros((3, 4), np.float32)
    cases = [
        (lambda: kernels.compare("add", x, x), r"compare: op must be one of \['greater', .*'equal'\], got 'add'"),
        (lambda: kernels.compare("less", x, np.zeros(4)), "less: b must be a float32 array, got float64"),
        (lambda: kernels.maximum(np.zeros(4, np.int32), x), "max: a must be a float32 array, got int32"),
        (lambda: kernels.power(x, np.zeros(5, np.float32)), r"pow: shapes \(3, 4\) and \(5,\) do not broadcast"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


def reduce_inputs():
    """(x, axes): reduced axes adjacent in memory (read in place) and not, in NHWC memory seen as NCHW,
    strided views, size-1 axes, more than one 64-wide block of inner values."""
    rng = np.random.default_rng(8)
    nhwc = (rng.standard_normal((2, 5, 6, 7)) * 3).astype(np.float32)
    nchw_view = nhwc.transpose(0, 3, 1, 2)
    contiguous = (rng.standard_normal((2, 3, 4, 5)) * 3 + 1).astype(np.float32)
    yield from [
        (nchw_view, (2, 3)),  # global pooling: H, W adjacent in memory
        (nchw_view, (1,)),
        (nchw_view, (1, 3)),  # C, W: adjacent in NHWC memory
        (nchw_view, (0, 3)),  # N, W: not adjacent
        (contiguous, (0, 2)),
        (contiguous, (1, 2)),
        (contiguous, (-1,)),
        (contiguous, (0, 1, 2, 3)),
        (contiguous[:, ::2, 1:], (1, 3)),
        (rng.standard_normal((3, 1, 4)).astype(np.float32), (1,)),
        (rng.standard_normal((1, 1, 5)).astype(np.float32), (0, 1)),
        (rng.standard_normal((2, 3, 130)).astype(np.float32) * 50, (1,)),
        (rng.standard_normal(7).astype(np.float32), (0,)),
        (np.array([2.5], np.float32), (0,)),
    ]


@pytest.mark.parametrize("op", kernels.REDUCE_OPS)
def test_reduce_ops_against_twin(op):
    for x, axes in reduce_inputs():
        for keepdims in (True, False):
            got, want = kernels.reduce(op, x, axes, keepdims), slow.reduce(op, x, axes, keepdims)
            assert got.shape == want.shape and got.dtype == np.float32
            if op in ("max", "min"):
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_reduce_of_nan_inf_and_nothing():
    x = np.array([[1, np.nan, 3], [-np.inf, 2, np.inf], [np.nan, 1, 1], [-np.inf, -np.inf, -np.inf]], np.float32)
    for op in kernels.REDUCE_OPS:
        got = kernels.reduce(op, x, (1,), keepdims=False)
        assert_ulp_close(got, slow.reduce(op, x, (1,), keepdims=False), 1)
        assert np.isnan(got[:1]).all() and np.isnan(got[2:3]).all(), op  # a NaN anywhere (first or not) wins
    np.testing.assert_array_equal(kernels.reduce("max", x, (1,), False)[1:], [np.inf, np.nan, -np.inf])
    np.testing.assert_array_equal(kernels.reduce("min", x, (1,), False)[1:], [-np.inf, np.nan, -np.inf])
    np.testing.assert_array_equal(kernels.reduce("log_sum_exp", x, (1,), False)[[1, 3]], [np.inf, -np.inf])
    big = np.array([[1000, 1000], [-1000, -1000], [88, 89]], np.float32)
    np.testing.assert_allclose(
        kernels.reduce("log_sum_exp", big, (1,), False),
        [1000 + np.log(2), -1000 + np.log(2), 89 + np.log1p(np.exp(-1))],
        rtol=1e-7,
    )
    three_four = np.array([[-3, 4]], np.float32)
    for op, expected in [("l2", 5), ("sum_square", 25), ("l1", 7), ("sum", 1), ("mean", 0.5), ("max", 4), ("min", -3)]:
        assert kernels.reduce(op, three_four, (1,), False)[0] == expected, op
    empty = np.zeros((2, 0, 3), np.float32)
    nothing = {
        "mean": np.nan,
        "sum": 0,
        "max": -np.inf,
        "min": np.inf,
        "sum_square": 0,
        "l2": 0,
        "l1": 0,
        "log_sum_exp": -np.inf,
    }
    assert set(nothing) == set(kernels.REDUCE_OPS)
    for op, value in nothing.items():
        got = kernels.reduce(op, empty, (1,))
        np.testing.assert_array_equal(got, np.full((2, 1, 3), value, np.float32))
        np.testing.assert_array_equal(got, slow.reduce(op, empty, (1,)))
        assert kernels.reduce(op, empty, (0,), keepdims=False).shape == (0, 3)


def test_reduce_refuses_bad_ops_dtypes_and_axes():
    x = np.zeros((2, 3), np.float32)
    cases = [
        (
            lambda: kernels.reduce("prod", x, (0,)),
            r"reduce: op must be one of \['mean', 'sum',.*'log_sum_exp'\], got 'prod'",
        ),
        (lambda: kernels.reduce("max", np.zeros((2, 3)), (0,)), "reduce_max: x must be a float32 array, got float64"),
        (lambda: kernels.reduce("sum", x, ()), r"reduce_sum: axes must name at least one axis, got \[\]"),
        (
            lambda: kernels.reduce("l2", x, (0, -2)),
            r"reduce_l2: axes must be distinct and within 2 dimensions, got \[0, -2\]",
        ),
        (lambda: kernels.reduce("l1", x, ("a",)), r"reduce_l1: axes must be ints, got \('a',\)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 10), (2, 3, 1), (2, 3, 4, 5), (4, 1000)])
def test_log_softmax_against_twin(shape):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 20).astype(np.float32)
    got = kernels.log_softmax(x)
    np.testing.assert_allclose(got, slow.log_softmax(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.exp(got.astype(np.float64)).sum(axis=-1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.exp(got), kernels.softmax(x), rtol=1e-5, atol=1e-30)
    if x.ndim >= 2:
        view = x.swapaxes(0, -1)  # not contiguous: copied first
        np.testing.assert_array_equal(kernels.log_softmax(view), slow.log_softmax(view))


def test_log_softmax_on_extremes():
    x = np.array([[-1e30, -100, 0, 88, 100], [5, 5, 5, 5, 5], [1, np.nan, 0, 0, 0], [-np.inf, 0, 0, 0, 0]], np.float32)
    got = kernels.log_softmax(x)
    assert_ulp_close(got, slow.log_softmax(x), 1)
    np.testing.assert_allclose(got[0, :2], [-1e30, -200], rtol=1e-7)  # no exp overflow, no log(0)
    np.testing.assert_allclose(got[1], np.full(5, -np.log(5)), rtol=1e-7)
    assert np.isnan(got[2]).all() and got[3, 0] == -np.inf
    with pytest.raises(ValueError, match=r"x must be float32 with at least one axis, got \(\)"):
        kernels.log_softmax(np.ones((), np.float32))


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
    model.graph.node.append(helper.make_node("Hardmax", ["a"], ["e"]))
    model.graph.node.append(helper.make_node("LSTM", ["e", "w", "w"], ["l"]))
    with pytest.raises(ModelError) as info:
        ReferenceModel(model)
    message = str(info.value)
    assert "operator(s) Hardmax, LSTM" in message and "\n" not in message and "Conv" in message
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
