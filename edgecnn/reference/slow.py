"""Slow, obviously correct numpy twins of `kernels`: same signatures, float64 sums.

Window sizes and pads come from `kernels.resolve_window` (the shared C rule); the
arithmetic shares nothing with csrc/. Tests compare the two over hard shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from edgecnn.reference.kernels import Padding, resolve_window


def _padded(x: np.ndarray, window: tuple[int, ...], fill: float) -> np.ndarray:
    top, left, bottom, right = window[6:10]
    return np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)


def _taps(padded: np.ndarray, window: tuple[int, ...], out_hw: tuple[int, int]):
    """Yield (ky, kx, slice of padded) for every kernel tap: the inputs that tap sees, per output pixel."""
    kh, kw, sh, sw, dh, dw = window[:6]
    oh, ow = out_hw
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, padded[:, y0 : y0 + (oh - 1) * sh + 1 : sh, x0 : x0 + (ow - 1) * sw + 1 : sw, :]


def _out_hw(in_hw: tuple[int, int], window: tuple[int, ...]) -> tuple[int, int]:
    kh, kw, sh, sw, dh, dw, top, left, bottom, right = window
    oh = (in_hw[0] + top + bottom - (kh - 1) * dh - 1) // sh + 1
    ow = (in_hw[1] + left + right - (kw - 1) * dw - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"window {window} does not fit a {in_hw[0]}x{in_hw[1]} input")
    return oh, ow


def conv2d_nhwc(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None = None,
    strides: int | Sequence[int] = 1,
    padding: Padding = "valid",
    dilations: int | Sequence[int] = 1,
    groups: int = 1,
) -> np.ndarray:
    window = resolve_window(x.shape[1:3], weights.shape[:2], strides, padding, dilations)
    oh, ow = _out_hw(x.shape[1:3], window)
    out = np.zeros((x.shape[0], oh, ow, weights.shape[3]), dtype=np.float64)
    cin_g, cout_g = x.shape[3] // groups, weights.shape[3] // groups
    for ky, kx, seen in _taps(_padded(x, window, 0.0), window, (oh, ow)):
        for g in range(groups):  # each group is an ordinary convolution of its own channels
            out[..., g * cout_g : (g + 1) * cout_g] += seen[..., g * cin_g : (g + 1) * cin_g] @ weights[
                ky, kx, :, g * cout_g : (g + 1) * cout_g
            ].astype(np.float64)
    if bias is not None:
        out += bias.astype(np.float64)
    return out.astype(np.float32)


def max_pool2d_nhwc(
    x: np.ndarray, pool: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None, padding: Padding = "valid"
) -> np.ndarray:
    window = resolve_window(x.shape[1:3], pool, pool if strides is None else strides, padding)
    oh, ow = _out_hw(x.shape[1:3], window)
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -np.inf)
    for _, _, seen in _taps(_padded(x, window, -np.inf), window, (oh, ow)):
        out = np.maximum(out, seen)  # propagates NaN
    return out.astype(np.float32)


def avg_pool2d_nhwc(
    x: np.ndarray,
    pool: int | Sequence[int] = 2,
    strides: int | Sequence[int] | None = None,
    padding: Padding = "valid",
    count_include_pad: bool = False,
) -> np.ndarray:
    window = resolve_window(x.shape[1:3], pool, pool if strides is None else strides, padding)
    oh, ow = _out_hw(x.shape[1:3], window)
    total = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    count = np.zeros((1, oh, ow, 1))
    inside = _padded(np.ones((1, *x.shape[1:3], 1)), window, 0.0)
    for (_, _, seen), (_, _, ones) in zip(
        _taps(_padded(x, window, 0.0), window, (oh, ow)), _taps(inside, window, (oh, ow)), strict=True
    ):
        total += seen
        count += ones
    if count_include_pad:
        count[:] = window[0] * window[1]
    return (total / count).astype(np.float32)


def dense(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    out = x.astype(np.float64) @ weights.astype(np.float64)
    if bias is not None:
        out += bias
    return out.astype(np.float32)


def relu(x: np.ndarray) -> np.ndarray:
    return np.where(x < 0, np.float32(0), x).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def _softplus(v: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, v)


# Each op of kernels.UNARY_OPS as its formula over float64 v, with attributes alpha and beta.
_UNARY: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "tanh": lambda v, alpha, beta: np.tanh(v),
    "exp": lambda v, alpha, beta: np.exp(v),
    "log": lambda v, alpha, beta: np.log(v),
    "sqrt": lambda v, alpha, beta: np.sqrt(v),
    "neg": lambda v, alpha, beta: -v,
    "abs": lambda v, alpha, beta: np.abs(v),
    "reciprocal": lambda v, alpha, beta: 1.0 / v,
    "erf": lambda v, alpha, beta: np.vectorize(math.erf, otypes=[np.float64])(v),
    "softsign": lambda v, alpha, beta: v / (1.0 + np.abs(v)),
    "softplus": lambda v, alpha, beta: _softplus(v),
    "sin": lambda v, alpha, beta: np.sin(v),
    "cos": lambda v, alpha, beta: np.cos(v),
    "floor": lambda v, alpha, beta: np.floor(v),
    "ceil": lambda v, alpha, beta: np.ceil(v),
    "round": lambda v, alpha, beta: np.round(v),  # half to even
    "sign": lambda v, alpha, beta: np.sign(v),
    "elu": lambda v, alpha, beta: np.where(v > 0, v, alpha * np.expm1(v)),
    "leaky_relu": lambda v, alpha, beta: np.where(v >= 0, v, alpha * v),
    "selu": lambda v, alpha, beta: beta * np.where(v > 0, v, alpha * np.exp(v) - alpha),
    "celu": lambda v, alpha, beta: np.maximum(0.0, v) + np.minimum(0.0, alpha * np.expm1(v / alpha)),
    "hard_sigmoid": lambda v, alpha, beta: np.clip(alpha * v + beta, 0.0, 1.0),
    "thresholded_relu": lambda v, alpha, beta: np.where((v > alpha) | np.isnan(v), v, 0.0),
    "hard_swish": lambda v, alpha, beta: v * np.clip(v / 6.0 + 0.5, 0.0, 1.0),
    "mish": lambda v, alpha, beta: v * np.tanh(_softplus(v)),
}


def unary(op: str, x: np.ndarray, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    with np.errstate(all="ignore"):  # the float32 cast may overflow to inf, as the kernel's does
        out = _UNARY[op](x.astype(np.float64), float(np.float32(alpha)), float(np.float32(beta)))
        return np.asarray(out).astype(np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(np.float32)


def clip(x: np.ndarray, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    return np.minimum(np.maximum(x, np.float32(lo)), np.float32(hi)).astype(np.float32)


def _log_sum_exp(v: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    top = np.max(v, axis=axes, keepdims=True, initial=-np.inf)
    shift = np.where(np.isfinite(top), top, 0.0)  # all -inf stays -inf, +inf stays +inf
    out = shift + np.log(np.sum(np.exp(v - shift), axis=axes, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axes)


def reduce(op: str, x: np.ndarray, axes: Sequence[int], keepdims: bool = True) -> np.ndarray:
    v, axes = x.astype(np.float64), tuple(int(a) % x.ndim for a in axes)
    with np.errstate(all="ignore"):
        if op == "mean":  # 0 / 0 = NaN for a mean over nothing
            out = np.sum(v, axis=axes, keepdims=keepdims) / math.prod(x.shape[a] for a in axes)
        elif op == "sum":
            out = np.sum(v, axis=axes, keepdims=keepdims)
        elif op == "max":
            out = np.max(v, axis=axes, keepdims=keepdims, initial=-np.inf)
        elif op == "min":
            out = np.min(v, axis=axes, keepdims=keepdims, initial=np.inf)
        elif op == "sum_square":
            out = np.sum(v * v, axis=axes, keepdims=keepdims)
        elif op == "l2":
            out = np.sqrt(np.sum(v * v, axis=axes, keepdims=keepdims))
        elif op == "l1":
            out = np.sum(np.abs(v), axis=axes, keepdims=keepdims)
        elif op == "log_sum_exp":
            out = _log_sum_exp(v, axes, keepdims)
        else:
            raise ValueError(f"reduce: unknown op {op!r}")
        return np.asarray(out).astype(np.float32)


def reduce_mean(x: np.ndarray, axes: Sequence[int], keepdims: bool = True) -> np.ndarray:
    return reduce("mean", x, axes, keepdims)


def pad(
    x: np.ndarray, begin: Sequence[int], end: Sequence[int], mode: str = "constant", value: float = 0.0
) -> np.ndarray:
    cropped = x[
        tuple(slice(max(-b, 0), x.shape[d] - max(-e, 0)) for d, (b, e) in enumerate(zip(begin, end, strict=True)))
    ]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end, strict=True)]
    if mode == "constant":
        return np.pad(cropped, widths, mode="constant", constant_values=np.float32(value))
    if mode == "reflect":
        return np.pad(cropped, widths, mode="reflect")
    if mode == "edge":
        return np.pad(cropped, widths, mode="edge")
    if mode == "wrap":
        return np.pad(cropped, widths, mode="wrap")
    raise ValueError(f"pad mode must be constant, reflect, edge or wrap, got {mode!r}")


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.add(a, b, dtype=np.float32)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.subtract(a, b, dtype=np.float32)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.multiply(a, b, dtype=np.float32)


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(a, b, dtype=np.float32)


def maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(a, b, dtype=np.float32)  # propagates NaN (np.fmax would not)


def minimum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.minimum(a, b, dtype=np.float32)


def power(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.power(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)


_COMPARISONS = {
    "greater": np.greater,
    "less": np.less,
    "greater_equal": np.greater_equal,
    "less_equal": np.less_equal,
    "equal": np.equal,
}


def compare(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(_COMPARISONS[op](a, b))
