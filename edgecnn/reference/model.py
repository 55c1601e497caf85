"""Run an exported .onnx through the C reference, one ONNX node at a time.

Conv (dense, grouped, depthwise), pooling (windowed and global), ReduceMean, Pad,
MatMul/Gemm, activations, Clip and float Add/Sub/Mul/Div (numpy broadcasting) are
computed by the C kernels (`kernels`); numpy does only glue: shape arithmetic (Shape,
Gather, Cast, Slice, Concat, integer Add/Sub/Mul/Div/Clip), moving data (Concat and
Slice of activations, Reshape/Flatten/Squeeze/Unsqueeze, Transpose).

Whatever the C reference does not implement is refused by name with a one-line
ModelError, never computed approximately: an unknown operator or attribute when the
model is compiled, an unsupported dtype or shape when it runs.

Layout: ONNX Conv and pooling are NCHW, so tf2onnx wraps them in Transpose nodes;
the C kernels are NHWC. Transpose returns a numpy *view*, and Conv/pool hand the C
kernel `x.transpose(0, 2, 3, 1)`, which for the Transpose(0, 3, 1, 2) view of an
NHWC tensor is that NHWC memory again: no copy. The kernel's NHWC result goes back
out as an NCHW view, which the next Conv/pool/Relu uses as is and the closing
Transpose(0, 2, 3, 1) turns into plain NHWC memory. So the transposes fold away
without rewriting the graph, and every tensor still has its ONNX (logical) shape,
which is what the per-layer comparison against onnxruntime needs.

Never imports onnxruntime or TensorFlow.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edgecnn.errors import EdgecnnError, first_line
from edgecnn.reference import kernels


class ModelError(EdgecnnError):
    """The ONNX model is malformed or uses something the C reference does not implement.

    `op` names the operator(s) refused, when one is to blame.
    """

    def __init__(self, message: str, op: str = "") -> None:
        super().__init__(message)
        self.op = op


@dataclass(frozen=True)
class Step:
    """One compiled node: what it reads and writes, and the function that runs it."""

    index: int
    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable[..., tuple[np.ndarray, ...]]


class _Node:
    """A node plus the constants it may read, for the compile functions below."""

    def __init__(self, index: int, proto: onnx.NodeProto, constants: Mapping[str, np.ndarray], opset: int) -> None:
        self.index, self.proto, self.constants, self.opset = index, proto, constants, opset
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}

    def where(self) -> str:
        return f"node {self.index} ({self.proto.op_type} {self.proto.name!r})"

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.where()}: {what}", op=self.proto.op_type)

    def attr(self, name: str, default: Any) -> Any:
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def constant(self, i: int) -> np.ndarray | None:
        """Input i when it is an initializer (or absent: None)."""
        inputs = self.proto.input
        return self.constants.get(inputs[i]) if i < len(inputs) and inputs[i] else None

    def only(self, allowed: Mapping[str, Any]) -> None:
        """Refuse attribute values the C reference does not implement."""
        for name, ok in allowed.items():
            if name in self.attrs and not ok(self.attr(name, None)):
                raise self.fail(f"attribute {name}={self.attr(name, None)!r} is not supported")


# ----- windowed ops: Conv, MaxPool, AveragePool (NCHW views over NHWC memory) -----

_AUTO_PAD = {"NOTSET": None, "VALID": "valid", "SAME_UPPER": "same_upper", "SAME_LOWER": "same_lower"}


def _window_attrs(node: _Node) -> tuple[list[int], list[int], Any, list[int]]:
    kernel = list(node.attr("kernel_shape", []))
    strides = list(node.attr("strides", [1, 1]))
    dilations = list(node.attr("dilations", [1, 1]))
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in _AUTO_PAD:
        raise node.fail(f"auto_pad={auto_pad!r} is not one of {sorted(_AUTO_PAD)}")
    pads = list(node.attr("pads", [0, 0, 0, 0]))
    if len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
        raise node.fail("only 2-D windows are supported (strides, dilations: 2 values; pads: 4)")
    # ONNX pads are [y_begin, x_begin, y_end, x_end] = (top, left, bottom, right).
    padding = _AUTO_PAD[auto_pad] or tuple(int(p) for p in pads)
    return kernel, strides, padding, dilations


def _to_nhwc(x: np.ndarray, node: _Node) -> np.ndarray:
    if x.ndim != 4 or x.dtype != np.float32:
        raise node.fail(f"input must be NCHW float32, got shape {x.shape} dtype {x.dtype}")
    return x.transpose(0, 2, 3, 1)  # a view; C-contiguous when x came from NHWC memory


def _compile_conv(node: _Node) -> Callable:
    kernel, strides, padding, dilations = _window_attrs(node)
    groups = int(node.attr("group", 1))
    weights = node.constant(1)
    if weights is not None and (weights.ndim != 4 or weights.dtype != np.float32):
        raise node.fail(
            f"weights must be 4-D float32 (2-D convolution), got shape {weights.shape} dtype {weights.dtype}"
        )
    if weights is not None and kernel and list(weights.shape[2:]) != kernel:
        raise node.fail(f"kernel_shape {kernel} disagrees with weights {weights.shape}")
    # ONNX (out, in / group, kh, kw) -> HWIO (kh, kw, in / group, out)
    hwio = np.ascontiguousarray(weights.transpose(2, 3, 1, 0)) if weights is not None else None
    bias = node.constant(2)

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> tuple[np.ndarray]:
        if hwio is None and w.ndim != 4:
            raise node.fail(f"only 2-D convolution is supported, got weights of shape {w.shape}")
        w_hwio = hwio if hwio is not None else np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        b = bias if bias is not None else b
        out = kernels.conv2d_nhwc(_to_nhwc(x, node), w_hwio, b, strides, padding, dilations, groups)
        return (out.transpose(0, 3, 1, 2),)

    return run


def _compile_pool(node: _Node) -> Callable:
    kernel, strides, padding, dilations = _window_attrs(node)
    if len(kernel) != 2:
        raise node.fail(f"only 2-D pooling is supported, got kernel_shape {kernel}")
    node.only(
        {"ceil_mode": lambda v: v == 0, "dilations": lambda v: list(v) == [1, 1], "storage_order": lambda v: v == 0}
    )
    if len(node.proto.output) > 1 and node.proto.output[1]:
        raise node.fail("the Indices output is not supported")
    if node.proto.op_type == "MaxPool":

        def pool(x: np.ndarray) -> np.ndarray:
            return kernels.max_pool2d_nhwc(x, kernel, strides, padding)
    else:
        include_pad = bool(node.attr("count_include_pad", 0))

        def pool(x: np.ndarray) -> np.ndarray:
            return kernels.avg_pool2d_nhwc(x, kernel, strides, padding, include_pad)

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        return (pool(_to_nhwc(x, node)).transpose(0, 3, 1, 2),)

    return run


def _compile_global_average_pool(node: _Node) -> Callable:
    def run(x: np.ndarray) -> tuple[np.ndarray]:
        if x.dtype != np.float32 or x.ndim < 3:
            raise node.fail(f"input must be float32 (N, C, spatial...), got shape {x.shape} dtype {x.dtype}")
        return (kernels.reduce_mean(x, range(2, x.ndim), keepdims=True),)

    return run


def _compile_reduce_mean(node: _Node) -> Callable:
    keepdims = bool(node.attr("keepdims", 1))
    noop_when_empty = bool(node.attr("noop_with_empty_axes", 0))

    def run(x: np.ndarray, axes_input: np.ndarray | None = None) -> tuple[np.ndarray]:
        if x.dtype != np.float32:
            raise node.fail(f"only float32 is supported, got {x.dtype}")
        axes = _axes(node, axes_input)
        if not axes:
            if noop_when_empty:
                return (x,)
            axes = list(range(x.ndim))
        if x.ndim == 0:
            return (x.copy(),)
        return (kernels.reduce_mean(x, axes, keepdims),)

    return run


# ----- dense ops -----


def _matmul_2d(node: _Node, a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    if a.ndim < 2 or b.ndim != 2 or a.shape[-1] != b.shape[0]:
        raise node.fail(f"only (..., K) @ (K, M) is supported, got {a.shape} @ {b.shape}")
    out = kernels.dense(np.ascontiguousarray(a).reshape(-1, a.shape[-1]), b, bias)
    return out.reshape(*a.shape[:-1], b.shape[1])


def _compile_matmul(node: _Node) -> Callable:
    def run(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
        if b.ndim == 2 and a.ndim >= 2:
            return (_matmul_2d(node, a, b),)  # one C call for every row of every batch
        return (_batched_matmul(node, a, b),)

    return run


def _compile_gemm(node: _Node) -> Callable:
    node.only({"alpha": lambda v: v == 1.0, "beta": lambda v: v == 1.0, "transA": lambda v: v == 0})
    trans_b = bool(node.attr("transB", 0))

    def run(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> tuple[np.ndarray]:
        b = np.ascontiguousarray(b.T) if trans_b else b
        if a.ndim != 2:
            raise node.fail(f"A must be 2-D, got shape {a.shape}")
        if c is not None and c.size == b.shape[1] and c.ndim <= 2 and (c.ndim < 2 or c.shape[0] == 1):
            return (_matmul_2d(node, a, b, np.ascontiguousarray(c).reshape(-1)),)
        out = _matmul_2d(node, a, b)
        return (kernels.add(out, c) if c is not None else out,)

    return run


# ----- element-wise math (C) -----


def _compile_unary(kernel: Callable[[np.ndarray], np.ndarray]) -> Callable[[_Node], Callable]:
    def compile_(node: _Node) -> Callable:
        def run(x: np.ndarray) -> tuple[np.ndarray]:
            return (kernel(x),)

        return run

    return compile_


def _compile_binary(
    kernel: Callable[[np.ndarray, np.ndarray], np.ndarray], glue: Callable
) -> Callable[[_Node], Callable]:
    def compile_(node: _Node) -> Callable:
        def run(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
            if a.dtype == np.float32 and b.dtype == np.float32:
                return (kernel(a, b),)
            if a.dtype.kind in "iu" and b.dtype.kind in "iu":
                return (glue(a, b).astype(np.result_type(a, b)),)  # shape arithmetic
            raise node.fail(f"operands must both be float32 (or both integer), got {a.dtype} and {b.dtype}")

        return run

    return compile_


def _divide_integers(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division truncating toward zero (C, and so ONNX runtimes), not numpy's floor."""
    quotient = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -quotient, quotient)


