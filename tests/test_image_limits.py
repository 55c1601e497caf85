"""Hostile image files: decompression bombs in every format, device files, JPEG integrity, IDX files."""

import os
import resource
import subprocess
import sys

import bombs
import cv2
import numpy as np
import pytest
from conftest import REPO

from edgecnn.errors import EdgecnnError
from edgecnn.imagesize import FORMATS, declared_size
from edgecnn.sources import MAX_IMAGE_PIXELS, decode_image, read_idx, read_image


@pytest.mark.parametrize("kind", sorted(bombs.BOMBS))
def test_header_size_is_read_for_every_supported_format(kind):
    assert set(bombs.BOMBS) == set(FORMATS)
    header = declared_size(bombs.BOMBS[kind](20000, 30000))
    assert (header.format, header.width, header.height) == (kind, 20000, 30000)


@pytest.mark.parametrize("kind", sorted(bombs.BOMBS))
def test_bombs_are_refused_from_the_header(kind, tmp_path):
    path = tmp_path / f"bomb{bombs.SUFFIXES[kind]}"
    path.write_bytes(bombs.BOMBS[kind](20000, 20000))
    with pytest.raises(EdgecnnError, match=r"20000x20000 pixels is too large .*refused before decoding") as info:
        read_image(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".tif", ".webp", ".gif", ".ppm"])
def test_real_files_of_every_format_still_decode_with_the_size_their_header_declares(ext):
    image = np.random.default_rng(1).integers(0, 256, (9, 7, 3), np.uint8)
    params = [cv2.IMWRITE_WEBP_QUALITY, 80] if ext == ".webp" else []  # lossy VP8, not VP8L
    ok, data = cv2.imencode(ext, image, params)
    assert ok
    header = declared_size(data.tobytes())
    assert (header.width, header.height) == (7, 9)
    assert decode_image(data.tobytes(), ext).shape[:2] == (9, 7)


MEMORY_PROBE = """
import resource, sys
sys.path.insert(0, sys.argv[1])
import bombs
from edgecnn.errors import EdgecnnError
from edgecnn.sources import decode_image
for kind, build in bombs.BOMBS.items():  # warm every decoder path first
    try:
        decode_image(build(9, 7), kind)
    except EdgecnnError:
        pass
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for kind, build in bombs.BOMBS.items():
    try:
        decode_image(build(20000, 20000), kind)
        print(kind, "accepted")
    except EdgecnnError:
        pass
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_peak_memory_for_a_20000x20000_bomb_of_every_format_stays_under_100_mb():
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(REPO / "tests")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    *accepted, grown_mb = result.stdout.split("\n")[:-1]
    assert not accepted
    assert float(grown_mb) < 100, f"peak memory grew by {grown_mb} MB"


def test_classifying_a_bomb_costs_no_more_memory_than_classifying_a_small_image(tmp_path):
    """The whole CLI, peak resident memory of the child: bomb vs a 7x9 image (same model, same imports)."""
    (tmp_path / "bomb.png").write_bytes(bombs.png(20000, 20000))
    (tmp_path / "small.pgm").write_bytes(bombs.pnm(9, 7))
    peaks = {}
    for name in ("small.pgm", "bomb.png"):
        child = subprocess.Popen(
            [sys.executable, "-m", "edgecnn.cli.infer", "--model", "fmnist", str(tmp_path / name)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, _, usage = os.wait4(child.pid, 0)
        err = child.stderr.read().decode()
        peaks[name] = usage.ru_maxrss / 1024
    assert "too large" in err and "Traceback" not in err
    assert peaks["bomb.png"] - peaks["small.pgm"] < 100, peaks


def test_device_files_and_non_images_are_refused_without_reading_them_out(tmp_path):
    with pytest.raises(EdgecnnError, match="not a readable image"):
        read_image("/dev/zero")  # endless: reading it out would exhaust memory
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(EdgecnnError, match="not a readable image"):
        read_image("/dev/urandom")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024
    assert MAX_IMAGE_PIXELS < 20000 * 20000


def jpeg_bytes() -> bytes:
    rng = np.random.default_rng(5)
    image = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (96, 64))
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def test_jpeg_integrity_is_judged_by_the_decoder_not_by_the_last_bytes():
    data = jpeg_bytes()
    with pytest.raises(EdgecnnError, match="corrupt or truncated JPEG data"):
        decode_image(data[: len(data) // 2] + b"\xff\xd9", "half.jpg")  # ends like a whole file
    with pytest.raises(EdgecnnError, match="corrupt or truncated JPEG data"):
        decode_image(data[: len(data) // 2], "cut.jpg")
    whole = decode_image(data, "whole.jpg")
    trailing = decode_image(data + b"\x00" * 100 + b"trailing bytes after EOI", "trailing.jpg")
    assert np.array_equal(trailing, whole)  # TensorFlow decodes these too
    junk = decode_image(data[:-2] + b"junk" + data[-2:], "junk.jpg")  # libjpeg: 4 extraneous bytes before 0xd9
    assert np.array_equal(junk, whole)


def test_bad_idx_files_are_one_line_errors(tmp_path):
    import gzip

    cases = {
        "plain.gz": b"not gzip at all",
        "short.gz": gzip.compress(b"\x00\x00"),
        "magic.gz": gzip.compress(b"\x01\x02\x03\x04" + b"\x00" * 20),
        "count.gz": gzip.compress(
            b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 9
        ),
        "axes.gz": gzip.compress(b"\x00\x00\x08\x03\x00\x00"),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(EdgecnnError) as info:
            read_idx(tmp_path / name)
        assert str(info.value).startswith(str(tmp_path / name)) and "\n" not in str(info.value)
