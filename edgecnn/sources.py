"""Frame sources: image files, directories of them, and video (camera, file, stream), as uint8 frames.

Frames come out as OpenCV gives them: HxW gray, HxWx3 BGR or HxWx4 BGRA, uint8.
JPEGs are decoded as TensorFlow decodes them (`edgecnn.jpeg`), so a photo gives the
pixels the model was trained on; other formats go through OpenCV. 16-bit images are
rounded to 8 bits. EXIF orientation is ignored, as TensorFlow's decoders (and so
`image_dataset_from_directory`) ignore it. `open_video` opens a camera index, device
path, video file or stream URL through one cv2.VideoCapture path; `edgecnn.live`
reads it on a capture thread.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.imagesize import SNIFF_BYTES, declared_size, sniff_format
from edgecnn.jpeg import decode_jpeg_like_tensorflow

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp", ".gif", ".pbm", ".pgm", ".ppm")
# Decompression bombs are refused from the header, before any pixel is decoded.
MAX_IMAGE_PIXELS = 1 << 26  # 67 megapixels, e.g. 8192x8192
MAX_IMAGE_BYTES = 1 << 28  # 256 MiB: no image file is read further than this
MAX_IDX_BYTES = 1 << 30  # uncompressed IDX data (Fashion-MNIST's largest file is 47 MB)


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (a missing camera logs several) while opening."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes to uint8 HxW, HxWx3 (BGR) or HxWx4 (BGRA).

    The format (edgecnn.imagesize.FORMATS) and size come from the header first: an
    unknown format or more than MAX_IMAGE_PIXELS pixels is refused without decoding.
    Raises EdgecnnError naming `name` when the bytes are not a complete image.
    """
    if not data:
        raise EdgecnnError(f"{name}: file is empty")
    try:
        header = declared_size(data)
    except ValueError as exc:
        raise EdgecnnError(f"{name}: {exc}") from None
    if header.pixels > MAX_IMAGE_PIXELS:
        raise EdgecnnError(
            f"{name}: {header.format} image of {header.width}x{header.height} pixels is too large "
            f"(limit {MAX_IMAGE_PIXELS:,} pixels; refused before decoding)"
        )
    try:
        image = decode_jpeg_like_tensorflow(data)
    except ValueError as exc:
        raise EdgecnnError(f"{name}: corrupt or truncated JPEG data (libjpeg: {exc})") from None
    if image is None:
        with quiet_opencv():
            image = cv2.imdecode(
                np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
            )
    if image is None or image.size == 0:
        raise EdgecnnError(f"{name}: not a readable {header.format} image (OpenCV could not decode it)")
    if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:
        raise EdgecnnError(f"{name}: image of {image.shape[1]}x{image.shape[0]} pixels is too large")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise EdgecnnError(f"{name}: unsupported channel count {image.shape[2]}")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise EdgecnnError(f"{name}: unsupported pixel type {image.dtype} (need 8- or 16-bit)")
    return np.ascontiguousarray(image)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file; see `decode_image` for what comes back.

    Reads the first bytes first and stops there unless they start a supported format;
    never reads more than MAX_IMAGE_BYTES (a device or pipe cannot exhaust memory).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
            if head and sniff_format(head) is None:
                return decode_image(head, str(path))  # refused, naming what the file starts with
            data = head + f.read(MAX_IMAGE_BYTES + 1 - len(head))
    except FileNotFoundError:
        raise EdgecnnError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EdgecnnError(f"{path}: is a directory") from None
    except OSError as exc:
        raise EdgecnnError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise EdgecnnError(f"{path}: larger than the {MAX_IMAGE_BYTES >> 20} MiB an image file may have")
    return decode_image(data, str(path))


def read_idx(path: str | os.PathLike, ndim: tuple[int, ...] = (1, 3)) -> np.ndarray:
    """One gzip-compressed IDX file (uint8 images or labels) as a numpy array.

    EdgecnnError naming the file when it is not gzip, not uint8 IDX with `ndim` axes, or
    holds fewer or more values than its header says.
    """
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read(MAX_IDX_BYTES + 1)
    except FileNotFoundError:
        raise EdgecnnError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise EdgecnnError(f"{path}: not a readable gzip IDX file ({exc})") from None
    if len(raw) > MAX_IDX_BYTES:
        raise EdgecnnError(f"{path}: more than {MAX_IDX_BYTES >> 20} MiB uncompressed; not an IDX file edgecnn reads")
    if len(raw) < 4:
        raise EdgecnnError(f"{path}: too short for an IDX header")
    zero, dtype_code, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or dims not in ndim or len(raw) < 4 + 4 * dims:
        raise EdgecnnError(
            f"{path}: not a uint8 IDX file with {' or '.join(map(str, ndim))} axes (header {raw[:4].hex()})"
        )
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape, dtype=np.int64)):
        raise EdgecnnError(f"{path}: header says shape {shape} but holds {body.size} values")
    return body.reshape(shape)


