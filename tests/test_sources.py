"""Reading images: every layout OpenCV gives, and clear errors for bad files."""

import cv2
import numpy as np
import pytest

from edgecnn.errors import EdgecnnError
from edgecnn.sources import decode_image, expand_image_paths, iter_images, read_image


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def write(path, image, ext=".png"):
    ok, data = cv2.imencode(ext, image)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def test_reads_gray_bgr_bgra_and_16_bit(tmp_path, rng):
    gray = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    bgr = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    bgra = rng.integers(0, 256, (9, 7, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (9, 7, 3), dtype=np.uint16)
    assert np.array_equal(read_image(write(tmp_path / "g.png", gray)), gray)
    assert np.array_equal(read_image(write(tmp_path / "c.png", bgr)), bgr)
    assert np.array_equal(read_image(write(tmp_path / "a.png", bgra)), bgra)
    eight = read_image(write(tmp_path / "d.png", deep))
    assert eight.dtype == np.uint8 and eight.shape == (9, 7, 3)
    assert np.array_equal(eight, np.round(deep / 257).astype(np.uint8))


def test_missing_empty_non_image_and_truncated_files_give_one_line_errors(tmp_path, rng):
    jpeg = write(tmp_path / "photo.jpg", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), ".jpg")
    data = jpeg.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not an image")
    cases = {
        tmp_path / "absent.png": "no such file",
        tmp_path / "cut.jpg": "truncated",
        tmp_path / "empty.png": "empty",
        tmp_path / "text.png": "not a readable image",
        tmp_path: "is a directory",
    }
    for path, message in cases.items():
        with pytest.raises(EdgecnnError, match=message) as info:
            read_image(path)
        assert "\n" not in str(info.value)
    assert read_image(jpeg).shape == (64, 64, 3)


def test_decode_refuses_garbage_after_a_png_header():
    with pytest.raises(EdgecnnError, match="not a readable image"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "x.png")


def test_directories_expand_sorted_and_bad_files_are_reported_not_fatal(tmp_path, rng):
    for name in ("b.png", "a.png", "sub/c.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write(tmp_path / name, rng.integers(0, 256, (5, 5, 3), dtype=np.uint8), "." + name.split(".")[-1])
    (tmp_path / "broken.png").write_bytes(b"nope")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    paths = expand_image_paths([tmp_path])
    assert [p.name for p in paths] == ["a.png", "b.png", "broken.png", "c.jpg"]
    results = list(iter_images(paths))
    assert [e is None for _, _, e in results] == [True, True, False, True]
    with pytest.raises(EdgecnnError, match="no such file or directory"):
        expand_image_paths([tmp_path / "nope"])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(EdgecnnError, match="holds no images"):
        expand_image_paths([tmp_path / "empty_dir"])
