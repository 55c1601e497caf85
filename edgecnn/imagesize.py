"""Image format and declared size, read from the header without decoding anything.

A decompression bomb (a 631-byte JPEG or a 1 MB PNG declaring 20000x20000 pixels)
costs almost nothing until it is decoded, so its size must be judged from the header.
`sniff_format` names the format from the first bytes; `declared_size` parses that
format's header for its width and height.
Only these formats are decoded at all: anything else OpenCV could open is refused,
since its size could not be checked first.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import simplejpeg

SNIFF_BYTES = 32  # enough for every signature below

FORMATS = ("jpeg", "png", "bmp", "tiff", "webp", "gif", "pnm")
_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
_PNM = re.compile(rb"P([1-6])")


@dataclass(frozen=True)
class ImageHeader:
    """What a header declares: format and size."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff_format(head: bytes) -> str | None:
    """One of FORMATS from the first SNIFF_BYTES bytes, or None."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if _PNM.match(head[:2]) and head[2:3].isspace():
        return "pnm"
    return None


def declared_size(data: bytes) -> ImageHeader:
    """Parse the header of `data`; ValueError (one short phrase) when it is unsupported or malformed."""
    kind = sniff_format(data[:SNIFF_BYTES])
    if kind is None:
        raise ValueError(
            f"not a readable image (not one of the formats {', '.join(FORMATS)}; starts with {data[:8]!r})"
        )
    try:
        width, height = _PARSERS[kind](data)
    except (struct.error, IndexError, KeyError, ValueError) as exc:
        raise ValueError(f"not a readable image (malformed {kind} header: {exc or type(exc).__name__})") from None
    if width < 1 or height < 1:
        raise ValueError(f"not a readable image ({kind} header declares an empty {width}x{height} image)")
    return ImageHeader(kind, width, height)


def _jpeg(data: bytes) -> tuple[int, int]:
    height, width, _, _ = simplejpeg.decode_jpeg_header(data, strict=False)
    return width, height


def _png(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise KeyError("no IHDR chunk first")
    return struct.unpack(">II", data[16:24])


def _bmp(data: bytes) -> tuple[int, int]:
    (info_size,) = struct.unpack("<I", data[14:18])
    if info_size == 12:  # BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height)  # a top-down BMP stores a negative height


def _tiff(data: bytes) -> tuple[int, int]:
    """The first page's ImageWidth and ImageLength (OpenCV decodes the first page).

    More than 16 bits or 4 samples per pixel is refused here: decode_image could not
    use the result, and such a decode allocates up to 32 bytes per pixel.
    """
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43
    if big:
        offset = struct.unpack(order + "Q", data[8:16])[0]
        count = struct.unpack(order + "Q", data[offset : offset + 8])[0]
        entry, first, value_at, value_len = 20, offset + 8, 12, 8
    else:
        offset = struct.unpack(order + "I", data[4:8])[0]
        count = struct.unpack(order + "H", data[offset : offset + 2])[0]
        entry, first, value_at, value_len = 12, offset + 2, 8, 4
    sizes = {3: 2, 4: 4, 16: 8}  # SHORT, LONG, LONG8
    tags: dict[int, int] = {}
    for i in range(min(count, 4096)):
        at = first + i * entry
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if kind not in sizes:
            continue
        (values,) = struct.unpack(order + ("Q" if big else "I"), data[at + 4 : at + value_at])
        raw = data[at + value_at : at + value_at + value_len]
        if values * sizes[kind] > value_len:  # the values live elsewhere; raw holds their offset
            where = struct.unpack(order + ("Q" if big else "I"), raw)[0]
            raw = data[where : where + sizes[kind]]
        tags[tag] = struct.unpack(order + {3: "H", 4: "I", 16: "Q"}[kind], raw[: sizes[kind]])[0]
    bits, samples = tags.get(258, 8), tags.get(277, 1)
    if bits > 16 or samples > 4:
        raise KeyError(f"{bits} bits x {samples} samples per pixel (edgecnn reads up to 16 x 4)")
    return tags[256], tags[257]


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: frame tag (3), start code 9d 01 2a, 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            raise KeyError("no VP8 start code")
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2f, then 14-bit width-1 and height-1
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise KeyError(f"unknown first chunk {chunk!r}")


def _gif(data: bytes) -> tuple[int, int]:
    return struct.unpack("<HH", data[6:10])


_PNM_FIELD = re.compile(rb"(?:\s|#[^\n]*\n)+(\d{1,10})")


def _pnm(data: bytes) -> tuple[int, int]:
    """P1..P6: width and height as ASCII, with # comments allowed."""
    fields: list[int] = []
    at = 2
    while len(fields) < 2:
        match = _PNM_FIELD.match(data, at, at + 4096)
        if match is None:
            raise KeyError("no width/height/maxval")
        fields.append(int(match.group(1)))
        at = match.end()
    return fields[0], fields[1]


_PARSERS = {"jpeg": _jpeg, "png": _png, "bmp": _bmp, "tiff": _tiff, "webp": _webp, "gif": _gif, "pnm": _pnm}
