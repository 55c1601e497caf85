"""Frame sources: image files and directories of them, decoded to uint8 with OpenCV.

Frames come out as OpenCV gives them: HxW gray, HxWx3 BGR or HxWx4 BGRA, uint8.
16-bit images are rounded to 8 bits. EXIF orientation is ignored, as TensorFlow's
decoders (and so `image_dataset_from_directory`) ignore it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from edgecnn.errors import UserError

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp", ".pbm", ".pgm", ".ppm")
MAX_IMAGE_PIXELS = 1 << 28  # refuse decompression bombs before decoding


def _looks_truncated(data: bytes) -> bool:
    """A JPEG without its end-of-image marker near the end was cut short."""
    if data[:2] != b"\xff\xd8":
        return False
    return b"\xff\xd9" not in data[-64:].rstrip(b"\x00")


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes to uint8 HxW, HxWx3 (BGR) or HxWx4 (BGRA).

    Raises UserError naming `name` when the bytes are not a complete image.
    """
    if not data:
        raise UserError(f"{name}: file is empty")
    if _looks_truncated(data):
        raise UserError(f"{name}: JPEG data is truncated (no end-of-image marker)")
    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None or image.size == 0:
        raise UserError(f"{name}: not a readable image (OpenCV could not decode it)")
    if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:
        raise UserError(f"{name}: image of {image.shape[1]}x{image.shape[0]} pixels is too large")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise UserError(f"{name}: unsupported channel count {image.shape[2]}")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise UserError(f"{name}: unsupported pixel type {image.dtype} (need 8- or 16-bit)")
    return np.ascontiguousarray(image)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file; see `decode_image` for what comes back."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    return decode_image(data, str(path))


def expand_image_paths(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, directories expanded to their image files (recursively, sorted).

    Raises UserError for a path that does not exist or a directory with no images.
    """
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UserError(f"{p}: directory holds no images ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        else:
            raise UserError(f"{p}: no such file or directory")
    return paths


def iter_images(paths: Iterable[Path]) -> Iterator[tuple[Path, np.ndarray | None, str | None]]:
    """Yield (path, frame, None) per readable image and (path, None, error) per bad one."""
    for path in paths:
        try:
            yield path, read_image(path), None
        except UserError as exc:
            yield path, None, str(exc)