def _compile_softmax(node: _Node) -> Callable:
    axis = int(node.attr("axis", -1 if node.opset >= 13 else 1))

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        ax = axis + x.ndim if axis < 0 else axis
        if node.opset < 13:  # softmax over the flattened axes [axis, ...)
            return (kernels.softmax(x.reshape(int(np.prod(x.shape[:ax])), -1)).reshape(x.shape),)
        return (np.moveaxis(kernels.softmax(np.moveaxis(x, ax, -1)), -1, ax),)

    return run


def _compile_clip(node: _Node) -> Callable:
    legacy = node.opset < 11  # bounds are attributes before opset 11, optional inputs after
    bounds = (node.attr("min", -np.inf), node.attr("max", np.inf))

    def run(x: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> tuple[np.ndarray]:
        given = bounds if legacy else (lo, hi)
        if any(b is not None and not legacy and b.size != 1 for b in given):
            raise node.fail(
                f"min and max must be scalars, got shapes {[None if b is None else b.shape for b in given]}"
            )
        if x.dtype == np.float32:
            low, high = (
                float(np.asarray(b).reshape(-1)[0]) if b is not None else d
                for b, d in zip(given, (-np.inf, np.inf), strict=True)
            )
            return (kernels.clip(x, low, high),)
        if x.dtype.kind in "iu":  # shape arithmetic
            lower, upper = (np.asarray(b).reshape(-1)[0] if b is not None else None for b in given)
            out = x if lower is None else np.maximum(x, lower)
            return ((out if upper is None else np.minimum(out, upper)).astype(x.dtype),)
        raise node.fail(f"only float32 and integer inputs are supported, got {x.dtype}")

    return run


_PAD_MODES = {"constant", "reflect", "edge", "wrap"}


def _compile_pad(node: _Node) -> Callable:
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise node.fail(f"mode {mode!r} is not supported (supported: {sorted(_PAD_MODES)})")
    legacy = node.opset < 11  # pads and value are attributes before opset 11, inputs after

    def run(
        x: np.ndarray, pads: np.ndarray | None = None, value: np.ndarray | None = None, axes: np.ndarray | None = None
    ) -> tuple[np.ndarray]:
        if x.dtype != np.float32:
            raise node.fail(f"only float32 is supported, got {x.dtype}")
        pads = np.asarray(node.attr("pads", []) if legacy else pads, dtype=np.int64).reshape(-1)
        fill = float(node.attr("value", 0.0)) if legacy else float(value.reshape(-1)[0]) if value is not None else 0.0
        picked = list(range(x.ndim)) if axes is None else [int(a) + x.ndim if a < 0 else int(a) for a in axes]
        if len(pads) != 2 * len(picked):
            raise node.fail(f"pads {pads.tolist()} do not fit axes {picked} of a {x.ndim}-D input")
        begin, end = [0] * x.ndim, [0] * x.ndim
        for i, a in enumerate(picked):
            begin[a], end[a] = int(pads[i]), int(pads[i + len(picked)])
        return (kernels.pad(x, begin, end, mode, fill),)

    return run


# ----- glue (numpy) -----


def _compile_transpose(node: _Node) -> Callable:
    perm = node.attr("perm", None)

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        return (x.transpose(perm if perm is not None else tuple(reversed(range(x.ndim)))),)

    return run


def _compile_reshape(node: _Node) -> Callable:
    allow_zero = bool(node.attr("allowzero", 0))

    def run(x: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray]:
        target = [int(v) for v in shape]
        if not allow_zero:
            target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
        try:
            return (x.reshape(target),)
        except ValueError:
            raise node.fail(f"cannot reshape {x.shape} to {list(shape)}") from None

    return run


def _compile_flatten(node: _Node) -> Callable:
    axis = int(node.attr("axis", 1))

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        ax = axis + x.ndim if axis < 0 else axis
        return (x.reshape(int(np.prod(x.shape[:ax])), -1),)

    return run


def _compile_shape(node: _Node) -> Callable:
    start, end = node.attr("start", 0), node.attr("end", None)

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        return (np.array(x.shape[start:end], dtype=np.int64),)

    return run


def _compile_gather(node: _Node) -> Callable:
    axis = int(node.attr("axis", 0))

    def run(x: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray]:
        return (np.take(x, np.where(indices < 0, indices + x.shape[axis], indices), axis=axis),)

    return run


# numpy casts to these exactly as ONNX says (round to nearest even); `saturate` only concerns
# float8 targets, which are refused.
_CAST_TARGETS = {
    getattr(TensorProto, t): t
    for t in (
        "BOOL",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "FLOAT16",
        "FLOAT",
        "DOUBLE",
    )
}


def _compile_cast(node: _Node) -> Callable:
    to = node.attr("to", None)
    if to not in _CAST_TARGETS:
        name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else repr(to)
        raise node.fail(f"cast to {name} is not supported (supported: {', '.join(_CAST_TARGETS.values())})")
    dtype = onnx.helper.tensor_dtype_to_np_dtype(to)

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        if x.dtype.kind not in "biuf":
            raise node.fail(f"cast from {x.dtype} is not supported")
        return (x.astype(dtype),)

    return run


def _compile_slice(node: _Node) -> Callable:
    def run(
        x: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        axes: np.ndarray | None = None,
        steps: np.ndarray | None = None,
    ) -> tuple[np.ndarray]:
        axis_list = range(len(starts)) if axes is None else [int(a) + x.ndim if a < 0 else int(a) for a in axes]
        step_list = [1] * len(starts) if steps is None else steps
        index = [slice(None)] * x.ndim
        for a, s, e, st in zip(axis_list, starts, ends, step_list, strict=True):
            index[a] = slice(int(s), int(e), int(st))
        return (x[tuple(index)],)

    return run


def _compile_concat(node: _Node) -> Callable:
    axis = int(node.attr("axis", 0))

    def run(*xs: np.ndarray) -> tuple[np.ndarray]:
        return (np.concatenate(xs, axis=axis),)

    return run


def _axes(node: _Node, given: np.ndarray | None) -> list[int] | None:
    value = given if given is not None else node.attr("axes", None)
    return None if value is None else [int(a) for a in value]


def _compile_squeeze(node: _Node) -> Callable:
    def run(x: np.ndarray, axes: np.ndarray | None = None) -> tuple[np.ndarray]:
        ax = _axes(node, axes)
        return (np.squeeze(x, axis=None if ax is None else tuple(ax)),)

    return run


def _compile_unsqueeze(node: _Node) -> Callable:
    def run(x: np.ndarray, axes: np.ndarray | None = None) -> tuple[np.ndarray]:
        return (np.expand_dims(x, tuple(_axes(node, axes) or ())),)

    return run


def _compile_identity(node: _Node) -> Callable:
    return lambda x: (x,)


def _compile_constant(node: _Node) -> Callable:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attrs:
            raw = node.attrs[key]
            value = (
                numpy_helper.to_array(raw)
                if key == "value"
                else np.array(raw, dtype=np.float32 if "float" in key else np.int64)
            )
            return lambda: (value,)
    raise node.fail(f"only value/value_float(s)/value_int(s) constants are supported, got {sorted(node.attrs)}")


# ----- element-wise math beyond the basics: activations, comparisons, Max/Min/Pow (C) -----

# ONNX op -> (kernels.unary op, attribute defaults (alpha, beta) as ONNX gives them)
_UNARY = {
    "Abs": ("abs", None),
    "Ceil": ("ceil", None),
    "Cos": ("cos", None),
    "Erf": ("erf", None),
    "Exp": ("exp", None),
    "Floor": ("floor", None),
    "Log": ("log", None),
    "Neg": ("neg", None),
    "Reciprocal": ("reciprocal", None),
    "Round": ("round", None),
    "Sign": ("sign", None),
    "Sin": ("sin", None),
    "Softplus": ("softplus", None),
    "Softsign": ("softsign", None),
    "Sqrt": ("sqrt", None),
    "Tanh": ("tanh", None),
    "HardSwish": ("hard_swish", None),
    "Mish": ("mish", None),
    "Celu": ("celu", (("alpha", 1.0),)),
    "Elu": ("elu", (("alpha", 1.0),)),
    "HardSigmoid": ("hard_sigmoid", (("alpha", 0.2), ("beta", 0.5))),
    "LeakyRelu": ("leaky_relu", (("alpha", 0.01),)),
    "Selu": ("selu", (("alpha", 1.67326319217681884765625), ("gamma", 1.05070102214813232421875))),
    "ThresholdedRelu": ("thresholded_relu", (("alpha", 1.0),)),
}
# Unary ops that also appear in shape arithmetic on integers (numpy glue there).
_INTEGER_UNARY = {"Abs": np.abs, "Neg": np.negative, "Sign": np.sign}


def _compile_math(node: _Node) -> Callable:
    op, defaults = _UNARY[node.proto.op_type]
    alpha, beta = ([float(node.attr(name, value)) for name, value in defaults or ()] + [0.0, 0.0])[:2]
    glue = _INTEGER_UNARY.get(node.proto.op_type)

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        if x.dtype == np.float32:
            return (kernels.unary(op, x, alpha, beta),)
        if glue is not None and x.dtype.kind in "iu":
            return (glue(x).astype(x.dtype),)
        raise node.fail(f"only float32{' and integer' if glue else ''} inputs are supported, got {x.dtype}")

    return run


def _compile_variadic(kernel: Callable, glue: Callable) -> Callable[[_Node], Callable]:
    """Max, Min: any number of inputs, broadcast, folded left to right."""

    def compile_(node: _Node) -> Callable:
        def run(*xs: np.ndarray) -> tuple[np.ndarray]:
            if all(x.dtype == np.float32 for x in xs):
                out = xs[0]
                for x in xs[1:]:
                    out = kernel(out, x)
                return (out,)
            if all(x.dtype.kind in "iu" for x in xs):
                return (functools.reduce(glue, xs).astype(np.result_type(*xs)),)
            raise node.fail(f"inputs must all be float32 (or all integer), got {[str(x.dtype) for x in xs]}")

        return run

    return compile_


def _compile_pow(node: _Node) -> Callable:
    def run(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray]:
        if x.dtype != np.float32 or y.dtype.kind not in "fiu":
            raise node.fail(f"only a float32 base is supported, got {x.dtype} ** {y.dtype}")
        return (kernels.power(x, y.astype(np.float32)),)  # an integer exponent is exact in float32

    return run


_COMPARISONS = {
    "Equal": ("equal", np.equal),
    "Greater": ("greater", np.greater),
    "GreaterOrEqual": ("greater_equal", np.greater_equal),
    "Less": ("less", np.less),
    "LessOrEqual": ("less_equal", np.less_equal),
}


def _compile_comparison(node: _Node) -> Callable:
    op, glue = _COMPARISONS[node.proto.op_type]

    def run(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
        if a.dtype == np.float32 and b.dtype == np.float32:
            return (kernels.compare(op, a, b),)
        if a.dtype.kind in "biu" and b.dtype.kind in "biu":
            return (glue(a, b),)  # masks and shape arithmetic
        raise node.fail(f"operands must both be float32 (or both integer or bool), got {a.dtype} and {b.dtype}")

    return run


_LOGICAL = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}


def _compile_logical(node: _Node) -> Callable:
    glue = _LOGICAL[node.proto.op_type]

    def run(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
        return (glue(a, b),)

    return run


def _compile_not(node: _Node) -> Callable:
    def run(x: np.ndarray) -> tuple[np.ndarray]:
        if x.dtype != np.bool_:
            raise node.fail(f"input must be bool, got {x.dtype}")
        return (np.logical_not(x),)

    return run


def _compile_where(node: _Node) -> Callable:
    def run(condition: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray]:
        if condition.dtype != np.bool_:
            raise node.fail(f"the condition must be bool, got {condition.dtype}")
        return (np.where(condition, x, y),)  # picks values: no arithmetic

    return run


def _compile_log_softmax(node: _Node) -> Callable:
    axis = int(node.attr("axis", -1 if node.opset >= 13 else 1))
    if node.opset < 13:
        raise node.fail(f"LogSoftmax before opset 13 (over flattened axes) is not supported, opset {node.opset}")

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        ax = axis + x.ndim if axis < 0 else axis
        return (np.moveaxis(kernels.log_softmax(np.moveaxis(x, ax, -1)), -1, ax),)

    return run


# ----- reductions (C for float32, numpy glue for integer shape arithmetic) -----

_REDUCE = {
    "ReduceL1": ("l1", None),
    "ReduceL2": ("l2", None),
    "ReduceLogSumExp": ("log_sum_exp", None),
    "ReduceMax": ("max", np.max),
    "ReduceMin": ("min", np.min),
    "ReduceProd": (None, np.prod),
    "ReduceSum": ("sum", np.sum),
    "ReduceSumSquare": ("sum_square", None),
}


def _compile_reduce(node: _Node) -> Callable:
    op, glue = _REDUCE[node.proto.op_type]
    keepdims = bool(node.attr("keepdims", 1))
    noop_when_empty = bool(node.attr("noop_with_empty_axes", 0))

    def run(x: np.ndarray, axes_input: np.ndarray | None = None) -> tuple[np.ndarray]:
        axes = _axes(node, axes_input)
        if not axes:
            if noop_when_empty:
                return (x,)
            axes = list(range(x.ndim))
        if x.dtype == np.float32 and op is not None:
            return (kernels.reduce(op, x, axes, keepdims) if x.ndim else x.copy(),)
        if x.dtype.kind in "iu" and glue is not None:
            return (np.asarray(glue(x, axis=tuple(axes), keepdims=keepdims)).astype(x.dtype),)
        supported = " and ".join(kind for kind, ok in (("float32", op), ("integers", glue)) if ok is not None)
        raise node.fail(f"{x.dtype} inputs are not supported ({supported} are)")

    return run


def _compile_global_max_pool(node: _Node) -> Callable:
    def run(x: np.ndarray) -> tuple[np.ndarray]:
        if x.dtype != np.float32 or x.ndim < 3:
            raise node.fail(f"input must be float32 (N, C, spatial...), got shape {x.shape} dtype {x.dtype}")
        return (kernels.reduce("max", x, range(2, x.ndim), keepdims=True),)

    return run


def _batched_matmul(node: _Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy.matmul semantics (1-D operands promoted, batch axes broadcast): one C dense call per matrix."""
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise node.fail(f"operands must be float32, got {a.dtype} and {b.dtype}")
    a2, b2 = (a[None, :] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    if a2.shape[-1] != b2.shape[-2]:
        raise node.fail(f"shapes {a.shape} and {b.shape} do not multiply")
    try:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise node.fail(f"batch axes of {a.shape} and {b.shape} do not broadcast") from None
    a_full = np.broadcast_to(a2, (*batch, *a2.shape[-2:]))
    b_full = np.broadcast_to(b2, (*batch, *b2.shape[-2:]))
    out = np.empty((*batch, a2.shape[-2], b2.shape[-1]), dtype=np.float32)
    for index in np.ndindex(*batch):
        out[index] = kernels.dense(np.ascontiguousarray(a_full[index]), np.ascontiguousarray(b_full[index]))
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


# ----- ConvTranspose: zeros between the input's pixels, then a Conv with the flipped kernel (C) -----


def _compile_conv_transpose(node: _Node) -> Callable:
    kernel = list(node.attr("kernel_shape", []))
    strides = list(node.attr("strides", [1, 1]))
    dilations = list(node.attr("dilations", [1, 1]))
    output_padding = list(node.attr("output_padding", [0, 0]))
    output_shape = node.attr("output_shape", None)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if int(node.attr("group", 1)) != 1:
        raise node.fail(f"group={node.attr('group', 1)} is not supported (only 1)")
    if auto_pad not in ("NOTSET", "VALID") and output_shape is None:
        raise node.fail(f"auto_pad={auto_pad!r} is not supported without output_shape")
    if len(strides) != 2 or len(dilations) != 2 or len(output_padding) != 2:
        raise node.fail("only 2-D transposed convolutions are supported (strides, dilations, output_padding: 2)")
    given_pads = [int(p) for p in node.attr("pads", [0, 0, 0, 0])] if auto_pad == "NOTSET" else [0, 0, 0, 0]

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> tuple[np.ndarray]:
        if w.ndim != 4 or x.ndim != 4 or w.shape[0] != x.shape[1]:
            raise node.fail(f"only 2-D NCHW input and (C, M, kh, kw) weights are supported, got {x.shape}, {w.shape}")
        if kernel and list(w.shape[2:]) != kernel:
            raise node.fail(f"kernel_shape {kernel} disagrees with weights {w.shape}")
        pads = list(given_pads)
        extent = [(w.shape[2 + i] - 1) * dilations[i] + 1 for i in range(2)]
        full = [strides[i] * (x.shape[2 + i] - 1) + output_padding[i] + extent[i] for i in range(2)]
        if output_shape is not None:  # pads follow from the requested size (the odd one first, unless SAME_UPPER)
            total = [full[i] - int(output_shape[-2 + i]) for i in range(2)]
            if auto_pad == "SAME_UPPER":
                pads = [total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2]
            else:
                pads = [total[0] - total[0] // 2, total[1] - total[1] // 2, total[0] // 2, total[1] // 2]
        nhwc = _to_nhwc(x, node)
        n, h, wd, c = nhwc.shape
        spread = np.zeros((n, (h - 1) * strides[0] + 1, (wd - 1) * strides[1] + 1, c), dtype=np.float32)
        spread[:, :: strides[0], :: strides[1], :] = nhwc  # moving data: the zeros a stride leaves between taps
        begin = [0, extent[0] - 1 - pads[0], extent[1] - 1 - pads[1], 0]
        end = [0, extent[0] - 1 - pads[2] + output_padding[0], extent[1] - 1 - pads[3] + output_padding[1], 0]
        padded = kernels.pad(spread, begin, end)
        flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))  # (C, M, kh, kw) -> HWIO
        out = kernels.conv2d_nhwc(padded, flipped, b, 1, "valid", dilations)
        return (out.transpose(0, 3, 1, 2),)

    return run


# ----- Resize: nearest picks pixels (glue); linear mixes them with an interpolation matrix (C dense) -----

_COORDINATES: dict[str, Callable[..., np.ndarray]] = {
    "half_pixel": lambda out, scale, size, out_size: (out + 0.5) / scale - 0.5,
    "pytorch_half_pixel": lambda out, scale, size, out_size: (out + 0.5) / scale - 0.5 if out_size > 1 else 0 * out,
    # the resized length as ONNX counts it here: size * scale, unrounded
    "align_corners": lambda out, scale, size, out_size: (
        out * (size - 1) / (size * scale - 1) if size * scale != 1 else 0 * out
    ),
    "asymmetric": lambda out, scale, size, out_size: out / scale,
    "tf_half_pixel_for_nn": lambda out, scale, size, out_size: (out + 0.5) / scale,
}
_NEAREST: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "round_prefer_floor": lambda v: np.ceil(v - 0.5),
    "round_prefer_ceil": lambda v: np.floor(v + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


def _compile_resize(node: _Node) -> Callable:
    mode = node.attr("mode", "nearest")
    coordinates = node.attr("coordinate_transformation_mode", "half_pixel")
    nearest = node.attr("nearest_mode", "round_prefer_floor")
    node.only(
        {
            "mode": lambda v: v in ("nearest", "linear"),
            "coordinate_transformation_mode": lambda v: v in _COORDINATES,
            "nearest_mode": lambda v: v in _NEAREST,
            "antialias": lambda v: v == 0,
            "exclude_outside": lambda v: v == 0,
            "keep_aspect_ratio_policy": lambda v: v == "stretch",
            "axes": lambda v: v is None,
        }
    )

    def source(axis_size: int, out_size: int, scale: float) -> np.ndarray:
        """Where each output coordinate samples the input, in input coordinates (float64)."""
        return _COORDINATES[coordinates](np.arange(out_size, dtype=np.float64), scale, axis_size, out_size)

    def run(
        x: np.ndarray, roi: np.ndarray | None = None, scales: np.ndarray | None = None, sizes: np.ndarray | None = None
    ) -> tuple[np.ndarray]:
        if x.ndim != 4 or x.dtype != np.float32:
            raise node.fail(f"only NCHW float32 input is supported, got shape {x.shape} dtype {x.dtype}")
        if sizes is not None and sizes.size:
            out_hw = [int(v) for v in sizes[2:]]
            keep = [int(v) for v in sizes[:2]] == list(x.shape[:2])
            hw_scales = [out_hw[i] / x.shape[2 + i] for i in range(2)]
        elif scales is not None and scales.size:
            keep = [float(v) for v in scales[:2]] == [1.0, 1.0]
            hw_scales = [float(v) for v in scales[2:]]
            out_hw = [int(np.floor(x.shape[2 + i] * hw_scales[i])) for i in range(2)]
        else:
            raise node.fail("needs scales or sizes")
        if not keep:
            raise node.fail("only resizing the spatial axes (H, W) is supported")
        out = _to_nhwc(x, node)
        for axis in (1, 2):  # NHWC axes H then W
            size, out_size = out.shape[axis], out_hw[axis - 1]
            where = source(size, out_size, hw_scales[axis - 1])
            if mode == "nearest":
                picked = np.clip(_NEAREST[nearest](where), 0, size - 1).astype(np.int64)
                out = np.take(out, picked, axis=axis)
                continue
            where = np.clip(where, 0, size - 1)
            low = np.floor(where).astype(np.int64)
            high = np.minimum(low + 1, size - 1)
            weights = np.zeros((size, out_size))  # column j: how much each input pixel gives output pixel j
            np.add.at(weights, (low, np.arange(out_size)), 1 - (where - low))
            np.add.at(weights, (high, np.arange(out_size)), where - low)
            moved = np.ascontiguousarray(np.moveaxis(out, axis, -1))
            mixed = kernels.dense(moved.reshape(-1, size), weights.astype(np.float32))
            out = np.moveaxis(mixed.reshape(*moved.shape[:-1], out_size), -1, axis)
        return (np.ascontiguousarray(out).transpose(0, 3, 1, 2),)

    return run


# ----- more glue (numpy): building and repeating tensors -----


def _compile_tile(node: _Node) -> Callable:
    return lambda x, repeats: (np.tile(x, [int(r) for r in repeats]),)


def _compile_expand(node: _Node) -> Callable:
    def run(x: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray]:
        target = np.broadcast_shapes(x.shape, tuple(int(v) for v in shape))
        return (np.broadcast_to(x, target).copy(),)

    return run


def _compile_constant_of_shape(node: _Node) -> Callable:
    raw = node.attrs.get("value")
    value = numpy_helper.to_array(raw).reshape(-1)[:1] if raw is not None else np.zeros(1, np.float32)

    def run(shape: np.ndarray) -> tuple[np.ndarray]:
        return (np.full([int(v) for v in shape], value[0], dtype=value.dtype),)

    return run


def _compile_range(node: _Node) -> Callable:
    def run(start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray]:
        if start.dtype.kind not in "iu":
            raise node.fail(f"only integer ranges are supported, got {start.dtype}")
        return (np.arange(int(start), int(limit), int(delta), dtype=start.dtype),)

    return run


def _compile_split(node: _Node) -> Callable:
    axis = int(node.attr("axis", 0))
    count = node.attr("num_outputs", None) or len(node.proto.output)

    def run(x: np.ndarray, split: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        given = node.attr("split", None) if split is None else split
        ax = axis + x.ndim if axis < 0 else axis
        if given is None:
            step = -(-x.shape[ax] // count)
            edges = [min(step * i, x.shape[ax]) for i in range(1, count)]
        else:
            edges = list(np.cumsum([int(v) for v in given])[:-1])
        return tuple(np.split(x, edges, axis=ax))

    return run


COMPILERS: dict[str, Callable[[_Node], Callable]] = {
    "Add": _compile_binary(kernels.add, np.add),
    "Clip": _compile_clip,
    "Div": _compile_binary(kernels.div, _divide_integers),
    "GlobalAveragePool": _compile_global_average_pool,
    "Pad": _compile_pad,
    "ReduceMean": _compile_reduce_mean,
    "Sub": _compile_binary(kernels.sub, np.subtract),
    "AveragePool": _compile_pool,
    "Cast": _compile_cast,
    "Concat": _compile_concat,
    "Constant": _compile_constant,
    "Conv": _compile_conv,
    "Flatten": _compile_flatten,
    "Gather": _compile_gather,
    "Gemm": _compile_gemm,
    "Identity": _compile_identity,
    "MatMul": _compile_matmul,
    "MaxPool": _compile_pool,
    "Mul": _compile_binary(kernels.mul, np.multiply),
    "Relu": _compile_unary(kernels.relu),
    "Reshape": _compile_reshape,
    "Shape": _compile_shape,
    "Sigmoid": _compile_unary(kernels.sigmoid),
    "Slice": _compile_slice,
    "Softmax": _compile_softmax,
    "Squeeze": _compile_squeeze,
    "Transpose": _compile_transpose,
    "Unsqueeze": _compile_unsqueeze,
    **{op: _compile_math for op in _UNARY},
    **{op: _compile_comparison for op in _COMPARISONS},
    **{op: _compile_logical for op in _LOGICAL},
    **{op: _compile_reduce for op in _REDUCE},
    "ConstantOfShape": _compile_constant_of_shape,
    "ConvTranspose": _compile_conv_transpose,
    "Expand": _compile_expand,
    "GlobalMaxPool": _compile_global_max_pool,
    "LogSoftmax": _compile_log_softmax,
    "Max": _compile_variadic(lambda a, b: kernels.maximum(a, b), np.maximum),
    "Min": _compile_variadic(lambda a, b: kernels.minimum(a, b), np.minimum),
    "Not": _compile_not,
    "Pow": _compile_pow,
    "Range": _compile_range,
    "Resize": _compile_resize,
    "Split": _compile_split,
    "Tile": _compile_tile,
    "Where": _compile_where,
}
from edgecnn.reference import quant as _quant  # noqa: E402,F401  (adds QuantizeLinear/DequantizeLinear to COMPILERS)

SUPPORTED_OPS = tuple(sorted(COMPILERS))
_WINDOW = {"auto_pad", "kernel_shape", "strides", "dilations", "pads"}
# The attributes each compile function reads (or checks); a node with any other is refused by name.
ATTRIBUTES: dict[str, set[str]] = {
    "Add": set(),
    "AveragePool": _WINDOW | {"ceil_mode", "count_include_pad"},
    "Cast": {"to", "saturate"},
    "Clip": {"min", "max"},
    "Concat": {"axis"},
    "Constant": {"value", "value_float", "value_floats", "value_int", "value_ints"},
    "Conv": _WINDOW | {"group"},
    "Div": set(),
    "Flatten": {"axis"},
    "Gather": {"axis"},
    "Gemm": {"alpha", "beta", "transA", "transB"},
    "GlobalAveragePool": set(),
    "Identity": set(),
    "MatMul": set(),
    "MaxPool": _WINDOW | {"ceil_mode", "storage_order"},
    "Mul": set(),
    "Pad": {"mode", "pads", "value"},
    "QuantizeLinear": {"axis", "output_dtype", "block_size", "saturate", "precision"},
    "DequantizeLinear": {"axis", "block_size", "precision"},
    "ReduceMean": {"axes", "keepdims", "noop_with_empty_axes"},
    "Relu": set(),
    "Reshape": {"allowzero"},
    "Shape": {"start", "end"},
    "Sigmoid": set(),
    "Slice": set(),
    "Softmax": {"axis"},
    "Squeeze": {"axes"},
    "Sub": set(),
    "Transpose": {"perm"},
    "Unsqueeze": {"axes"},
    **{op: {name for name, _ in defaults or ()} for op, (_, defaults) in _UNARY.items()},
    **{op: set() for op in (*_COMPARISONS, *_LOGICAL, "Not", "Pow", "Range", "Tile", "Expand", "Where", "Max", "Min")},
    **{op: {"axes", "keepdims", "noop_with_empty_axes"} for op in _REDUCE},
    "ConstantOfShape": {"value"},
    "ConvTranspose": _WINDOW | {"group", "output_padding", "output_shape"},
    "GlobalMaxPool": set(),
    "LogSoftmax": {"axis"},
    "Resize": {
        "mode",
        "coordinate_transformation_mode",
        "nearest_mode",
        "antialias",
        "exclude_outside",
        "keep_aspect_ratio_policy",
        "axes",
        "cubic_coeff_a",
        "extrapolation_value",
    },
    "Split": {"axis", "split", "num_outputs"},
}


def _load(model: onnx.ModelProto | str | os.PathLike) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, "model"
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: no such ONNX file")
    try:
        return onnx.load(path), str(path)
    except Exception as exc:  # noqa: BLE001  (protobuf raises several types for a bad file)
        raise ModelError(f"{path}: not a readable ONNX model ({first_line(exc)})") from None


class ReferenceModel:
    """An ONNX model compiled to a list of steps over the C kernels.

    `ReferenceModel(path_or_proto)` raises ModelError (one line) when the graph is
    malformed or uses an operator outside SUPPORTED_OPS, listing every such operator.
    """

    def __init__(self, model: onnx.ModelProto | str | os.PathLike) -> None:
        proto, self.source = _load(model)
        graph = proto.graph
        opsets = {o.domain: o.version for o in proto.opset_import}
        self.opset = opsets.get("", opsets.get("ai.onnx", 0))
        unsupported = sorted(
            {
                n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                for n in graph.node
                if n.domain not in ("", "ai.onnx") or n.op_type not in COMPILERS
            }
        )
        if unsupported:
            raise ModelError(
                f"{self.source}: the C reference does not support operator(s) {', '.join(unsupported)} "
                f"(it supports {', '.join(SUPPORTED_OPS)})",
                op=", ".join(unsupported),
            )
        if not graph.node or not graph.output:
            raise ModelError(f"{self.source}: the graph has no nodes or no outputs")
        try:
            self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        except Exception as exc:  # noqa: BLE001  (numpy_helper raises several types for a malformed tensor)
            raise ModelError(f"{self.source}: unreadable initializer ({exc})") from None
        self.inputs = [i for i in graph.input if i.name not in self.constants]
        for value in self.inputs:
            kind = value.type.WhichOneof("value")
            if kind != "tensor_type" or value.type.tensor_type.elem_type not in _CAST_TARGETS:
                what = (
                    kind
                    if kind != "tensor_type"
                    else f"tensor of {TensorProto.DataType.Name(value.type.tensor_type.elem_type)}"
                )
                raise ModelError(
                    f"{self.source}: input {value.name!r} is a {what}; the C reference takes numeric tensors only"
                )
        self.input_names = [i.name for i in self.inputs]
        self.output_names = [o.name for o in graph.output]
        known = set(self.constants) | set(self.input_names)
        self.steps: list[Step] = []
        for index, proto_node in enumerate(graph.node):
            node = _Node(index, proto_node, self.constants, self.opset)
            for name in proto_node.input:
                if name and name not in known:
                    raise node.fail(f"reads {name!r}, which is no graph input, initializer or earlier node's output")
            unknown = sorted(set(node.attrs) - ATTRIBUTES[proto_node.op_type])
            if unknown:
                raise node.fail(f"attribute(s) {', '.join(unknown)} not supported")
            run = COMPILERS[proto_node.op_type](node)
            self.steps.append(
                Step(index, proto_node.op_type, proto_node.name, tuple(proto_node.input), tuple(proto_node.output), run)
            )
            known.update(o for o in proto_node.output if o)
        missing = [name for name in self.output_names if name not in known]
        if missing:
            raise ModelError(f"{self.source}: graph output(s) {missing} are produced by no node")

    def _feeds(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if isinstance(inputs, np.ndarray):
            if len(self.input_names) != 1:
                raise ValueError(f"the model has inputs {self.input_names}; pass a dict")
            inputs = {self.input_names[0]: inputs}
        feeds = {}
        for spec in self.inputs:
            if spec.name not in inputs:
                raise ValueError(f"missing input {spec.name!r}")
            x = inputs[spec.name]
            dims = [d.dim_value if d.HasField("dim_value") else None for d in spec.type.tensor_type.shape.dim]
            want = onnx.helper.tensor_dtype_to_np_dtype(spec.type.tensor_type.elem_type)
            if (
                not isinstance(x, np.ndarray)
                or x.dtype != want
                or x.ndim != len(dims)
                or any(d is not None and d != s for d, s in zip(dims, x.shape, strict=True))
            ):
                shape = tuple("N" if d is None else d for d in dims)
                raise ValueError(
                    f"input {spec.name!r} must be {np.dtype(want)} of shape {shape}, "
                    f"got shape {getattr(x, 'shape', None)} dtype {getattr(x, 'dtype', type(x).__name__)}"
                )
            feeds[spec.name] = x
        return feeds

    def run_all(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every tensor by name (inputs, initializers and node outputs), in ONNX layout."""
        values: dict[str, Any] = {**self.constants, **self._feeds(inputs)}
        for step in self.steps:
            args = [values[name] if name else None for name in step.inputs]
            while args and args[-1] is None:
                args.pop()
            try:
                results = step.run(*args)
            except ModelError:
                raise
            except ValueError as exc:  # a kernel wrapper's check: this node's data is outside what C implements
                raise ModelError(f"node {step.index} ({step.op_type} {step.name!r}): {exc}", op=step.op_type) from None
            for name, value in zip(step.outputs, results, strict=True):
                if name:
                    values[name] = np.asarray(value)  # numpy returns a scalar, not a 0-d array, for some glue
        return values

    def run(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The graph outputs, as C-contiguous arrays (a scalar output stays 0-d)."""
        values = self.run_all(inputs)
        return [np.asarray(values[name], order="C") for name in self.output_names]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The first graph output for a single-input model."""
        return self.run(x)[0]

    def __repr__(self) -> str:
        return f"ReferenceModel({self.source!r}, {len(self.steps)} nodes, opset {self.opset})"
