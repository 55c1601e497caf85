"""JPEG decoding the way TensorFlow does it, so deployed pixels equal training pixels.

`tf.io.decode_jpeg` (and so `image_dataset_from_directory`) uses libjpeg-turbo with the
fast integer IDCT and fancy upsampling. OpenCV uses the accurate IDCT: its pixels differ
by a level or so on most values, enough to flip borderline predictions. simplejpeg
exposes the same libjpeg-turbo settings, and decodes bit-identically to TensorFlow.
"""

from __future__ import annotations

import numpy as np
import simplejpeg


def is_jpeg(data: bytes) -> bool:
    """True for data that starts with a JPEG start-of-image marker."""
    return data[:3] == b"\xff\xd8\xff"


# libjpeg warnings that leave every scan complete: junk bytes between two segments are
# skipped and nothing is lost (TensorFlow decodes such files the same). Every other
# warning means missing or damaged entropy data, which libjpeg would paint grey.
HARMLESS_WARNINGS = ("extraneous bytes before marker",)


def decode_jpeg_like_tensorflow(data: bytes) -> np.ndarray | None:
    """uint8 HxW (gray JPEG) or HxWx3 BGR, as tf.io.decode_jpeg's defaults decode it.

    None where this decoder does not apply (not a JPEG, or CMYK/YCCK, which OpenCV
    decodes). ValueError with libjpeg's message when the data is incomplete or corrupt:
    a truncated file, or half a file with an end-of-image marker appended. Bytes after
    the end-of-image marker are not looked at, as in TensorFlow.
    """
    if not is_jpeg(data):
        return None
    try:
        _, _, colorspace, _ = simplejpeg.decode_jpeg_header(data, strict=False)
        if colorspace not in ("GRAY", "YCbCr", "RGB"):
            return None
        out = "GRAY" if colorspace == "GRAY" else "BGR"
        try:
            image = simplejpeg.decode_jpeg(data, colorspace=out, fastdct=True, fastupsample=False, strict=True)
        except ValueError as exc:
            if not any(warning in str(exc) for warning in HARMLESS_WARNINGS):
                raise
            image = simplejpeg.decode_jpeg(data, colorspace=out, fastdct=True, fastupsample=False, strict=False)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None
    return image[:, :, 0] if out == "GRAY" else image
