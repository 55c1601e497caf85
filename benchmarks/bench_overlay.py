"""What does the --show/--save overlay cost per frame, with Hangul class names, against cv2.putText?

Each contender draws the same 2,000 frames' overlay ("label probability" and "FPS")
on a 640x480 BGR frame: the label changes every 50 frames (고양이/개), the probability
is a random walk shown to 2 decimals, the FPS moves between 24 and 31, as in a live run.
The frame is refreshed outside the timed region; only the drawing is timed.

- cv2.putText:          OpenCV's Hershey font, ASCII names (cat/dog): what edgecnn did before,
                        and all OpenCV can draw.
- PIL round trip:       the obvious way to get Hangul: frame -> PIL.Image, ImageDraw.text,
                        -> numpy, every frame.
- TextPainter, uncached: edgecnn's FreeType pieces, rendered anew every frame.
- TextPainter, cold:    edgecnn as it runs: each distinct piece rendered once, then copied
                        (the first pass, misses included).
- TextPainter, warm:    the same sequence again, every piece cached (a long run's steady state).

Prints median, p95 and max microseconds per frame and the ratio to cv2.putText. The
budget is 1 ms per 640x480 frame. Needs a font with Hangul (fonts-nanum, fonts-noto-cjk).

    python benchmarks/bench_overlay.py [--frames 2000] [--size 640x480]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
from _common import print_table

from edgecnn.fonts import TextPainter, find_font
from edgecnn.sinks import annotate

KOREAN = {"cat": "고양이", "dog": "개"}
BUDGET_US = 1000.0


def overlay_sequence(frames: int, seed: int = 0) -> list[tuple[str, float, float]]:
    """(canonical label, probability, fps) per frame, as a live run produces them."""
    rng = np.random.default_rng(seed)
    probability, sequence = 0.9, []
    for i in range(frames):
        probability = float(np.clip(probability + rng.normal(0, 0.02), 0.5, 1.0))
        sequence.append(("cat" if (i // 50) % 2 == 0 else "dog", probability, 24 + 7 * rng.random()))
    return sequence


def pil_round_trip(font_path: str) -> Callable[[np.ndarray, str, float, float], np.ndarray]:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, 26)

    def draw(frame: np.ndarray, label: str, probability: float, fps: float) -> np.ndarray:
        image = Image.fromarray(frame)
        canvas = ImageDraw.Draw(image)
        for y, line in ((5, f"{label} {probability:.2f}"), (50, f"{fps:.0f} FPS")):
            box = canvas.textbbox((10, y), line, font=font)
            canvas.rectangle((5, y - 5, box[2] + 5, box[3] + 5), fill=(0, 0, 0))
            canvas.text((10, y), line, font=font, fill=(255, 255, 255))
        frame[...] = np.asarray(image)
        return frame

    return draw


def time_per_frame(draw: Callable, base: np.ndarray, sequence, names: dict[str, str]) -> np.ndarray:
    """Microseconds each draw(frame, label, probability, fps) took; the frame is reset untimed."""
    frame = base.copy()
    times = np.empty(len(sequence))
    for i, (label, probability, fps) in enumerate(sequence):
        np.copyto(frame, base)
        start = time.perf_counter()
        draw(frame, names[label], probability, fps)
        times[i] = time.perf_counter() - start
    return times * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (default: %(default)s)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    font = find_font("".join(KOREAN.values()) + "0123456789. FPS")
    if font is None:
        print("no font with Hangul found (apt-get install fonts-nanum)", file=sys.stderr)
        return 2
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (height, width, 3), np.uint8)
    sequence = overlay_sequence(args.frames)
    canonical = {name: name for name in KOREAN}

    painter = TextPainter(font)

    def uncached(frame, label, probability, fps):
        painter._patches.clear()  # render every piece again (fonts stay loaded)
        return annotate(frame, label, probability, fps, painter)

    def cached(frame, label, probability, fps):
        return annotate(frame, label, probability, fps, painter)

    rows = []
    contenders = [
        ("cv2.putText (ASCII only)", annotate, canonical),
        ("PIL round trip (Hangul)", pil_round_trip(str(font)), KOREAN),
        ("TextPainter, uncached (Hangul)", uncached, KOREAN),
    ]
    results = {name: time_per_frame(draw, base, sequence, names) for name, draw, names in contenders}
    painter._patches.clear()
    results["TextPainter, cold (Hangul)"] = time_per_frame(cached, base, sequence, KOREAN)
    results["TextPainter, warm (Hangul)"] = time_per_frame(cached, base, sequence, KOREAN)
    reference = float(np.median(results["cv2.putText (ASCII only)"]))
    for name, times in results.items():
        median = float(np.median(times))
        rows.append(
            [
                name,
                f"{median:.1f}",
                f"{np.percentile(times, 95):.1f}",
                f"{times.max():.0f}",
                f"{median / reference:.2f}x",
                "yes" if np.percentile(times, 95) < BUDGET_US else "no",
            ]
        )
    print(f"overlay per {width}x{height} frame, {args.frames} frames, font {font.name}")
    print_table(["contender", "median us", "p95 us", "max us", "vs putText", "p95 < 1 ms"], rows)
    print(f"TextPainter cache after the run: {len(painter._patches)} pieces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
