"""Small files whose headers declare huge images (decompression bombs), one per supported format.

Each builder returns the bytes of a file that declares `width` x `height` pixels; the
pixel data is a token amount, since a decoder that trusts the header allocates the
whole image before it notices the data is short.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def _patch_jpeg_sof(data: bytes, width: int, height: int) -> bytes:
    """A real JPEG with the frame header's size fields rewritten."""
    at = 2
    while at < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2 : at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]
        at += 2 + length
    raise AssertionError("no SOF marker")


def jpeg(width: int, height: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))
    assert ok
    return _patch_jpeg_sof(encoded.tobytes(), width, height)


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (width + 1)  # one gray row of zeros; the rest is missing
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * 4))
        + chunk(b"IEND", b"")
    )


def bmp(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 64, 0, 0, 54) + info + b"\x00" * 64


def tiff(width: int, height: int) -> bytes:
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8 + 2 + 12 * 8 + 4),
        (277, 3, 1, 1),
        (279, 4, 1, 64),
    ]
    ifd = (
        struct.pack("<H", len(entries))
        + b"".join(
            struct.pack("<HHI", tag, kind, count)
            + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
            for tag, kind, count, value in entries
        )
        + struct.pack("<I", 0)
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 64


def webp(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP: the canvas size allows up to 2^24 pixels a side."""
    vp8x = (
        b"VP8X"
        + struct.pack("<I", 10)
        + b"\x00\x00\x00\x00"
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    body = b"WEBP" + vp8x + b"VP8L" + struct.pack("<I", 5) + b"\x2f\x00\x00\x00\x00\x00"
    return b"RIFF" + struct.pack("<I", len(body)) + body


def gif(width: int, height: int) -> bytes:
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"
        + b","
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x02D\x01\x00;"
    )


def pnm(width: int, height: int) -> bytes:
    return f"P5\n# a comment\n{width} {height}\n255\n".encode() + b"\x00" * 64


BOMBS = {"jpeg": jpeg, "png": png, "bmp": bmp, "tiff": tiff, "webp": webp, "gif": gif, "pnm": pnm}
SUFFIXES = {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp", "tiff": ".tif", "webp": ".webp", "gif": ".gif", "pnm": ".pgm"}
