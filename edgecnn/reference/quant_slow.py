"""Slow, obviously correct numpy twins of `edgecnn.reference.quant`: same signatures.

Written from the ONNX operator definitions with numpy (np.rint rounds half to even);
they share nothing with csrc/quant.c.
"""

from __future__ import annotations

import numpy as np


def _broadcast(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    v = np.asarray(v)
    if v.size == 1 or ndim == 0:
        return v.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = v.size
    return v.reshape(shape)


def quantize_linear(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray | None = None,
    axis: int = 1,
    dtype: np.dtype | type | None = None,
) -> np.ndarray:
    out_dtype = np.dtype(zero_point.dtype if zero_point is not None else (dtype or np.uint8))
    info = np.iinfo(out_dtype)
    q = np.rint(x / _broadcast(scale, x.ndim, axis).astype(np.float32))  # float32 division, ties to even
    q = np.where(np.isnan(q), 0, np.clip(q, -1024, 1024)).astype(np.int64)
    if zero_point is not None:
        q = q + _broadcast(zero_point, x.ndim, axis).astype(np.int64)
    return np.clip(q, info.min, info.max).astype(out_dtype)


def dequantize_linear(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, axis: int = 1
) -> np.ndarray:
    zp = np.float32(0) if zero_point is None else _broadcast(zero_point, x.ndim, axis).astype(np.float32)
    return ((x.astype(np.float32) - zp) * _broadcast(scale, x.ndim, axis).astype(np.float32)).astype(np.float32)
