"""Checked wrappers over the C reference (csrc/ via the `_cref` binding): check, allocate, call.

Activations are NHWC float32, convolution weights HWIO (kernel_h, kernel_w, in, out),
dense weights (in_features, out_features). Padding is "valid", "same" (TensorFlow's
rule, ONNX SAME_UPPER: out = ceil(in / stride), the odd pad at the bottom/right),
"same_lower" (ONNX SAME_LOWER), or explicit (top, left, bottom, right). Inputs are
never cast: a wrong dtype or shape raises ValueError quoting what was received.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

import edgecnn.reference._cref as _cref

Padding = str | Sequence[int]
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


def resolve_window(
    in_hw: Sequence[int],
    kernel: int | Sequence[int],
    strides: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilations: int | Sequence[int] = 1,
) -> Window:
    """The C window tuple (kernel, stride, dilation, pads top/left/bottom/right) for an in_hw input.

    The pads for "same"/"same_lower" come from ecnn_resolve_padding: the one rule that the
    kernels, the twins in `slow` and the tests share.
    """
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(strides, "strides")
    dh, dw = _pair(dilations, "dilations")
    pads: tuple[int, ...]
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
        raise ValueError(
            f"kernel {kh}x{kw}, strides {sh}x{sw}, dilations {dh}x{dw}, padding {padding!r} "
            f"over a {in_hw[0]}x{in_hw[1]} input: {exc}"
        ) from None


def _check_nhwc(x: np.ndarray, what: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
        shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", type(x).__name__)
        raise ValueError(f"{what} must be NHWC float32, got shape {shape} dtype {dtype}")
    if x.size == 0:
        raise ValueError(f"{what} is empty: shape {x.shape}")
    return np.ascontiguousarray(x)


def _check_f32(x: np.ndarray, what: str) -> np.ndarray:
    """x itself (any shape, any strides) if it is a float32 array."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise ValueError(f"{what} must be a float32 array, got {getattr(x, 'dtype', type(x).__name__)}")
    return x


