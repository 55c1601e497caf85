"""edgecnn.preprocess.to_batch: the fused kernel against its slow numpy twin and tf.image.resize."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecnn.preprocess import MAX_SIDE, METHODS, to_batch
from edgecnn.preprocess.slow import area_weights, quantize_u8, to_batch_slow

TWIN_ATOL = 1e-6  # kernel vs slow twin: same float ops (bilinear), float64 vs float32 sums (area)
TF_ATOL = 1e-5  # kernel vs TensorFlow, values in [0, 1]
# (source H, W) x (output h, w): 1x1, 1xN, Nx1, odd, up, down, extreme aspect ratios.
SOURCE_SIZES = [(1, 1), (1, 9), (9, 1), (7, 5), (13, 17), (48, 64), (2, 300), (300, 3)]
TARGET_SIZES = [(1, 1), (1, 7), (7, 1), (5, 3), (28, 28), (40, 9), (3, 50)]


def frame(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def layouts(height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every input layout: gray HxW and HxWx1, 3 channels, 4 channels."""
    return {
        "gray": frame((height, width), seed),
        "gray1": frame((height, width, 1), seed + 1),
        "c3": frame((height, width, 3), seed + 2),
        "c4": frame((height, width, 4), seed + 3),
    }


def check_twin(frames, size, **kw) -> np.ndarray:
    """Kernel vs slow twin within TWIN_ATOL of the output's span (255 * scale / |std|; 1 by default)."""
    got = to_batch(frames, size, **kw)
    kw.pop("threads", None)
    want = to_batch_slow(frames, size, **kw)
    assert got.shape == want.shape and got.dtype == np.float32
    span = 255 * abs(kw.get("scale", 1 / 255)) / np.min(np.abs(kw.get("std", (1.0,))))
    np.testing.assert_allclose(got, want, rtol=0, atol=TWIN_ATOL * max(1.0, span))
    return got


# ------------------------------------------------------------ kernel vs slow twin


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("src", SOURCE_SIZES, ids=str)
def test_matches_slow_twin_all_sizes_and_layouts(method, src):
    for layout in layouts(*src).values():
        for size in TARGET_SIZES:
            for color in ("rgb", "gray"):
                for order in ("bgr", "rgb"):
                    check_twin([layout], size, color=color, src_order=order, method=method)


