"""Frames -> model input: resize, colour, rescale and batch, checked wrappers over Cython kernels.

`to_batch` is the one public entry point. It checks and normalises its inputs, then
hands every frame to one fused nogil kernel (`_kernels.pyx`) that reads each frame
once and writes its float32 slot of the batch once. Graphs that read windows of the
image or quantised uint8 values (`patch`, `depth`, `quantization`) get a second kernel
pass over those float images. `edgecnn.preprocess.slow` holds the slow numpy twin the
tests compare it with.
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
MAX_PATCH = 64  # window side
MAX_DEPTH = 4096  # values per window position


def batch_shape(
    n: int,
    size: tuple[int, int],
    color: str,
    patch: tuple[int, int] = (1, 1),
    patch_pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    depth: int | None = None,
) -> tuple[int, int, int, int]:
    """The (N, h', w', D) shape `to_batch` fills. Without windows: (N, h, w, C), C 1 for gray
    and 3 for rgb. With a (ph, pw) patch and (top, left, bottom, right) pads:
    h' = h + top + bottom - ph + 1, w' = w + left + right - pw + 1, D = depth (default ph * pw * C)."""
    channels = 1 if color == "gray" else 3
    top, left, bottom, right = (int(p) for p in patch_pads)
    return (
        n,
        int(size[0]) + top + bottom - int(patch[0]) + 1,
        int(size[1]) + left + right - int(patch[1]) + 1,
        int(patch[0]) * int(patch[1]) * channels if depth is None else int(depth),
    )


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


def _ints(value: object, count: int) -> tuple[int, ...] | None:
    """`count` ints (a tuple or list of Python or numpy ints) as plain ints, else None."""
    if not isinstance(value, (tuple, list)) or len(value) != count:
        return None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        return None
    return tuple(int(v) for v in value)


def _check_windows(
    size: tuple[int, int],
    channels: int,
    patch: object,
    patch_pads: object,
    depth: object,
    quantization: object,
) -> tuple[tuple[int, int], tuple[int, int, int, int], int, tuple[float, int] | None]:
    """The window and quantisation arguments of `to_batch`, checked, as plain ints and floats."""
    sides = _ints(patch, 2)
    if sides is None or not all(1 <= v <= MAX_PATCH for v in sides):
        raise ValueError(f"patch must be (height, width) ints from 1 to {MAX_PATCH}, got {patch!r}")
    ph, pw = sides
    pads = _ints(patch_pads, 4)
    if pads is None or not all(0 <= p < side for p, side in zip(pads, (ph, pw, ph, pw), strict=True)):
        raise ValueError(
            "patch_pads must be (top, left, bottom, right) ints, each from 0 to the patch side - 1 "
            f"(patch {(ph, pw)}), got {patch_pads!r}"
        )
    top, left, bottom, right = pads
    if size[0] + top + bottom < ph or size[1] + left + right < pw:
        raise ValueError(f"patch {(ph, pw)} is larger than the padded size {size} with pads {pads}")
    needed = ph * pw * channels
    values = _ints([needed if depth is None else depth], 1)
    if values is None or not needed <= values[0] <= MAX_DEPTH:
        raise ValueError(f"depth must be an int from {needed} (patch values) to {MAX_DEPTH}, got {depth!r}")
    checked: tuple[float, int] | None = None
    if quantization is not None:
        pair = quantization if isinstance(quantization, (tuple, list)) and len(quantization) == 2 else (None, None)
        scale, zero_point = pair[0], _ints(pair[1:], 1)
        if not (
            isinstance(scale, (float, int, np.floating))
            and not isinstance(scale, bool)
            and np.isfinite(scale)
            and scale > 0
            and zero_point is not None
            and 0 <= zero_point[0] <= 255
        ):
            raise ValueError(
                f"quantization must be (scale, zero_point): a finite scale > 0 and an int from 0 to 255, "
                f"got {quantization!r}"
            )
        checked = (float(np.float32(scale)), zero_point[0])
    return (ph, pw), (top, left, bottom, right), values[0], checked


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
    patch: tuple[int, int] = (1, 1),
    patch_pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    depth: int | None = None,
    quantization: tuple[float, int] | None = None,
) -> np.ndarray:
    """uint8 frames -> float32 (N, h, w, C) model input, C = 1 (gray) or 3 (RGB or BGR);
    or, for graphs that read windows or uint8, the (N, h', w', D) batch of `batch_shape`.

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
    Windows: with `patch` (ph, pw) other than (1, 1), `patch_pads` or a `depth`
    above C, position (y, x) holds the ph x pw window of the normalised image,
    zero-padded by patch_pads (top, left, bottom, right), whose top-left corner is
    (y, x), in (row, column, channel) order, then zeros up to `depth` values: a first
    convolution's im2col, done here so the graph runs it as a 1x1 convolution.
    Quantisation: with `quantization` (scale, zero_point) the batch is uint8,
    saturate(round_half_even(value / scale) + zero_point) (ONNX QuantizeLinear, the
    scale taken as float32); window padding and depth fill are then zero_point.
    Written into `out` when given (C-contiguous, of exactly that shape and dtype;
    reuse it between calls), else into a new array. `threads` splits
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
    image_shape = batch_shape(1, (height, width), color)
    mul, add = affine_coefficients(image_shape[3], scale, mean, std)
    patch, patch_pads, depth, quantization = _check_windows(
        (height, width), image_shape[3], patch, patch_pads, depth, quantization
    )
    windows = patch != (1, 1) or any(patch_pads) or depth != image_shape[3] or quantization is not None
    keep_alive, data, geometry = _frames_table(frames)
    n = len(data)
    shape = batch_shape(n, (height, width), color, patch, patch_pads, depth)
    dtype = np.dtype(np.uint8 if quantization is not None else np.float32)
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif (
        not isinstance(out, np.ndarray)
        or out.shape != shape
        or out.dtype != dtype
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"out must be a writeable C-contiguous {dtype} array of shape {shape}, got {got}")
    # Gray weights need RGB order inside the kernel; only a 3-channel output may be written as BGR.
    swap_rb = (src_order == "bgr") != (color == "rgb" and channel_order == "bgr")
    threads = min(int(threads), n)
    if not windows:
        _kernels.resize_batch_into(data, geometry, out, METHODS.index(method), swap_rb, mul, add, threads)
    else:
        # One zero-bordered image per thread, plus the 16 bytes a window move may read past it.
        top, left, bottom, right = patch_pads
        bordered = (height + top + bottom) * (width + left + right) * image_shape[3] + 16 // dtype.itemsize
        scale_q, zero_point = quantization if quantization is not None else (1.0, 0)
        _kernels.resize_windows_into(
            data,
            geometry,
            out,
            height,
            width,
            image_shape[3],
            METHODS.index(method),
            swap_rb,
            mul,
            add,
            *patch,
            *patch_pads,
            scale_q,
            zero_point,
            np.empty((threads, bordered), dtype=dtype),
            threads,
        )
    del keep_alive  # the frames (and any contiguous copies) lived until the kernel returned
    return out
