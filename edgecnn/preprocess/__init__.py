"""Frames -> model input: resize, colour, rescale and batch, checked wrappers over Cython kernels.

`to_batch` is the one public entry point. It checks and normalises its inputs, then
hands every frame to one fused nogil kernel (`_kernels.pyx`) that reads each frame
once and writes its float32 slot of the batch once. `edgecnn.preprocess.slow` holds
the slow numpy twin the tests compare it with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import edgecnn.preprocess._kernels as _kernels

__all__ = ["COLORS", "METHODS", "SRC_ORDERS", "MAX_SIDE", "affine_coefficients", "batch_shape", "to_batch"]

COLORS = ("rgb", "gray")
SRC_ORDERS = ("bgr", "rgb")  # also the channel orders a 3-channel batch can be written in
METHODS = ("bilinear", "area")  # index = the kernel's Method enum
MAX_SIDE = 1 << 16  # frame and output sides; keeps every index and uint16 sum in range
MAX_THREADS = 256


def batch_shape(n: int, size: tuple[int, int], color: str) -> tuple[int, int, int, int]:
    """The (N, h, w, C) shape `to_batch` fills: C is 1 for gray, 3 for rgb."""
    return (n, int(size[0]), int(size[1]), 1 if color == "gray" else 3)


def affine_coefficients(
    channels: int, scale: float, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(mul, add), 3 float32 each, with (v * scale - mean[c]) / std[c] == v * mul[c] + add[c].

    mean and std hold one value per output channel (None: 0 and 1); checked here.
    """
    scale = float(scale)
    if not np.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    values = {}
    for name, given, default in (("mean", mean, 0.0), ("std", std, 1.0)):
        try:
            seq = [default] * channels if given is None else [float(v) for v in given]
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {channels} numbers, got {given!r}") from None
        if len(seq) != channels or not all(np.isfinite(seq)):
            raise ValueError(f"{name} must be {channels} finite numbers (one per output channel), got {given!r}")
        values[name] = seq
    if any(v == 0 for v in values["std"]):
        raise ValueError(f"std must not be 0, got {std!r}")
    mul, add = np.zeros(3, dtype=np.float32), np.zeros(3, dtype=np.float32)
    mul[:channels] = [scale / d for d in values["std"]]
    add[:channels] = [-m / d if m else 0.0 for m, d in zip(values["mean"], values["std"], strict=True)]
    return mul, add


def _frame_layout(where: str, frame: np.ndarray) -> str:
    return f"{where} must be a uint8 HxW, HxWx1, HxWx3 or HxWx4 array, got shape {frame.shape} dtype {frame.dtype}"


def _check_frame(i: int, frame: object) -> np.ndarray:
    """frame as uint8 (H, W, C) with C in (1, 3, 4), pixels and channels contiguous."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame {i} must be a numpy uint8 array, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise ValueError(_frame_layout(f"frame {i}", frame))
    if frame.ndim == 2:
        frame = frame[:, :, None]
    height, width, channels = frame.shape
    if height < 1 or width < 1:
        raise ValueError(f"frame {i} is empty: shape {frame.shape}")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ValueError(f"frame {i} is too large: shape {frame.shape}, max side {MAX_SIDE}")
    # Rows may be any distance apart (crops of a bigger frame stay zero-copy);
    # pixels and channels within a row must be packed.
    if frame.strides[1] != channels or (channels > 1 and frame.strides[2] != 1):
        frame = np.ascontiguousarray(frame)
    return frame


def _frames_table(frames: object) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(keep-alive arrays, data addresses (N,), geometry (N, 4): height, width, channels, row stride)."""
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] not in (1, 3, 4):
            raise ValueError(
                "frames must be a list of uint8 frames or one uint8 (N, H, W, C) array with C in "
                f"(1, 3, 4), got an array of shape {frames.shape} dtype {frames.dtype}"
            )
        n, height, width, channels = frames.shape
        if n < 1:
            raise ValueError(f"frames is empty: shape {frames.shape}")
        _check_frame(0, frames[0])  # size limits, same messages as a list
        if frames.strides[2] != channels or (channels > 1 and frames.strides[3] != 1):
            frames = np.ascontiguousarray(frames)
        data = frames.ctypes.data + np.arange(n, dtype=np.intp) * frames.strides[0]
        geometry = np.empty((n, 4), dtype=np.intp)
        geometry[:] = (height, width, channels, frames.strides[1])
        return [frames], data.astype(np.uintp), geometry
    if not isinstance(frames, (list, tuple)):
        raise ValueError(
            f"frames must be a list or tuple of uint8 frames or a uint8 (N, H, W, C) array, got {type(frames).__name__}"
        )
    if len(frames) == 0:
        raise ValueError("frames is empty: got 0 frames")
    checked = [_check_frame(i, f) for i, f in enumerate(frames)]
    data = np.array([f.ctypes.data for f in checked], dtype=np.uintp)
    geometry = np.array([(*f.shape, f.strides[0]) for f in checked], dtype=np.intp)
    return checked, data, geometry