# Normalisations a model may declare: Keras Applications' "tf", "torch" and "caffe" modes,
# an in-graph-rescaling model (scale 1) and an arbitrary one.
NORMALISATIONS = {
    "tf": dict(scale=1 / 127.5, mean=(1.0, 1.0, 1.0)),
    "torch": dict(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "caffe": dict(scale=1.0, mean=(103.939, 116.779, 123.68), channel_order="bgr"),
    "raw": dict(scale=1.0),
    "odd": dict(scale=0.37, mean=(-3.0, 0.5, 250.0), std=(0.01, -2.0, 7.5)),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", NORMALISATIONS)
def test_normalisation_matches_formula(name, method):
    """(value * scale - mean) / std per channel, channel order included, within 1e-6 of numpy."""
    norm = NORMALISATIONS[name]
    for src in ((1, 1), (13, 17), (48, 64)):
        for layout in layouts(*src, seed=7).values():
            for size in ((1, 1), (5, 3), (28, 28)):
                for order in ("bgr", "rgb"):
                    check_twin([layout], size, src_order=order, method=method, **norm)
    gray_norm = dict(scale=norm["scale"], mean=norm.get("mean", (0.0,))[:1], std=norm.get("std", (1.0,))[:1])
    check_twin([frame((13, 17, 3))], (5, 3), color="gray", method=method, **gray_norm)


def test_normalisation_defaults_are_exact_and_orders_swap():
    src = frame((9, 11, 3), seed=3)
    plain = to_batch([src], (4, 5))
    np.testing.assert_array_equal(to_batch([src], (4, 5), mean=(0, 0, 0), std=(1, 1, 1)), plain)
    np.testing.assert_array_equal(to_batch([src], (4, 5), channel_order="bgr"), plain[..., ::-1])
    shifted = to_batch([src], (4, 5), scale=1.0, mean=(10, 20, 30), std=(2, 4, 8))
    np.testing.assert_allclose(shifted, (to_batch([src], (4, 5), scale=1.0) - [10, 20, 30]) / [2, 4, 8], atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_camera_frame_to_model_sizes(method):
    cam = frame((480, 640, 3))
    check_twin([cam], (180, 180), method=method)
    check_twin([cam], (224, 224), method=method)
    check_twin([cam], (28, 28), color="gray", method=method)


def test_identity_size_is_exact():
    src = frame((9, 11, 3))
    for method in METHODS:
        got = to_batch([src], (9, 11), src_order="rgb", scale=1.0, method=method)
        np.testing.assert_array_equal(got[0], src.astype(np.float32))


def test_bgr_rgb_and_alpha_are_channel_ops():
    bgra = frame((6, 10, 4))
    rgb = to_batch([bgra], (4, 5), src_order="bgr")
    np.testing.assert_array_equal(rgb, to_batch([np.ascontiguousarray(bgra[:, :, 2::-1])], (4, 5), src_order="rgb"))
    np.testing.assert_array_equal(rgb, to_batch([bgra[:, :, :3]], (4, 5), src_order="bgr"))


def test_gray_frame_to_rgb_repeats_the_channel():
    gray = frame((8, 6))
    out = to_batch([gray], (5, 5), color="rgb")
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_array_equal(out[..., :1], to_batch([gray], (5, 5), color="gray"))


def test_scale_is_a_parameter():
    src = frame((20, 30, 3))
    for method in METHODS:
        raw = to_batch([src], (7, 9), scale=1.0, method=method)
        unit = to_batch([src], (7, 9), method=method)
        np.testing.assert_allclose(raw / 255, unit, rtol=1e-6, atol=1e-7)
        assert raw.max() > 1.5


def test_area_weights_rows_sum_to_the_scale():
    for n_in, n_out in [(640, 28), (7, 3), (5, 5), (3, 7), (1, 4), (480, 180)]:
        sums = area_weights(n_in, n_out).sum(axis=1)
        np.testing.assert_allclose(sums, n_in / n_out, rtol=1e-5)


# ------------------------------------------------------------ batches, views, threads, out


@pytest.mark.parametrize("method", METHODS)
def test_frames_of_mixed_sizes_and_layouts_threads_agree(method):
    frames = [
        frame((480, 640, 3), 1),
        frame((31, 17), 2),
        frame((1, 1, 4), 3),
        frame((100, 7, 3), 4),
        frame((5, 300, 1), 5),
        frame((240, 320, 3), 6),
    ]
    one = check_twin(frames, (28, 36), method=method, threads=1)
    for threads in (2, 3, 16):
        np.testing.assert_array_equal(to_batch(frames, (28, 36), method=method, threads=threads), one)


def test_non_contiguous_views():
    base = frame((60, 80, 4))
    views = {
        "crop (row stride)": base[5:50, 10:70, :3],
        "step slices": base[::3, ::2, :3],
        "channels reversed": base[:, :, 2::-1],
        "transposed": base[:, :, :3].transpose(1, 0, 2),
        "upside down (negative row stride)": base[::-1, :, :3],
        "gray column view": base[:, 3:40, 1],
        "fortran order": np.asfortranarray(base[:, :, :3]),
    }
    for name, view in views.items():
        for method in METHODS:
            got = to_batch([view], (13, 11), method=method)
            want = to_batch([np.ascontiguousarray(view)], (13, 11), method=method)
            np.testing.assert_array_equal(got, want, err_msg=name)
            check_twin([view], (13, 11), method=method)


def test_4d_batch_equals_list():
    batch = frame((5, 33, 47, 3))
    for method in METHODS:
        want = to_batch(list(batch), (10, 12), method=method)
        np.testing.assert_array_equal(to_batch(batch, (10, 12), method=method), want)
        np.testing.assert_array_equal(to_batch(batch, (10, 12), method=method, threads=2), want)
        np.testing.assert_array_equal(to_batch(tuple(batch), (10, 12), method=method), want)
    strided = frame((4, 20, 30, 4))[:, ::2, 1:, :3]
    np.testing.assert_array_equal(
        to_batch(strided, (6, 6)), to_batch([np.ascontiguousarray(f) for f in strided], (6, 6))
    )


def test_out_buffer_is_filled_and_reused():
    frames = [frame((40, 50, 3), i) for i in range(3)]
    for method in METHODS:
        for color, channels in (("rgb", 3), ("gray", 1)):
            out = np.full((3, 9, 8, channels), np.nan, dtype=np.float32)
            got = to_batch(frames, (9, 8), color=color, method=method, out=out)
            assert got is out and not np.isnan(out).any()
            np.testing.assert_array_equal(out, to_batch(frames, (9, 8), color=color, method=method))
            again = to_batch(frames[::-1], (9, 8), color=color, method=method, out=out)
            assert again is out
            np.testing.assert_array_equal(out[0], to_batch([frames[2]], (9, 8), color=color, method=method)[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    src=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    channels=st.sampled_from([0, 1, 3, 4]),
    color=st.sampled_from(["rgb", "gray"]),
    order=st.sampled_from(["bgr", "rgb"]),
    method=st.sampled_from(METHODS),
    threads=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_match_slow_twin(src, size, channels, color, order, method, threads, seed):
    shape = src if channels == 0 else (*src, channels)
    frames = [frame(shape, seed), frame(shape, seed + 1)]
    check_twin(frames, size, color=color, src_order=order, method=method, threads=threads)


@pytest.fixture
def portable_only():
    """The kernels with the AVX2 paths (bilinear pass, uint8 windows) switched off (restored afterwards)."""
    from edgecnn.preprocess import _kernels

    if not _kernels.set_avx2(True):
        pytest.skip("this CPU has no AVX2: only the portable path exists here")
    _kernels.set_avx2(False)
    yield
    _kernels.set_avx2(True)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    src=st.tuples(st.integers(1, 64), st.integers(1, 700)),
    size=st.tuples(st.integers(1, 40), st.integers(1, 200)),
    channels=st.sampled_from([3, 4]),
    order=st.sampled_from(["bgr", "rgb"]),
    crop=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_avx2_and_portable_bilinear_are_bit_identical(portable_only, src, size, channels, order, crop, seed):
    """Random widths (the AVX2 pass takes the interior, the edges stay portable), crops
    whose rows end inside a wider buffer, 3 and 4 channels, both channel orders."""
    from edgecnn.preprocess import _kernels

    frames = [frame((src[0], src[1] + crop, channels), seed)[:, crop:]]
    want = to_batch(frames, size, src_order=order)
    _kernels.set_avx2(True)
    got = to_batch(frames, size, src_order=order)
    _kernels.set_avx2(False)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------ windows and uint8 (INT8 graph inputs)

# (patch, patch_pads, depth): a folded 3x3 valid conv (catsdogs), a 'same' one (fmnist), channel
# padding only, an odd rectangle with uneven pads, and a window larger than the 16-byte move.
WINDOWS = [((3, 3), (0, 0, 0, 0), 28), ((3, 3), (1, 1, 1, 1), 28), ((1, 1), (0, 0, 0, 0), 4),
           ((2, 5), (1, 0, 0, 4), 33), ((5, 7), (2, 3, 2, 3), None)]  # fmt: skip
QUANTIZATIONS = [None, (1 / 255, 0), (2 / 255, 128), (0.0123, 7)]


@pytest.mark.parametrize("patch, pads, depth", WINDOWS, ids=str)
@pytest.mark.parametrize("quantization", QUANTIZATIONS, ids=str)
def test_windows_match_slow_twin(patch, pads, depth, quantization):
    """Float windows within TWIN_ATOL of the twin; uint8 ones exactly the twin's formula applied
    to the kernel's own floats, and within one step of the twin's (float rounding of the resize
    may cross a rounding boundary)."""
    for src, size in [((48, 64), (9, 11)), ((7, 5), (5, 7)), ((480, 640), (28, 28)), ((1, 1), (6, 3))]:
        for color in ("rgb", "gray"):
            frames = [frame((*src, 3), 1), frame((*src, 3), 2)]
            kw = dict(color=color, patch=patch, patch_pads=pads, depth=depth)
            want = to_batch_slow(frames, size, quantization=quantization, **kw)
            got = to_batch(frames, size, quantization=quantization, threads=2, **kw)
            assert got.shape == want.shape and got.dtype == want.dtype
            if quantization is None:
                np.testing.assert_allclose(got, want, rtol=0, atol=TWIN_ATOL)
                continue
            floats = to_batch(frames, size, **kw)
            zero = quantization[1]
            tail = floats.shape[3] if depth is None else patch[0] * patch[1] * (1 if color == "gray" else 3)
            exact = quantize_u8(floats, *quantization)
            exact[..., tail:] = zero
            np.testing.assert_array_equal(got, exact)
            assert np.abs(got.astype(int) - want).max() <= 1


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    size=st.tuples(st.integers(1, 30), st.integers(1, 30)),
    color=st.sampled_from(["rgb", "gray"]),
    patch=st.tuples(st.integers(1, 5), st.integers(1, 6)),
    pads=st.tuples(*[st.integers(0, 4)] * 4),
    extra=st.integers(0, 9),
    zero_point=st.integers(0, 255),
    n=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_avx2_and_portable_uint8_windows_are_bit_identical(
    portable_only, size, color, patch, pads, extra, zero_point, n, seed
):
    """Shuffled 16-byte blocks (up to 4 rows of 16 bytes into 64) vs plain copies, on random
    windows, pads, depths and zero points, including windows too wide for the shuffles."""
    from edgecnn.preprocess import _kernels

    pads = tuple(min(p, side - 1) for p, side in zip(pads, patch * 2, strict=True))
    if size[0] + pads[0] + pads[2] < patch[0] or size[1] + pads[1] + pads[3] < patch[1]:
        return
    depth = patch[0] * patch[1] * (1 if color == "gray" else 3) + extra
    frames = [frame((17, 23, 3), seed + i) for i in range(n)]
    kw = dict(color=color, patch=patch, patch_pads=pads, depth=depth, quantization=(0.01, zero_point))
    want = to_batch(frames, size, **kw)
    _kernels.set_avx2(True)
    got = to_batch(frames, size, **kw)
    _kernels.set_avx2(False)
    np.testing.assert_array_equal(got, want)


def test_windows_hold_each_positions_neighbourhood_and_zero_fill():
    """An identity resize of a frame whose pixels count 0, 1, 2, ...: every value in the
    windows names the pixel it came from, so a shifted or mis-padded window is a wrong integer."""
    h, w = 4, 5
    pixels = np.arange(h * w, dtype=np.uint8).reshape(h, w)
    out = to_batch([pixels], (h, w), color="gray", scale=1.0, patch=(3, 3), patch_pads=(1, 1, 1, 1), depth=11)
    assert out.shape == (1, h, w, 11)
    padded = np.pad(pixels.astype(np.float32), 1, constant_values=0)
    for y in range(h):
        for x in range(w):
            np.testing.assert_array_equal(out[0, y, x, :9], padded[y : y + 3, x : x + 3].reshape(-1))
            np.testing.assert_array_equal(out[0, y, x, 9:], [0, 0])
    # RGB: (row, column, channel) order; bgr source swapped inside each pixel
    rgb = np.stack([pixels, pixels + 100, pixels + 200], axis=2)[:, :, ::-1].copy()  # stored as BGR
    out = to_batch([rgb], (h, w), scale=1.0, patch=(2, 2), depth=13)
    want = np.stack([pixels, pixels + 100, pixels + 200], axis=2).astype(np.float32)
    np.testing.assert_array_equal(out[0, 1, 2, :12], want[1:3, 2:4].reshape(-1))
    assert out[0, 1, 2, 12] == 0


def test_quantization_rounds_half_to_even_and_saturates():
    """Raw pixel values (scale 1) quantised with scale 2 fall on exact halves for odd pixels;
    zero points push values past both ends of uint8."""
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)

    def quantized(quantization, mean=None):
        out = to_batch([pixels], (16, 16), color="gray", scale=1.0, mean=mean, quantization=quantization)
        return out[0, :, :, 0].reshape(-1).astype(int)

    halves = quantized((2.0, 0))
    np.testing.assert_array_equal(halves, np.rint(np.arange(256) / 2))
    assert halves[[1, 3, 5, 7]].tolist() == [0, 2, 2, 4]  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4
    np.testing.assert_array_equal(quantized((1.0, 200)), np.minimum(np.arange(256) + 200, 255))
    np.testing.assert_array_equal(quantized((1.0, 10), mean=(100.0,)), np.maximum(np.arange(256) - 90, 0))


def test_bad_window_arguments_raise_clear_errors():
    ok = [frame((4, 4, 3))]
    raises_one_line("patch must be", ok, (4, 4), patch=(0, 3))
    raises_one_line("patch must be", ok, (4, 4), patch=(3,))
    raises_one_line("patch must be", ok, (4, 4), patch=(2.0, 2))
    raises_one_line(r"patch_pads must be .* got \(3, 0, 0, 0\)", ok, (4, 4), patch=(3, 3), patch_pads=(3, 0, 0, 0))
    raises_one_line("patch_pads must be", ok, (4, 4), patch_pads=(0, 0, 0))
    raises_one_line(r"patch \(5, 5\) is larger than the padded size", ok, (4, 4), patch=(5, 5))
    raises_one_line("depth must be an int from 27", ok, (4, 4), patch=(3, 3), depth=26)
    raises_one_line("depth must be an int from 3", ok, (4, 4), depth=1.5)
    for bad in [(0.0, 0), (float("inf"), 0), (1.0, 256), (1.0, -1), (1.0, 1.0), (1.0,), "x"]:
        raises_one_line("quantization must be", ok, (4, 4), quantization=bad)
    msg = raises_one_line("out must be", ok, (4, 4), depth=4, quantization=(1.0, 0), out=np.empty((1, 4, 4, 4)))
    assert "uint8" in msg and "(1, 4, 4, 4)" in msg


# ------------------------------------------------------------ against TensorFlow


def tf_reference(frames: list[np.ndarray], size, color: str, src_order: str, method: str) -> np.ndarray:
    """What a Keras user computes: tf.image.resize, rgb_to_grayscale, / 255 (same-shape frames)."""
    tf = pytest.importorskip("tensorflow")
    batch = np.stack(frames)
    if batch.ndim == 3:
        batch = batch[..., None]
    if batch.shape[3] > 1:
        batch = batch[..., :3][..., ::-1] if src_order == "bgr" else batch[..., :3]
    if color == "rgb" and batch.shape[3] == 1:
        batch = np.repeat(batch, 3, axis=3)
    out = tf.image.resize(tf.constant(batch), size, method=method, antialias=False)
    if color == "gray" and out.shape[3] == 3:
        out = tf.image.rgb_to_grayscale(out)
    return out.numpy() / np.float32(255)


def real_photos(folder, n: int) -> list[np.ndarray]:
    import cv2

    paths = sorted(folder.rglob("*.jpg"))[:n]
    return [cv2.resize(cv2.imread(str(p)), (640, 480)) for p in paths]


@pytest.mark.parametrize("method", METHODS)
def test_matches_tensorflow(method):
    pytest.importorskip("tensorflow")
    worst = 0.0
    cases = [(src, size) for src in SOURCE_SIZES for size in TARGET_SIZES] + [
        ((480, 640), (180, 180)),
        ((480, 640), (28, 28)),
    ]
    for src, size in cases:
        for name, layout in layouts(*src).items():
            for color in ("rgb", "gray"):
                frames = [layout, layout[::-1].copy()]
                got = to_batch(frames, size, color=color, src_order="bgr", method=method)
                want = tf_reference(frames, size, color, "bgr", method)
                err = float(np.abs(got - want).max())
                assert err <= TF_ATOL, f"{method} {name} {src}->{size} {color}: {err}"
                worst = max(worst, err)
    assert worst < TF_ATOL


@pytest.mark.parametrize("method", METHODS)
def test_matches_tensorflow_on_real_photos(method, catsdogs_dir):
    pytest.importorskip("tensorflow")
    photos = real_photos(catsdogs_dir, 4)
    assert len(photos) == 4
    for size, color in (((180, 180), "rgb"), ((224, 224), "rgb"), ((28, 28), "gray"), ((96, 128), "gray")):
        got = to_batch(photos, size, color=color, method=method, threads=2)
        want = tf_reference(photos, size, color, "bgr", method)
        assert float(np.abs(got - want).max()) <= TF_ATOL


# ------------------------------------------------------------ errors


def raises_one_line(match: str, *args, **kw) -> str:
    with pytest.raises(ValueError, match=match) as info:
        to_batch(*args, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_frames_raise_clear_errors():
    ok = frame((4, 4, 3))
    msg = raises_one_line("frame 1 must be a uint8", [ok, np.zeros((4, 4, 3))], (2, 2))
    assert "(4, 4, 3)" in msg and "float64" in msg
    raises_one_line(r"got shape \(4, 4, 2\)", [frame((4, 4, 2))], (2, 2))
    raises_one_line(r"got shape \(4,\)", [frame((4,))], (2, 2))
    raises_one_line(r"got shape \(1, 4, 4, 3\)", [frame((1, 4, 4, 3))], (2, 2))
    raises_one_line("frame 0 must be a numpy uint8 array, got list", [[[1, 2], [3, 4]]], (2, 2))
    raises_one_line(r"frame 0 is empty: shape \(0, 5, 3\)", [np.zeros((0, 5, 3), np.uint8)], (2, 2))
    raises_one_line(r"frame 0 is empty: shape \(5, 0, 1\)", [np.zeros((5, 0), np.uint8)], (2, 2))
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (MAX_SIDE + 1, 2, 3))
    raises_one_line("too large", [huge], (2, 2))
    raises_one_line("frames is empty", [], (2, 2))
    raises_one_line("frames is empty", np.zeros((0, 4, 4, 3), np.uint8), (2, 2))
    raises_one_line(r"got an array of shape \(4, 4, 3\)", ok, (2, 2))
    raises_one_line("float32", np.zeros((2, 4, 4, 3), np.float32), (2, 2))
    raises_one_line("got generator", (f for f in [ok]), (2, 2))


def test_bad_arguments_raise_clear_errors():
    ok = [frame((4, 4, 3))]
    for size in [(0, 3), (3, -1), (MAX_SIDE + 1, 2)]:
        raises_one_line("size must be", ok, size)
    raises_one_line("size must be", ok, (1, 2, 3))
    raises_one_line("size must be", ok, "ab")
    raises_one_line("size must be", ok, 5)
    raises_one_line("color must be one of", ok, (2, 2), color="bgr")
    raises_one_line("src_order must be one of", ok, (2, 2), src_order="gray")
    raises_one_line("method must be one of .* got 'nearest'", ok, (2, 2), method="nearest")
    for threads in (0, -1, 1.5, True, "2"):
        raises_one_line("threads must be", ok, (2, 2), threads=threads)
    raises_one_line("scale must be a finite", ok, (2, 2), scale=float("nan"))
    raises_one_line("channel_order must be one of", ok, (2, 2), channel_order="gbr")
    raises_one_line(r"mean must be 3 finite numbers .* got \(1.0, 2.0\)", ok, (2, 2), mean=(1.0, 2.0))
    raises_one_line("mean must be 1 finite", ok, (2, 2), color="gray", mean=(1.0, 2.0, 3.0))
    raises_one_line("std must be 3 numbers", ok, (2, 2), std="abc")
    raises_one_line("std must not be 0", ok, (2, 2), std=(1.0, 0.0, 1.0))
    raises_one_line("std must be 3 finite", ok, (2, 2), std=(1.0, float("inf"), 1.0))


def test_bad_out_buffers_raise_clear_errors():
    ok = [frame((4, 4, 3))] * 2
    msg = raises_one_line("out must be", ok, (2, 3), out=np.empty((2, 3, 2, 3), np.float32))
    assert "(2, 2, 3, 3)" in msg and "(2, 3, 2, 3)" in msg
    raises_one_line("out must be", ok, (2, 3), out=np.empty((2, 2, 3, 3), np.float64))
    raises_one_line("out must be", ok, (2, 3), color="gray", out=np.empty((2, 2, 3, 3), np.float32))
    raises_one_line("out must be", ok, (2, 3), out=np.empty((2, 2, 3, 6), np.float32)[..., ::2])
    readonly = np.empty((2, 2, 3, 3), np.float32)
    readonly.flags.writeable = False
    raises_one_line("out must be", ok, (2, 3), out=readonly)
    raises_one_line("got list", ok, (2, 3), out=[0.0])