def _check_float(x: np.ndarray, ndim: int | None, what: str, shape: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or (ndim is not None and x.ndim != ndim):
        got_shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", type(x).__name__)
        raise ValueError(f"{what} must be {shape} float32, got shape {got_shape} dtype {dtype}")
    return np.ascontiguousarray(x)


def conv2d_output_shape(
    x_shape: Sequence[int],
    weights_shape: Sequence[int],
    strides: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilations: int | Sequence[int] = 1,
    groups: int = 1,
) -> tuple[int, int, int, int]:
    """NHWC output shape of conv2d_nhwc (ecnn_grouped_conv2d_shape)."""
    window = resolve_window(x_shape[1:3], weights_shape[:2], strides, padding, dilations)
    try:
        return _cref.grouped_conv2d_shape(window, tuple(int(v) for v in x_shape), int(weights_shape[3]), int(groups))
    except ValueError as exc:
        raise ValueError(
            f"conv2d of x {tuple(x_shape)} with weights {tuple(weights_shape)}, groups {groups}: {exc}"
        ) from None


def conv2d_nhwc(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None = None,
    strides: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilations: int | Sequence[int] = 1,
    groups: int = 1,
) -> np.ndarray:
    """x (N, H, W, C) conv weights (kh, kw, C / groups, M) + bias (M,) -> (N, OH, OW, M) float32.

    With groups > 1, output channel m sees only the input channels of its group
    (m // (M / groups)); groups = C = M is a depthwise convolution.
    """
    x = _check_nhwc(x)
    weights = _check_float(weights, 4, "weights", "HWIO (kh, kw, in / groups, out)")
    if not isinstance(groups, (int, np.integer)) or groups < 1 or x.shape[3] % groups or weights.shape[3] % groups:
        raise ValueError(
            f"groups must be a positive int dividing the {x.shape[3]} input and {weights.shape[3]} "
            f"output channels, got {groups!r}"
        )
    if weights.shape[2] * groups != x.shape[3]:
        raise ValueError(
            f"weights {weights.shape} with groups {groups} expect {weights.shape[2] * groups} input "
            f"channels, x {x.shape} has {x.shape[3]}"
        )
    if bias is not None:
        bias = _check_float(bias, 1, "bias", f"({weights.shape[3]},)")
        if bias.shape[0] != weights.shape[3]:
            raise ValueError(f"bias must be ({weights.shape[3]},) float32, got shape {bias.shape}")
    window = resolve_window(x.shape[1:3], weights.shape[:2], strides, padding, dilations)
    try:
        shape = _cref.grouped_conv2d_shape(window, x.shape, weights.shape[3], int(groups))
    except ValueError as exc:
        raise ValueError(f"conv2d of x {x.shape} with weights {weights.shape}: {exc}") from None
    out = np.empty(shape, dtype=np.float32)
    _cref.grouped_conv2d_nhwc(x, weights, bias, int(groups), window, out)
    return out


def _pool(
    x: np.ndarray, pool: int | Sequence[int], strides: int | Sequence[int] | None, padding: Padding
) -> tuple[np.ndarray, Window, np.ndarray]:
    x = _check_nhwc(x)
    window = resolve_window(x.shape[1:3], pool, pool if strides is None else strides, padding)
    try:
        shape = _cref.pool2d_shape(window, x.shape)
    except ValueError as exc:
        raise ValueError(f"pool {pool} over x {x.shape}: {exc}") from None
    return x, window, np.empty(shape, dtype=np.float32)


def max_pool2d_nhwc(
    x: np.ndarray, pool: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None, padding: Padding = "valid"
) -> np.ndarray:
    """Max over pool windows of x (N, H, W, C); padding never wins; NaN in a window gives NaN."""
    x, window, out = _pool(x, pool, strides, padding)
    _cref.maxpool2d_nhwc(x, window, out)
    return out


def avg_pool2d_nhwc(
    x: np.ndarray,
    pool: int | Sequence[int] = 2,
    strides: int | Sequence[int] | None = None,
    padding: Padding = "valid",
    count_include_pad: bool = False,
) -> np.ndarray:
    """Mean over pool windows of x (N, H, W, C); by default over the taps inside x (TensorFlow, ONNX)."""
    x, window, out = _pool(x, pool, strides, padding)
    _cref.avgpool2d_nhwc(x, window, bool(count_include_pad), out)
    return out


def dense(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x (rows, K) @ weights (K, M) + bias (M,) -> (rows, M) float32."""
    x = _check_float(x, 2, "x", "(rows, in_features)")
    weights = _check_float(weights, 2, "weights", "(in_features, out_features)")
    if weights.shape[0] != x.shape[1]:
        raise ValueError(
            f"weights {weights.shape} expect {weights.shape[0]} input features, x {x.shape} has {x.shape[1]}"
        )
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
    _check_f32(x, what)
    order = _memory_order(x) or tuple(range(x.ndim))
    flat_in = np.asarray(x.transpose(order), order="C")  # 0-d stays 0-d (ascontiguousarray: 1-d)
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


UNARY_OPS = tuple(_cref.UNARY_OPS)


def _check_number(value: float, what: str) -> float:
    if not isinstance(value, (float, int, np.floating, np.integer)) or np.isnan(value):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def unary(op: str, x: np.ndarray, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    """op(x) element-wise, any shape float32, computed in double and rounded once; NaN gives NaN.

    op is one of UNARY_OPS, with ONNX's semantics; alpha and beta are the ONNX attributes of
    elu, leaky_relu, celu, thresholded_relu (alpha), hard_sigmoid (alpha, beta) and selu (alpha,
    gamma as beta), ignored by the others. The result keeps x's memory order.
    """
    if op not in _cref.UNARY_OPS:
        raise ValueError(f"unary: op must be one of {list(UNARY_OPS)}, got {op!r}")
    a, b = _check_number(alpha, f"{op}: alpha"), _check_number(beta, f"{op}: beta")
    return _unary(lambda flat, out: _cref.unary(op, flat, a, b, out), x, "x")


def _last_axis(kernel: Callable[[np.ndarray, np.ndarray], None], x: np.ndarray) -> np.ndarray:
    """Apply a C kernel to every row of a float32 array of any rank >= 1 (rows = its last axis)."""
    if not isinstance(x, np.ndarray) or x.ndim < 1:
        raise ValueError(f"x must be float32 with at least one axis, got {getattr(x, 'shape', type(x).__name__)}")
    x = _check_float(x, x.ndim, "x", "an array of")
    out = np.empty(x.shape, dtype=np.float32)
    if out.size:
        cols = x.shape[-1]
        kernel(x.reshape(-1, cols), out.reshape(-1, cols))
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of a float32 array of any rank >= 1."""
    return _last_axis(_cref.softmax, x)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """x - max - log(sum(exp(x - max))) over the last axis of a float32 array of any rank >= 1."""
    return _last_axis(_cref.log_softmax, x)


def clip(x: np.ndarray, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """min(max(x, lo), hi) element-wise, any shape float32: hi wherever lo > hi (ONNX Clip); NaN stays NaN."""
    low, high = _check_number(lo, "clip: lo"), _check_number(hi, "clip: hi")
    return _unary(lambda flat, out: _cref.clip(flat, low, high, out), x, "x")


def _axes_list(axes: Sequence[int], ndim: int, what: str) -> list[int]:
    """Axes normalised to 0..ndim-1, each once."""
    try:
        normal = [int(a) + ndim if int(a) < 0 else int(a) for a in axes]
    except (TypeError, ValueError):
        raise ValueError(f"{what}: axes must be ints, got {axes!r}") from None
    if any(not 0 <= a < ndim for a in normal) or len(set(normal)) != len(normal):
        raise ValueError(f"{what}: axes must be distinct and within {ndim} dimensions, got {list(axes)}")
    return normal


REDUCE_OPS = tuple(_cref.REDUCE_OPS)

# What each reduction of zero values gives (ONNX; the mean of nothing stays NaN).
_EMPTY_REDUCTION = {
    "mean": np.nan,
    "sum": 0.0,
    "max": -np.inf,
    "min": np.inf,
    "sum_square": 0.0,
    "l2": 0.0,
    "l1": 0.0,
    "log_sum_exp": -np.inf,
}


def reduce(op: str, x: np.ndarray, axes: Sequence[int], keepdims: bool = True) -> np.ndarray:
    """op (one of REDUCE_OPS) of float32 x over `axes` (at least one; negative counted from the end).

    Sums run in double; max and min give NaN where any value is NaN. Reducing zero values gives
    0 (sums, norms), -inf (max, log_sum_exp), +inf (min) or NaN (mean). When the reduced axes are
    neighbours in x's memory order (global pooling of NHWC memory, seen as NCHW or not) the C
    kernel reads x in place, and the result keeps that memory order; otherwise the reduced axes
    are moved last first.
    """
    if op not in _cref.REDUCE_OPS:
        raise ValueError(f"reduce: op must be one of {list(REDUCE_OPS)}, got {op!r}")
    what = f"reduce_{op}"
    x = _check_f32(x, f"{what}: x")
    reduced = sorted(_axes_list(axes, x.ndim, what))
    if not reduced:
        raise ValueError(f"{what}: axes must name at least one axis, got []")
    order = _memory_order(x)
    if order is None or max(order.index(a) for a in reduced) - min(order.index(a) for a in reduced) >= len(reduced):
        order = tuple([a for a in range(x.ndim) if a not in reduced] + reduced)
    memory = np.ascontiguousarray(x.transpose(order))  # a view when order is x's memory order
    first, last = min(order.index(a) for a in reduced), max(order.index(a) for a in reduced)
    outer, count, inner = (
        int(np.prod(memory.shape[:first])),
        int(np.prod(memory.shape[first : last + 1])),
        int(np.prod(memory.shape[last + 1 :])),
    )
    out = np.empty([1 if first <= p <= last else d for p, d in enumerate(memory.shape)], dtype=np.float32)
    if out.size and count:
        _cref.reduce(op, memory.reshape(outer, count, inner), out.reshape(outer, inner))
    elif out.size:
        out[...] = _EMPTY_REDUCTION[op]
    out = out.transpose(np.argsort(order))
    return out if keepdims else np.squeeze(out, axis=tuple(reduced))


def reduce_mean(x: np.ndarray, axes: Sequence[int], keepdims: bool = True) -> np.ndarray:
    """Mean of float32 x over `axes`: reduce("mean", ...); a mean over zero values is NaN."""
    return reduce("mean", x, axes, keepdims)


PAD_MODES = tuple(_cref.PAD_MODES)


def pad(
    x: np.ndarray, begin: Sequence[int], end: Sequence[int], mode: str = "constant", value: float = 0.0
) -> np.ndarray:
    """x (float32, 1 to 8 axes) padded by begin[d] values before and end[d] after each axis d; a
    negative pad crops. mode: "constant" (value), "reflect", "edge" or "wrap", as numpy.pad. The
    result keeps x's memory order (an NCHW view of NHWC memory stays NHWC underneath)."""
    x = _check_f32(x, "x")
    if mode not in _cref.PAD_MODES:
        raise ValueError(f"pad: mode must be one of {list(PAD_MODES)}, got {mode!r}")
    if len(begin) != x.ndim or len(end) != x.ndim or not 1 <= x.ndim <= _cref.MAX_DIMS:
        raise ValueError(
            f"pad: x of shape {x.shape} needs {x.ndim} begin and end pads (1 to {_cref.MAX_DIMS} axes), "
            f"got {list(begin)} and {list(end)}"
        )
    order = _memory_order(x) or tuple(range(x.ndim))
    memory = np.ascontiguousarray(x.transpose(order))
    pads = [np.array([int(p[a]) for a in order], dtype=np.int64) for p in (begin, end)]
    shape = np.array(memory.shape, dtype=np.int64)
    try:
        out_shape = _cref.pad_shape(shape, pads[0], pads[1])
    except ValueError as exc:
        raise ValueError(f"pad of x {x.shape} by {list(begin)} before and {list(end)} after: {exc}") from None
    out = np.empty(out_shape, dtype=np.float32)
    _cref.pad(memory.reshape(-1), shape, pads[0], pads[1], mode, float(value), out.reshape(-1))
    return out.transpose(np.argsort(order))


def _coalesce(shape: list[int], *strides: list[int]) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 axes and merge neighbours that every operand steps through as one axis, so that
    C runs fewer, longer rows; at least one axis remains."""
    dims = [(shape[d], [s[d] for s in strides]) for d in range(len(shape)) if shape[d] != 1]
    merged = dims[:1] or [(1, [0] * len(strides))]
    for size, steps in dims[1:]:
        last_size, last_steps = merged[-1]
        if all(outer == inner * size for outer, inner in zip(last_steps, steps, strict=True)):
            merged[-1] = (last_size * size, steps)
        else:
            merged.append((size, steps))
    return [m[0] for m in merged], [[m[1][i] for m in merged] for i in range(len(strides))]


def _binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (op) b, float32, numpy broadcasting, computed in C from strides (no broadcast copies).

    The result is laid out in the memory order of the operand that has the result's shape
    (so NCHW views of NHWC memory stay NHWC underneath); each operand is read in place
    when it is a transposed view of contiguous memory, else copied first.
    """
    for name, v in (("a", a), ("b", b)):
        _check_f32(v, f"{op}: {name}")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=np.float32)
    a, b = (v if _memory_order(v) is not None else np.ascontiguousarray(v) for v in (a, b))
    full = a if a.shape == shape else b if b.shape == shape else None
    order = (_memory_order(full) if full is not None else None) or tuple(range(len(shape)))
    out_memory = np.empty([shape[d] for d in order], dtype=np.float32)
    views = [np.broadcast_to(v, shape).transpose(order) for v in (a, b)]
    rows, (a_strides, b_strides) = _coalesce(list(out_memory.shape), *([s // 4 for s in v.strides] for v in views))
    if len(rows) > _cref.MAX_DIMS:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} need more than {_cref.MAX_DIMS} axes")
    bases = [v.transpose(_memory_order(v)).reshape(-1) for v in (a, b)]
    _cref.binary(
        op,
        np.array(rows, np.int64),
        bases[0],
        np.array(a_strides, np.int64),
        bases[1],
        np.array(b_strides, np.int64),
        out_memory.reshape(-1),
    )
    return out_memory.transpose(np.argsort(order))


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b, float32, numpy broadcasting."""
    return _binary("add", a, b)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b, float32, numpy broadcasting."""
    return _binary("sub", a, b)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b, float32, numpy broadcasting."""
    return _binary("mul", a, b)


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, float32, numpy broadcasting (IEEE: x / 0 is +-inf or NaN)."""
    return _binary("div", a, b)


def maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The larger of a and b, float32, numpy broadcasting; NaN if either is NaN (ONNX Max)."""
    return _binary("max", a, b)


def minimum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smaller of a and b, float32, numpy broadcasting; NaN if either is NaN (ONNX Min)."""
    return _binary("min", a, b)


def power(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a ** b, float32, numpy broadcasting: C pow in double, rounded once (a negative base to a
    non-integer power is NaN)."""
    return _binary("pow", a, b)


COMPARISONS = ("greater", "less", "greater_equal", "less_equal", "equal")
BINARY_OPS = tuple(op for op in _cref.BINARY_OPS if op not in COMPARISONS)


def compare(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (op) b as a bool array, float32 operands, numpy broadcasting; op one of COMPARISONS.
    Every comparison with NaN is false (IEEE)."""
    if op not in COMPARISONS:
        raise ValueError(f"compare: op must be one of {list(COMPARISONS)}, got {op!r}")
    return _binary(op, a, b) != 0