def to_batch(
    frames: Sequence[np.ndarray] | np.ndarray,
    size: tuple[int, int],
    color: str = "rgb",
    src_order: str = "bgr",
    scale: float = 1.0 / 255.0,
    out: np.ndarray | None = None,
    method: str = "bilinear",
    threads: int = 1,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    channel_order: str = "rgb",
) -> np.ndarray:
    """uint8 frames -> float32 (N, h, w, C) model input, C = 1 (gray) or 3 (RGB or BGR).

    frames: a list/tuple of uint8 arrays, HxW (gray), HxWx3 (`src_order`: "bgr" as
    OpenCV decodes, or "rgb") or HxWx4 (alpha dropped), each its own size; or one
    uint8 (N, H, W, C) array. size: (h, w). Resize: `method` "bilinear" is
    tf.image.resize(bilinear, antialias=False) (half-pixel centres), "area" is
    tf.image.resize(area); both within 1e-5 of TensorFlow at scale 1/255. Colour:
    RGB, or tf.image.rgb_to_grayscale weights applied after resizing; gray frames
    pass through (or are repeated to RGB); a 3-channel batch is written in
    `channel_order` ("rgb" or "bgr"). Normalisation, per output channel c:
    (value * scale - mean[c]) / std[c] (mean, std: C numbers; default 0 and 1, so
    scale 1/255 alone gives [0, 1]), in the same pass, computed as
    value * (scale / std[c]) + (-mean[c] / std[c]) (within 1e-6 of the formula).
    Written into `out` when given (C-contiguous float32 of exactly
    that shape; reuse it between calls), else into a new array. `threads` splits
    the frames over that many threads; the GIL is released while they run.
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    if src_order not in SRC_ORDERS:
        raise ValueError(f"src_order must be one of {SRC_ORDERS}, got {src_order!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be an int from 1 to {MAX_THREADS}, got {threads!r}")
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width) ints, got {size!r}") from None
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise ValueError(f"size must be (height, width) with sides from 1 to {MAX_SIDE}, got {tuple(size)}")
    if channel_order not in SRC_ORDERS:
        raise ValueError(f"channel_order must be one of {SRC_ORDERS}, got {channel_order!r}")
    shape = batch_shape(1, (height, width), color)
    mul, add = affine_coefficients(shape[3], scale, mean, std)
    keep_alive, data, geometry = _frames_table(frames)
    shape = batch_shape(len(data), (height, width), color)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif (
        not isinstance(out, np.ndarray)
        or out.shape != shape
        or out.dtype != np.float32
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"out must be a writeable C-contiguous float32 array of shape {shape}, got {got}")
    # Gray weights need RGB order inside the kernel; only a 3-channel output may be written as BGR.
    swap_rb = (src_order == "bgr") != (color == "rgb" and channel_order == "bgr")
    _kernels.resize_batch_into(
        data, geometry, out, METHODS.index(method), swap_rb, mul, add, min(int(threads), len(data))
    )
    del keep_alive  # the frames (and any contiguous copies) lived until the kernel returned
    return out
