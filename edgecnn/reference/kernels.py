"""Checked wrappers over the C reference (csrc/ via the `_cref` binding): check, allocate, call.

Activations are NHWC float32, convolution weights HWIO (kernel_h, kernel_w, in, out),
dense weights (in_features, out_features). Padding is "valid", "same" (TensorFlow's
rule, ONNX SAME_UPPER: out = ceil(in / stride), the odd pad at the bottom/right),
"same_lower" (ONNX SAME_LOWER), or explicit (top, left, bottom, right). Inputs are
never cast: a wrong dtype or shape raises ValueError quoting what was received.
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import numpy as np

from edgecnn.reference import _cref

Padding = Union[str, Sequence[int]]
Window = tuple[int, int, int, int, int, int, int, int, int, int]

PADDING_MODES = {
    "valid": _cref.PAD_VALID,
    "same": _cref.PAD_SAME_UPPER,
    "same_upper": _cref.PAD_SAME_UPPER,
    "same_lower": _cref.PAD_SAME_LOWER,
}


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{what} must be an int or two ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def resolve_window(in_hw: tuple[int, int], kernel: int | Sequence[int], strides: int | Sequence[int] = 1,
                   padding: Padding = "valid", dilations: int | Sequence[int] = 1) -> Window:
    """The C window tuple (kernel, stride, dilation, pads top/left/bottom/right) for an in_hw input.

    The pads for "same"/"same_lower" come from ecnn_resolve_padding: the one rule that the
    kernels, the twins in `slow` and the tests share.
    """
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(strides, "strides")
    dh, dw = _pair(dilations, "dilations")
    if isinstance(padding, str):
        if padding.lower() not in PADDING_MODES:
            raise ValueError(f"padding must be one of {sorted(PADDING_MODES)} or 4 ints, got {padding!r}")
        mode, pads = PADDING_MODES[padding.lower()], (0, 0, 0, 0)
    else:
        pads = tuple(padding)
        if len(pads) != 4 or not all(isinstance(p, (int, np.integer)) for p in pads):
            raise ValueError(f"padding must be a mode or 4 ints (top, left, bottom, right), got {padding!r}")
        mode = _cref.PAD_EXPLICIT
    window = (kh, kw, sh, sw, dh, dw, *(int(p) for p in pads))
    try:
        return _cref.resolve_padding(mode, int(in_hw[0]), int(in_hw[1]), window)
    except ValueError as exc:
        raise ValueError(f"kernel {kh}x{kw}, strides {sh}x{sw}, dilations {dh}x{dw}, padding {padding!r} "
                         f"over a {in_hw[0]}x{in_hw[1]} input: {exc}") from None


def _check_nhwc(x: np.ndarray, what: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
        shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", type(x).__name__)
        raise ValueError(f"{what} must be NHWC float32, got shape {shape} dtype {dtype}")
    if x.size == 0:
        raise ValueError(f"{what} is empty: shape {x.shape}")
    return np.ascontiguousarray(x)


def _check_float(x: np.ndarray, ndim: int | None, what: str, shape: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or (ndim is not None and x.ndim != ndim):
        got_shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", type(x).__name__)
        raise ValueError(f"{what} must be {shape} float32, got shape {got_shape} dtype {dtype}")
    return np.ascontiguousarray(x)


def conv2d_output_shape(x_shape: Sequence[int], weights_shape: Sequence[int], strides: int | Sequence[int] = 1,
                        padding: Padding = "valid", dilations: int | Sequence[int] = 1) -> tuple[int, int, int, int]:
    """NHWC output shape of conv2d_nhwc (ecnn_conv2d_shape)."""
    window = resolve_window(x_shape[1:3], weights_shape[:2], strides, padding, dilations)
    try:
        return _cref.conv2d_shape(window, tuple(int(v) for v in x_shape), int(weights_shape[3]))
    except ValueError as exc:
        raise ValueError(f"conv2d of x {tuple(x_shape)} with weights {tuple(weights_shape)}: {exc}") from None


def pool2d_output_shape(x_shape: Sequence[int], pool: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None,
                        padding: Padding = "valid") -> tuple[int, int, int, int]:
    """NHWC output shape of the pooling kernels (ecnn_pool2d_shape); strides default to pool."""
    window = resolve_window(x_shape[1:3], pool, pool if strides is None else strides, padding)
    try:
        return _cref.pool2d_shape(window, tuple(int(v) for v in x_shape))
    except ValueError as exc:
        raise ValueError(f"pool {pool} over x {tuple(x_shape)}: {exc}") from None


def conv2d_nhwc(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None = None, strides: int | Sequence[int] = 1,
                padding: Padding = "valid", dilations: int | Sequence[int] = 1) -> np.ndarray:
    """x (N, H, W, C) conv weights (kh, kw, C, M) + bias (M,) -> (N, OH, OW, M) float32."""
    x = _check_nhwc(x)
    weights = _check_float(weights, 4, "weights", "HWIO (kh, kw, in, out)")
    if weights.shape[2] != x.shape[3]:
        raise ValueError(f"weights {weights.shape} expect {weights.shape[2]} input channels, x {x.shape} has {x.shape[3]}")
    if bias is not None:
        bias = _check_float(bias, 1, "bias", f"({weights.shape[3]},)")
        if bias.shape[0] != weights.shape[3]:
            raise ValueError(f"bias must be ({weights.shape[3]},) float32, got shape {bias.shape}")
    window = resolve_window(x.shape[1:3], weights.shape[:2], strides, padding, dilations)
    out = np.empty(_cref.conv2d_shape(window, x.shape, weights.shape[3]), dtype=np.float32)
    _cref.conv2d_nhwc(x, weights, bias, window, out)
    return out


def _pool(x: np.ndarray, pool: int | Sequence[int], strides: int | Sequence[int] | None,
          padding: Padding) -> tuple[np.ndarray, Window, np.ndarray]:
    x = _check_nhwc(x)
    window = resolve_window(x.shape[1:3], pool, pool if strides is None else strides, padding)
    try:
        shape = _cref.pool2d_shape(window, x.shape)
    except ValueError as exc:
        raise ValueError(f"pool {pool} over x {x.shape}: {exc}") from None
    return x, window, np.empty(shape, dtype=np.float32)


def max_pool2d_nhwc(x: np.ndarray, pool: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None,
                    padding: Padding = "valid") -> np.ndarray:
    """Max over pool windows of x (N, H, W, C); padding never wins; NaN in a window gives NaN."""
    x, window, out = _pool(x, pool, strides, padding)
    _cref.maxpool2d_nhwc(x, window, out)
    return out


def avg_pool2d_nhwc(x: np.ndarray, pool: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None,
                    padding: Padding = "valid", count_include_pad: bool = False) -> np.ndarray:
    """Mean over pool windows of x (N, H, W, C); by default over the taps inside x (TensorFlow, ONNX)."""
    x, window, out = _pool(x, pool, strides, padding)
    _cref.avgpool2d_nhwc(x, window, bool(count_include_pad), out)
    return out


def dense(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x (rows, K) @ weights (K, M) + bias (M,) -> (rows, M) float32."""
    x = _check_float(x, 2, "x", "(rows, in_features)")
    weights = _check_float(weights, 2, "weights", "(in_features, out_features)")
    if weights.shape[0] != x.shape[1]:
        raise ValueError(f"weights {weights.shape} expect {weights.shape[0]} input features, x {x.shape} has {x.shape[1]}")
    if bias is not None:
        bias = _check_float(bias, 1, "bias", f"({weights.shape[1]},)")
        if bias.shape[0] != weights.shape[1]:
            raise ValueError(f"bias must be ({weights.shape[1]},) float32, got shape {bias.shape}")
    out = np.empty((x.shape[0], weights.shape[1]), dtype=np.float32)
    if out.size and x.shape[1]:
        _cref.dense(x, weights, bias, out)
    elif out.size:
        out[:] = 0 if bias is None else bias
    return out


