"""Slow, obviously correct numpy twin of the preprocess kernels.

Same signature and semantics as `edgecnn.preprocess.to_batch`; the tests compare the
two. Resizing follows `tf.image.resize(method="bilinear", antialias=False)`: half-pixel
centres, edge clamping, float32 arithmetic in TensorFlow's order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)  # tf.image.rgb_to_grayscale


def bilinear_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, lerp) per output index, as TensorFlow's compute_interpolation_weights."""
    scale = np.float32(in_size / out_size)
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


def to_rgb(frame: np.ndarray, src_order: str) -> np.ndarray:
    """uint8 HxW / HxWx3 / HxWx4 in `src_order` -> float32 HxWx3 RGB."""
    if frame.ndim == 2:
        rgb = np.repeat(frame[:, :, None], 3, axis=2)
    else:
        rgb = frame[:, :, :3]
        if src_order == "bgr":
            rgb = rgb[:, :, ::-1]
    return rgb.astype(np.float32)


def preprocess_one(frame: np.ndarray, size: tuple[int, int], color: str, src_order: str, scale: float) -> np.ndarray:
    """One uint8 frame -> float32 (h, w, C) model input."""
    height, width = size
    if color == "gray" and frame.ndim == 2:
        out = resize_bilinear(frame[:, :, None].astype(np.float32), height, width)
    else:
        out = resize_bilinear(to_rgb(frame, src_order), height, width)
        if color == "gray":
            out = np.tensordot(out, GRAY_WEIGHTS, axes=([2], [0]))[:, :, None].astype(np.float32)
    return out * np.float32(scale)


def to_batch_slow(
    frames: Sequence[np.ndarray],
    size: tuple[int, int],
    color: str = "rgb",
    src_order: str = "bgr",
    scale: float = 1.0 / 255.0,
) -> np.ndarray:
    """Frames (uint8, any sizes) -> float32 (N, h, w, C) batch; C is 1 for gray, 3 for rgb."""
    return np.stack([preprocess_one(f, size, color, src_order, scale) for f in frames]).astype(np.float32)