def expand_image_paths(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, directories expanded to their image files (recursively, sorted).

    Raises EdgecnnError for a path that does not exist or a directory with no images.
    """
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise EdgecnnError(f"{p}: directory holds no images ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        else:
            raise EdgecnnError(f"{p}: no such file or directory")
    return paths


def iter_images(paths: Iterable[Path]) -> Iterator[tuple[Path, np.ndarray | None, str | None]]:
    """Yield (path, frame, None) per readable image and (path, None, error) per bad one."""
    for path in paths:
        try:
            yield path, read_image(path), None
        except EdgecnnError as exc:
            yield path, None, str(exc)


# ---------------------------------------------------------------------------
# Video sources: camera index, device path, video file or stream URL, one code path.

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtp", "srt", "udp", "tcp", "http", "https")

# ffmpeg's own log (e.g. "[mjpeg @ 0x...] error count: 64" for a damaged frame) would
# interleave with our output; OpenCV reads this when its ffmpeg backend first loads.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@dataclass(frozen=True)
class VideoInfo:
    """What a video source says about itself. fps and frame_count are 0 when unknown."""

    name: str
    kind: str  # "camera" (index or device), "stream" (URL) or "file"
    width: int
    height: int
    fps: float
    frame_count: int
    backend: str

    @property
    def live(self) -> bool:
        """Frames arrive at the source's pace whether or not we read them."""
        return self.kind != "file"


def parse_video_source(source: str | int | os.PathLike) -> tuple[int | str, str]:
    """A video source -> (what cv2.VideoCapture opens, kind).

    An integer (or a string of digits) is a camera index; `/dev/...` a camera device;
    `scheme://...` a stream; anything else a video file, which must exist.
    """
    text = os.fspath(source).strip() if isinstance(source, (str, os.PathLike)) else str(source)
    if not text:
        raise EdgecnnError(
            "empty source (give a camera index like 0, a device, a video file or a URL)", parameter="source"
        )
    if text.isdigit():
        return int(text), "camera"
    scheme, sep, _ = text.partition("://")
    if sep:
        if scheme.lower() not in STREAM_SCHEMES:
            raise EdgecnnError(
                f"unsupported stream scheme {scheme!r} (supported: {', '.join(STREAM_SCHEMES)})",
                parameter="source",
                value=text,
            )
        return text, "stream"
    if text.startswith("/dev/"):
        if not Path(text).exists():
            raise EdgecnnError(f"camera {text}: no such device")
        return text, "camera"
    path = Path(text)
    if path.is_dir():
        raise EdgecnnError(
            "is a directory, not a video (the images in a directory are classified as images)",
            parameter="source",
            value=text,
        )
    if not path.is_file():
        raise EdgecnnError("no such video file (for a camera give its index, e.g. 0)", parameter="source", value=text)
    return str(path), "file"


def open_video(source: str | int | os.PathLike, timeout_s: float = 10.0) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a camera index, device, video file or stream URL with cv2.VideoCapture.

    Streams get open/read timeouts of `timeout_s` so a dead server cannot hang us.
    Raises EdgecnnError with one line when the source cannot be opened.
    """
    target, kind = parse_video_source(source)
    text = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
    with quiet_opencv():
        if kind == "stream":
            ms = int(max(timeout_s, 0.1) * 1000)
            cap = cv2.VideoCapture(
                target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            )
        else:
            cap = cv2.VideoCapture(target)
        opened = cap.isOpened()
    if not opened:
        cap.release()
        why = {
            "camera": "no such camera, or it is busy or not permitted",
            "stream": "server unreachable, stream not found, or unsupported format",
            "file": "not a video OpenCV can decode",
        }[kind]
        label = f"camera {text}" if kind == "camera" else str(text)
        raise EdgecnnError(f"{label}: cannot open ({why})")
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT) if kind == "file" else 0
    info = VideoInfo(
        name=str(text),
        kind=kind,
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        fps=float(fps) if np.isfinite(fps) and 0 < fps < 10_000 else 0.0,
        frame_count=int(count) if np.isfinite(count) and count > 0 else 0,
        backend=cap.getBackendName(),
    )
    return cap, info