def _memory_order(x: np.ndarray) -> tuple[int, ...] | None:
    """Axes p with x.transpose(p) C-contiguous (a transposed view of contiguous memory), or None."""
    order = tuple(int(i) for i in np.argsort([-abs(s) for s in x.strides], kind="stable"))
    return order if x.transpose(order).flags.c_contiguous else None


def _unary(kernel: Callable[[np.ndarray, np.ndarray], None], x: np.ndarray, what: str) -> np.ndarray:
    """Apply an element-wise C kernel; the result keeps x's memory order (a transposed view stays one)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise ValueError(f"{what} must be a float32 array, got {getattr(x, 'dtype', type(x).__name__)}")
    order = _memory_order(x) or tuple(range(x.ndim))
    flat_in = np.ascontiguousarray(x.transpose(order))
    out = np.empty_like(flat_in)
    if out.size:
        kernel(flat_in.reshape(-1), out.reshape(-1))
    return out.transpose(np.argsort(order))


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0) element-wise (NaN stays NaN), any shape float32."""
    return _unary(_cref.relu, x, "x")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) element-wise, any shape float32 (computed in double, rounded once)."""
    return _unary(_cref.sigmoid, x, "x")


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of a float32 array of any rank >= 1."""
    if not isinstance(x, np.ndarray) or x.ndim < 1:
        raise ValueError(f"x must be float32 with at least one axis, got {getattr(x, 'shape', type(x).__name__)}")
    x = _check_float(x, x.ndim, "x", "an array of")
    out = np.empty(x.shape, dtype=np.float32)
    if out.size:
        cols = x.shape[-1]
        _cref.softmax(x.reshape(-1, cols), out.reshape(-1, cols))
    return out


def _binary(kernel: Callable[[np.ndarray, np.ndarray, np.ndarray], None], a: np.ndarray, b: np.ndarray, what: str) -> np.ndarray:
    """a (op) b with numpy broadcasting; the C kernel repeats b with a period (bias, scalar, same shape)."""
    for name, v in (("a", a), ("b", b)):
        if not isinstance(v, np.ndarray) or v.dtype != np.float32:
            raise ValueError(f"{what}: {name} must be a float32 array, got {getattr(v, 'dtype', type(v).__name__)}")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{what}: shapes {a.shape} and {b.shape} do not broadcast") from None
    if a.shape != shape:
        a, b = b, a  # both ops commute exactly in IEEE arithmetic
    out = np.empty(shape, dtype=np.float32)
    if out.size == 0:
        return out
    if a.shape == shape:
        squeezed = b.reshape(b.shape[next((i for i, d in enumerate(b.shape) if d != 1), b.ndim):])
        if b.size == 1 or shape[len(shape) - squeezed.ndim:] == squeezed.shape:
            period = np.ascontiguousarray(squeezed).reshape(-1)
            kernel(np.ascontiguousarray(a).reshape(-1), period, out.reshape(-1))
            return out
    # Any other broadcast: numpy lays both operands out in full, C does the arithmetic.
    full_a = np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1)
    full_b = np.ascontiguousarray(np.broadcast_to(b, shape)).reshape(-1)
    kernel(full_a, full_b, out.reshape(-1))
    return out


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b, float32, numpy broadcasting."""
    return _binary(_cref.add, a, b, "add")


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b, float32, numpy broadcasting."""
    return _binary(_cref.mul, a, b, "mul")
