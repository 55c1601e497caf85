"""ONNX QuantizeLinear / DequantizeLinear on the C reference (csrc/quant.c), and their graph compilers.

`quantize_linear` and `dequantize_linear` are the checked wrappers (same contract as
the operators: per tensor, or per axis with a 1-D scale; zero point optional; uint8 and
int8 quantised types, and int32 for dequantising biases). `quant_slow` holds their
numpy twins. Importing this module registers both operators in
`edgecnn.reference.model.COMPILERS`,
which is how `ReferenceModel` runs QDQ graphs:
the integer tensors are exactly what the spec says, the float ops in between run on the
C float kernels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import edgecnn.reference._cref as _cref
from edgecnn.reference.kernels import _memory_order
from edgecnn.reference.model import COMPILERS, _Node

QUANT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))
DEQUANT_DTYPES = (*QUANT_DTYPES, np.dtype(np.int32))
_ONNX_TO_NP = {2: np.dtype(np.uint8), 3: np.dtype(np.int8)}  # TensorProto.UINT8, INT8


def _layout(
    x_shape: tuple[int, ...], scale: np.ndarray, zero_point: np.ndarray | None, axis: int, what: str
) -> tuple[int, int, int, int]:
    """(axis or -1 for per tensor, outer, channels, inner) after checking scale/zero_point against x."""
    if scale.dtype != np.float32 or scale.ndim > 1:
        raise ValueError(
            f"{what}: scale must be a float32 scalar or 1-D array, got shape {scale.shape} dtype {scale.dtype}"
        )
    if zero_point is not None and zero_point.size != scale.size:  # (1,) vs () is the same thing
        raise ValueError(f"{what}: zero_point must have scale's shape {scale.shape}, got {zero_point.shape}")
    if scale.size == 1:  # a scalar or a one-element vector: per tensor (onnx's reference, onnxruntime)
        return -1, 1, 1, int(np.prod(x_shape, dtype=np.int64))
    ax = axis + len(x_shape) if axis < 0 else axis
    if not 0 <= ax < len(x_shape) or x_shape[ax] != scale.size:
        raise ValueError(
            f"{what}: a per-axis scale of {scale.size} values needs x's axis {axis} to have that size, "
            f"got x shape {x_shape}"
        )
    outer = int(np.prod(x_shape[:ax], dtype=np.int64))
    inner = int(np.prod(x_shape[ax + 1 :], dtype=np.int64))
    return ax, outer, scale.size, inner


def _flat(x: np.ndarray, per_tensor: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    """x as contiguous 1-D memory plus the transpose that puts results back (per tensor: x's own order)."""
    order = (_memory_order(x) if per_tensor else None) or tuple(range(x.ndim))
    return np.ascontiguousarray(x.transpose(order)).reshape(-1), order


def quantize_linear(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray | None = None,
    axis: int = 1,
    dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """saturate(round_half_to_even(x / scale) + zero_point) as uint8 or int8 (zero_point's dtype,
    else `dtype`, else uint8); x float32 of any shape; a 1-D scale runs along `axis`."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise ValueError(f"quantize_linear: x must be a float32 array, got {getattr(x, 'dtype', type(x).__name__)}")
    scale = np.asarray(scale)
    out_dtype = np.dtype(zero_point.dtype if zero_point is not None else (dtype or np.uint8))
    if out_dtype not in QUANT_DTYPES:
        raise ValueError(f"quantize_linear: output type must be uint8 or int8, got {out_dtype}")
    ax, outer, channels, inner = _layout(x.shape, scale, zero_point, axis, "quantize_linear")
    flat, order = _flat(x, ax < 0)
    out = np.empty(flat.shape, dtype=out_dtype)
    if out.size:
        # Always an array (zeros when absent): the binding picks its uint8/int8 variant by its type.
        zp = np.zeros(channels, out_dtype) if zero_point is None else np.ascontiguousarray(zero_point).reshape(-1)
        _cref.quantize_linear(flat, outer, channels, inner, np.ascontiguousarray(scale).reshape(-1), zp, out)
    return out.reshape([x.shape[i] for i in order]).transpose(np.argsort(order))


def dequantize_linear(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, axis: int = 1
) -> np.ndarray:
    """((float)x - (float)zero_point) * scale as float32; x uint8, int8 or int32 of any shape."""
    if not isinstance(x, np.ndarray) or x.dtype not in DEQUANT_DTYPES:
        raise ValueError(
            f"dequantize_linear: x must be uint8, int8 or int32, got {getattr(x, 'dtype', type(x).__name__)}"
        )
    scale = np.asarray(scale)
    if zero_point is not None and zero_point.dtype != x.dtype:
        raise ValueError(f"dequantize_linear: zero_point must be {x.dtype} like x, got {zero_point.dtype}")
    ax, outer, channels, inner = _layout(x.shape, scale, zero_point, axis, "dequantize_linear")
    flat, order = _flat(x, ax < 0)
    out = np.empty(flat.shape, dtype=np.float32)
    if out.size:
        zp = np.zeros(channels, x.dtype) if zero_point is None else np.ascontiguousarray(zero_point).reshape(-1)
        _cref.dequantize_linear(flat, outer, channels, inner, np.ascontiguousarray(scale).reshape(-1), zp, out)
    return out.reshape([x.shape[i] for i in order]).transpose(np.argsort(order))


# ----- graph compilers -----


def _refuse_newer_attributes(node: _Node) -> None:
    node.only({"block_size": lambda v: v == 0, "saturate": lambda v: v == 1, "precision": lambda v: v == 0})


def _compile_quantize_linear(node: _Node) -> Callable:
    _refuse_newer_attributes(node)
    axis = int(node.attr("axis", 1))
    output_dtype = int(node.attr("output_dtype", 0))
    if output_dtype and output_dtype not in _ONNX_TO_NP:
        raise node.fail(f"output_dtype {output_dtype} is not uint8 or int8")
    zero_point = node.constant(2)
    if zero_point is not None and zero_point.dtype not in QUANT_DTYPES:
        raise node.fail(f"zero point type {zero_point.dtype} is not uint8 or int8")
    dtype = _ONNX_TO_NP.get(output_dtype)

    def run(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None) -> tuple[np.ndarray]:
        try:
            return (quantize_linear(x, scale, zp, axis, dtype),)
        except ValueError as exc:
            raise ValueError(f"{node.where()}: {exc}") from None

    return run


def _compile_dequantize_linear(node: _Node) -> Callable:
    _refuse_newer_attributes(node)
    axis = int(node.attr("axis", 1))
    for i, what in ((0, "input"), (2, "zero point")):
        value = node.constant(i)
        if value is not None and value.dtype not in DEQUANT_DTYPES:
            raise node.fail(f"{what} type {value.dtype} is not uint8, int8 or int32")

    def run(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None) -> tuple[np.ndarray]:
        try:
            return (dequantize_linear(x, scale, zp, axis),)
        except ValueError as exc:
            raise ValueError(f"{node.where()}: {exc}") from None

    return run


COMPILERS.update({"DequantizeLinear": _compile_dequantize_linear, "QuantizeLinear": _compile_quantize_linear})
