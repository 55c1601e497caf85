"""Slow, obviously correct numpy twins of `kernels`: same signatures, float64 sums.

Window sizes and pads come from `kernels.resolve_window` (the shared C rule); the
arithmetic shares nothing with csrc/. Tests compare the two over hard shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def clip(x: np.ndarray, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    return np.minimum(np.maximum(x, np.float32(lo)), np.float32(hi)).astype(np.float32)


def reduce_mean(x: np.ndarray, axes: Sequence[int], keepdims: bool = True) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.mean(x.astype(np.float64), axis=tuple(axes), keepdims=keepdims).astype(np.float32)


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
