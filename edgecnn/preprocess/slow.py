"""Slow, obviously correct numpy twin of the preprocess kernels.

Same semantics as `edgecnn.preprocess.to_batch` (minus `out` and `threads`); the
tests compare the two. Resizing follows TensorFlow:

- "bilinear": `tf.image.resize(method="bilinear", antialias=False)`: half-pixel
  centres, edge clamping, float32 arithmetic in TensorFlow's order (bit-exact).
- "area": `tf.image.resize(method="area")` (TensorFlow's ResizeArea): output cell
  [x * s, (x + 1) * s), s = in / out in float32, averages the source cells it covers,
  each weighted by the covered fraction (float32 weights, as TensorFlow computes
  them); summed here in float64 as one matrix product per axis.

Colour: BGR -> RGB swap, alpha dropped, gray by `tf.image.rgb_to_grayscale` weights
applied after resizing; then times `scale`. Windows and quantisation: each window is
sliced out of the zero-padded image, quantised by the ONNX QuantizeLinear formula.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)  # tf.image.rgb_to_grayscale


def bilinear_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, lerp) per output index, as TensorFlow's compute_interpolation_weights."""
    scale = np.float32(in_size) / np.float32(out_size)
    pos = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(pos)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(pos), in_size - 1).astype(np.intp)
    return lower, upper, (pos - floor).astype(np.float32)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize float32 HxWxC like tf.image.resize(bilinear, antialias=False)."""
    y0, y1, dy = bilinear_weights(image.shape[0], height)
    x0, x1, dx = bilinear_weights(image.shape[1], width)
    dx = dx[None, :, None]
    top = image[y0][:, x0] + (image[y0][:, x1] - image[y0][:, x0]) * dx
    bottom = image[y1][:, x0] + (image[y1][:, x1] - image[y1][:, x0]) * dx
    return (top + (bottom - top) * dy[:, None, None]).astype(np.float32)


def area_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float64 matrix of TensorFlow's ResizeArea cell weights.

    Row x weights source cell i by the part of [i, i + 1) inside [x * s, (x + 1) * s),
    computed in float32 exactly as TensorFlow does; cells past the edge (float
    rounding) are clamped onto the last one, as TensorFlow's Bound does.
    """
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for x in range(out_size):
        lo, hi = f32(x) * scale, f32(x + 1) * scale
        for i in range(int(np.floor(lo)), int(np.ceil(hi))):
            if i < lo:
                w = scale if f32(i + 1) > hi else f32(i + 1) - lo
            else:
                w = hi - f32(i) if f32(i + 1) > hi else f32(1.0)
            weights[x, min(max(i, 0), in_size - 1)] += w
    return weights


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize float32 HxWxC like tf.image.resize(area): weighted cell sums times out/in area."""
    in_height, in_width = image.shape[:2]
    y_scale = np.float32(in_height) / np.float32(height)
    x_scale = np.float32(in_width) / np.float32(width)
    cell_scale = np.float32(1.0 / float(y_scale * x_scale))
    rows = np.tensordot(area_weights(in_height, height), image.astype(np.float64), axes=([1], [0]))  # (h, W, C)
    summed = np.einsum("yjc,xj->yxc", rows, area_weights(in_width, width), optimize=True)
    return (summed * float(cell_scale)).astype(np.float32)


def to_rgb(frame: np.ndarray, src_order: str) -> np.ndarray:
    """uint8 HxW / HxWx1 / HxWx3 / HxWx4 in `src_order` -> float32 HxWx3 RGB."""
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] == 1:
        rgb = np.repeat(frame, 3, axis=2)
    else:
        rgb = frame[:, :, :3]
        if src_order == "bgr":
            rgb = rgb[:, :, ::-1]
    return rgb.astype(np.float32)


def preprocess_one(
    frame: np.ndarray,
    size: tuple[int, int],
    color: str,
    src_order: str,
    scale: float,
    method: str = "bilinear",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    channel_order: str = "rgb",
) -> np.ndarray:
    """One uint8 frame -> float32 (h, w, C) model input: (resized * scale - mean) / std per channel."""
    height, width = size
    resize = {"bilinear": resize_bilinear, "area": resize_area}[method]
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if color == "gray" and frame.shape[2] == 1:
        out = resize(frame.astype(np.float32), height, width)
    else:
        out = resize(to_rgb(frame, src_order), height, width)
        if color == "gray":
            out = np.tensordot(out, GRAY_WEIGHTS, axes=([2], [0]))[:, :, None].astype(np.float32)
        elif channel_order == "bgr":
            out = out[:, :, ::-1]
    channels = out.shape[2]
    mean32 = np.zeros(channels, np.float32) if mean is None else np.asarray(mean, dtype=np.float32)
    std32 = np.ones(channels, np.float32) if std is None else np.asarray(std, dtype=np.float32)
    return (out * np.float32(scale) - mean32) / std32


def quantize_u8(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """ONNX QuantizeLinear to uint8: saturate(round_half_even(x / scale) + zero_point), in float32."""
    q = np.rint(x.astype(np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, 0, 255).astype(np.uint8)


def windows(
    image: np.ndarray, patch: tuple[int, int], patch_pads: tuple[int, int, int, int], depth: int, zero: float
) -> np.ndarray:
    """(h, w, C) -> (h', w', depth): each position's patch of the padded image, rows, columns,
    channels in that order, then `zero` up to depth values."""
    (ph, pw), (top, left, bottom, right) = patch, patch_pads
    padded = np.pad(image, ((top, bottom), (left, right), (0, 0)), constant_values=zero)
    out_h, out_w = padded.shape[0] - ph + 1, padded.shape[1] - pw + 1
    out = np.full((out_h, out_w, depth), zero, dtype=image.dtype)
    for y in range(out_h):
        for x in range(out_w):
            window = padded[y : y + ph, x : x + pw].reshape(-1)
            out[y, x, : window.size] = window
    return out


def to_batch_slow(
    frames: Sequence[np.ndarray] | np.ndarray,
    size: tuple[int, int],
    color: str = "rgb",
    src_order: str = "bgr",
    scale: float = 1.0 / 255.0,
    method: str = "bilinear",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    channel_order: str = "rgb",
    patch: tuple[int, int] = (1, 1),
    patch_pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    depth: int | None = None,
    quantization: tuple[float, int] | None = None,
) -> np.ndarray:
    """Frames (uint8, any sizes) -> float32 (N, h, w, C) batch, C 1 for gray and 3 for rgb; with
    windows or quantisation, the (N, h', w', depth) float32 or uint8 batch to_batch describes."""
    images = [preprocess_one(f, size, color, src_order, scale, method, mean, std, channel_order) for f in frames]
    if quantization is not None:
        images = [quantize_u8(image, *quantization) for image in images]
    zero = quantization[1] if quantization is not None else 0.0
    depth = patch[0] * patch[1] * images[0].shape[2] if depth is None else depth
    return np.stack([windows(image, patch, patch_pads, depth, zero) for image in images])
