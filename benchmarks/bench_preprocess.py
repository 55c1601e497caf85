"""Is edgecnn's fused preprocess kernel faster than what a user would write, and how close to memory speed?

Two paths, each fed the same 32 frames of 480x640x3 uint8 BGR (real photos from
the cats-vs-dogs set, tiled to 480x640; a noisy gradient when the set is missing):

- rgb:  -> (32, 180, 180, 3) float32 RGB in [0, 1], bilinear
- gray: -> (32, 28, 28, 1) float32 gray in [0, 1], area (the Fashion-MNIST model)

Compared in the same run: (1) naive OpenCV per frame + np.stack, (2) the best
OpenCV variant (preallocated output, fused scaling), (3) tf.image.resize (when
TensorFlow is installed), (4) edgecnn with 1 and 2 threads, and the bandwidth
bound: bytes the kernel must read + write over a copy bandwidth measured here.
Prints medians and ratios. Run on an idle machine:

    python benchmarks/bench_preprocess.py [--repeats 30] [--no-tf]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
from collections.abc import Callable

import cv2
import numpy as np
from _common import median_seconds

from edgecnn.datasets import data_root
from edgecnn.preprocess import to_batch

N, SRC_H, SRC_W = 32, 480, 640


def make_frames(seed: int = 0) -> list[np.ndarray]:
    """32 distinct 480x640x3 BGR frames: photos tiled to size, or a noisy gradient."""
    paths = sorted(glob.glob(str(data_root() / "cats_vs_dogs" / "**" / "*.jp*g"), recursive=True))[: 4 * N]
    photos = [img for img in (cv2.imread(p) for p in paths) if img is not None]
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(N):
        if len(photos) >= 4:
            tiles = [cv2.resize(photos[(4 * i + k) % len(photos)], (SRC_W // 2, SRC_H // 2)) for k in range(4)]
            frame = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
        else:
            yy, xx = np.mgrid[0:SRC_H, 0:SRC_W]
            base = np.stack([xx * 255 // SRC_W, yy * 255 // SRC_H, (xx + yy + 7 * i) % 256], axis=2)
            frame = np.clip(base + rng.normal(0, 12, base.shape), 0, 255)
        frames.append(np.ascontiguousarray(frame, dtype=np.uint8))
    return frames


def copy_bandwidth(repeats: int) -> float:
    """Bytes per second (read + written) of a large memcpy-like numpy copy."""
    src = np.ones(64 << 20, dtype=np.uint8)
    dst = np.empty_like(src)
    ms = median_seconds(lambda: np.copyto(dst, src), repeats) * 1e3
    return 2 * src.nbytes / (ms / 1e3)


def one_cv2_thread(fn: Callable[[], object]) -> Callable[[], object]:
    """fn with OpenCV's own threading off (edgecnn's 1-thread row is single-threaded too)."""

    def run():
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return fn()
        finally:
            cv2.setNumThreads(threads)

    return run


def rgb_contenders(frames: list[np.ndarray], use_tf: bool) -> dict[str, Callable[[], object]]:
    h, w = 180, 180
    out = np.empty((N, h, w, 3), np.float32)
    small = np.empty((h, w, 3), np.uint8)
    rgb = np.empty((h, w, 3), np.uint8)
    inv = np.float32(1 / 255)

    def naive():
        return np.stack(
            [
                cv2.cvtColor(cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB).astype(
                    np.float32
                )
                / 255
                for f in frames
            ]
        )

    def best_cv2():
        for i, f in enumerate(frames):
            cv2.resize(f, (w, h), dst=small, interpolation=cv2.INTER_LINEAR)
            cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=rgb)
            np.multiply(rgb, inv, out=out[i])
        return out

    found = {"(1) cv2 resize+cvtColor+astype/255+stack": naive, "(2) cv2 best: prealloc, fused scale": best_cv2}
    found["(1) same, cv2.setNumThreads(1)"] = one_cv2_thread(naive)
    found["(2) same, cv2.setNumThreads(1)"] = one_cv2_thread(best_cv2)
    if use_tf:
        import tensorflow as tf

        batch = np.stack(frames)
        found["(3) tf.image.resize (batch)"] = lambda: (
            tf.image.resize(batch[..., ::-1], (h, w), method="bilinear", antialias=False) / 255
        ).numpy()
    found["(4) edgecnn 1 thread"] = lambda: to_batch(frames, (h, w), out=out, threads=1)
    found["(4) edgecnn 2 threads"] = lambda: to_batch(frames, (h, w), out=out, threads=2)
    return found


def gray_contenders(frames: list[np.ndarray], use_tf: bool) -> dict[str, Callable[[], object]]:
    h, w = 28, 28
    out = np.empty((N, h, w, 1), np.float32)
    gray = np.empty((SRC_H, SRC_W), np.uint8)
    small = np.empty((h, w), np.uint8)
    inv = np.float32(1 / 255)

    def naive():
        return np.stack(
            [
                cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
                / 255
                for f in frames
            ]
        )[..., None]

    def best_cv2():
        for i, f in enumerate(frames):
            cv2.cvtColor(f, cv2.COLOR_BGR2GRAY, dst=gray)
            cv2.resize(gray, (w, h), dst=small, interpolation=cv2.INTER_AREA)
            np.multiply(small, inv, out=out[i, :, :, 0])
        return out

    found = {"(1) cv2 cvtColor+resize(AREA)+astype/255+stack": naive, "(2) cv2 best: prealloc, fused scale": best_cv2}
    found["(1) same, cv2.setNumThreads(1)"] = one_cv2_thread(naive)
    found["(2) same, cv2.setNumThreads(1)"] = one_cv2_thread(best_cv2)
    if use_tf:
        import tensorflow as tf

        batch = np.stack(frames)
        found["(3) tf.image.resize(area)+rgb_to_grayscale"] = lambda: (
            tf.image.rgb_to_grayscale(tf.image.resize(batch[..., ::-1], (h, w), method="area")) / 255
        ).numpy()
    found["(4) edgecnn 1 thread"] = lambda: to_batch(frames, (h, w), color="gray", method="area", out=out, threads=1)
    found["(4) edgecnn 2 threads"] = lambda: to_batch(frames, (h, w), color="gray", method="area", out=out, threads=2)
    return found


def report(title: str, contenders: dict[str, Callable[[], object]], bound_ms: float, repeats: int) -> dict[str, float]:
    times = {name: median_seconds(fn, repeats) * 1e3 for name, fn in contenders.items()}
    ours = times["(4) edgecnn 1 thread"]
    print(f"\n{title}")
    print(f"{'':52s} {'median ms':>10s} {'vs edgecnn 1t':>14s} {'vs bound':>9s}")
    for name, ms in [*times.items(), ("bandwidth bound (read + write at copy speed)", bound_ms)]:
        print(f"{name:52s} {ms:10.2f} {ms / ours:13.2f}x {ms / bound_ms:8.2f}x")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per contender (default: %(default)s)")
    parser.add_argument("--no-tf", action="store_true", help="skip tf.image.resize")
    args = parser.parse_args(argv)
    use_tf = not args.no_tf and importlib.util.find_spec("tensorflow") is not None

    frames = make_frames()
    bandwidth = copy_bandwidth(args.repeats)
    in_bytes = N * SRC_H * SRC_W * 3
    print(
        f"{N} frames {SRC_H}x{SRC_W}x3 uint8 BGR; cv2 {cv2.__version__} with {cv2.getNumThreads()} threads; "
        f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write)"
    )

    rgb_bound = (in_bytes + N * 180 * 180 * 3 * 4) / bandwidth * 1e3
    rgb = report("rgb: -> (32, 180, 180, 3) float32, bilinear", rgb_contenders(frames, use_tf), rgb_bound, args.repeats)
    gray_bound = (in_bytes + N * 28 * 28 * 4) / bandwidth * 1e3
    gray = report("gray: -> (32, 28, 28, 1) float32, area", gray_contenders(frames, use_tf), gray_bound, args.repeats)

    one, two = rgb["(4) edgecnn 1 thread"], rgb["(4) edgecnn 2 threads"]
    naive = rgb["(1) cv2 resize+cvtColor+astype/255+stack"]
    gray_cv2 = gray["(1) cv2 cvtColor+resize(AREA)+astype/255+stack"]
    print("\ntargets (issue 4)")
    print(f"  rgb 1 thread vs (1) naive cv2:     {naive / one:5.2f}x faster  (want >= 4)")
    print(f"  rgb 1 thread vs bandwidth bound:   {one / rgb_bound:5.2f}x slower  (want <= 2.5)")
    print(f"  rgb 2 threads vs 1 thread:         {one / two:5.2f}x faster  (want >= 1.6)")
    print(f"  gray 1 thread vs (1) cv2:          {gray_cv2 / gray['(4) edgecnn 1 thread']:5.2f}x faster  (want >= 3)")
    print(
        f"  gray 2 threads vs 1 thread:        "
        f"{gray['(4) edgecnn 1 thread'] / gray['(4) edgecnn 2 threads']:5.2f}x faster"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
