"""Text on frames in any script: finding a font that has the glyphs, and drawing it fast.

OpenCV's `cv2.putText` knows only its Hershey fonts, which have no Hangul (or any
non-ASCII) glyphs. `TextPainter` draws with a TrueType/OpenType font through
FreeType (Pillow) instead: each distinct piece of text ("고양이", " 0.97", "30 FPS")
is rendered once per size into a small white-on-black patch and cached, so a frame
costs a few array copies. Without any font file it falls back to the Hershey font.

`find_font` looks for a font file that has a glyph for every character of a text:
EDGECNN_FONT first, then well-known files (DejaVu, then CJK fonts: Nanum, Noto CJK,
Source Han, Apple SD Gothic, Malgun), then any other font in the system's font
folders. A glyph counts as present when it renders differently from the font's
"missing glyph" box (tofu).
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # Pillow is imported when text is first drawn, not with edgecnn.sinks
    from PIL.ImageFont import FreeTypeFont

FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
# Preferred regular sans-serif faces: Latin first, then fonts with Hangul and the other CJK scripts.
PREFERRED_FONTS = (
    "DejaVuSans.ttf",
    "LiberationSans-Regular.ttf",
    "Arial.ttf",
    "arial.ttf",
    "NanumGothic.ttf",
    "NanumBarunGothic.ttf",
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKkr-Regular.otf",
    "NotoSansKR-Regular.otf",
    "NotoSansKR-Regular.ttf",
    "SourceHanSans-Regular.ttc",
    "SourceHanSansK-Regular.otf",
    "AppleSDGothicNeo.ttc",
    "AppleGothic.ttf",
    "malgun.ttf",
)
MAX_FONTS_TRIED = 200  # beyond the preferred ones: bounds the search on systems with thousands of fonts
MISSING_GLYPH = "\U0010fffd"  # a private-use code point no font maps: renders as the font's tofu box
# What TextPainter draws besides class names (probabilities, "FPS").
OVERLAY_CHARACTERS = "0123456789.% FPS"
# White text on a black box; sizes at a 480-pixel-high frame, scaled with the frame.
FONT_PIXELS_AT_480 = 26
MARGIN_AT_480 = 5
HERSHEY = cv2.FONT_HERSHEY_SIMPLEX


def font_folders() -> list[Path]:
    """Where systems keep font files (those that exist)."""
    home = Path.home()
    folders = [
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        home / ".local/share/fonts",
        home / ".fonts",
        Path("/Library/Fonts"),
        Path("/System/Library/Fonts"),
        home / "Library/Fonts",
        Path(os.environ.get("WINDIR", "C:/Windows"), "Fonts"),
    ]
    return [folder for folder in folders if folder.is_dir()]


@functools.lru_cache(maxsize=1)
def installed_fonts() -> tuple[Path, ...]:
    """Font files in `font_folders()`, the PREFERRED_FONTS first (in that order), then the rest
    with regular upright faces before bold, italic and monospaced ones."""
    found = [
        Path(root, name)
        for folder in font_folders()
        for root, _, files in os.walk(folder)
        for name in files
        if name.lower().endswith(FONT_SUFFIXES)
    ]
    rank = {name: i for i, name in enumerate(PREFERRED_FONTS)}

    def order(path: Path) -> tuple[int, int, str]:
        lowered = path.name.lower()
        styled = sum(word in lowered for word in ("bold", "italic", "oblique", "mono", "coding", "light", "thin"))
        return (rank.get(path.name, len(rank)), styled, lowered)

    return tuple(sorted(set(found), key=order))


def _glyph_image(font: FreeTypeFont, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    size = int(font.size)
    canvas = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 2), text, font=font, fill=255)
    return np.asarray(canvas)


def missing_characters(font_path: str | os.PathLike, text: str) -> str:
    """The characters of `text` that `font_path` has no glyph for (drawn as its tofu box);
    all of them when the file is not a font Pillow can open."""
    from PIL import ImageFont

    wanted = sorted({ch for ch in text if not ch.isspace() and unicodedata.category(ch)[0] not in "CZ"})
    try:
        font = ImageFont.truetype(str(font_path), 24)
        tofu = _glyph_image(font, MISSING_GLYPH)
    except (OSError, ValueError):
        return "".join(wanted)
    return "".join(ch for ch in wanted if np.array_equal(_glyph_image(font, ch), tofu))


def find_font(text: str) -> Path | None:
    """A font file with a glyph for every character of `text`, or None (see the module docstring)."""
    return _find_font("".join(sorted(set(text))), os.environ.get("EDGECNN_FONT", ""))


@functools.lru_cache(maxsize=32)
def _find_font(characters: str, override: str) -> Path | None:
    candidates = ([Path(override)] if override else []) + list(installed_fonts())
    preferred = len(PREFERRED_FONTS) + (1 if override else 0)
    for path in candidates[: preferred + MAX_FONTS_TRIED]:
        if not missing_characters(path, characters):
            return path
    return None


class TextPainter:
    """Draws lines of text, white on black boxes, into the top-left corner of uint8 frames.

    `font` is a TrueType/OpenType file (FreeType through Pillow); None draws with
    OpenCV's Hershey font, which has ASCII glyphs only. A line is a sequence of
    pieces drawn side by side; each piece is rendered once per size and cached, so
    split text that changes (a probability) from text that does not (a class name).
    """

    def __init__(self, font: str | os.PathLike | None = None) -> None:
        self.font = None if font is None else Path(font)
        self._fonts: dict[int, FreeTypeFont] = {}
        self._patches: dict[tuple[str, int], np.ndarray] = {}

    @property
    def backend(self) -> str:
        """Which renderer draws: "freetype" or "hershey"."""
        return "hershey" if self.font is None else "freetype"

    def draw(self, frame: np.ndarray, lines: Sequence[Sequence[str]]) -> np.ndarray:
        """Draw `lines` (each a sequence of text pieces) on a uint8 BGR or gray frame, in place; returns it.

        Sizes follow the frame: the text is FONT_PIXELS_AT_480 pixels at 480 rows.
        """
        height, width = frame.shape[:2]
        scale = max(0.4, min(width, height) / 480.0)
        if self.font is None:
            return self._draw_hershey(frame, ["".join(line) for line in lines], scale)
        pixels = max(8, round(FONT_PIXELS_AT_480 * scale))
        margin = max(2, round(MARGIN_AT_480 * scale))
        y = margin
        for line in lines:
            patches = [self.patch(piece, pixels) for piece in line]
            line_height = max(p.shape[0] for p in patches)
            x = margin
            box_bottom = min(height, y + line_height + 2 * margin)
            box_right = min(width, x + sum(p.shape[1] for p in patches) + 2 * margin)
            frame[y:box_bottom, x:box_right] = 0
            x += margin
            for patch in patches:
                rows = max(0, min(patch.shape[0], height - y - margin))
                cols = max(0, min(patch.shape[1], width - x))
                region = frame[y + margin : y + margin + rows, x : x + cols]
                region[...] = patch[:rows, :cols] if frame.ndim == 3 else patch[:rows, :cols, 0]
                x += patch.shape[1]
            y = box_bottom + margin
        return frame

    def patch(self, text: str, pixels: int) -> np.ndarray:
        """`text` rendered white on black at a `pixels`-pixel font size: uint8 (line height, width, 3), cached."""
        key = (text, pixels)
        cached = self._patches.get(key)
        if cached is not None:
            return cached
        from PIL import Image, ImageDraw, ImageFont

        font = self._fonts.get(pixels)
        if font is None:
            font = self._fonts[pixels] = ImageFont.truetype(str(self.font), pixels)
        ascent, descent = font.getmetrics()
        canvas = Image.new("L", (max(1, int(np.ceil(font.getlength(text)))), ascent + descent), 0)
        ImageDraw.Draw(canvas).text((0, ascent), text, font=font, fill=255, anchor="ls")
        patch = np.repeat(np.asarray(canvas)[:, :, None], 3, axis=2)
        if len(self._patches) >= 4096:  # pieces repeat; this only bounds a pathological run
            self._patches.clear()
        self._patches[key] = patch
        return patch

    @staticmethod
    def _draw_hershey(frame: np.ndarray, lines: list[str], scale: float) -> np.ndarray:
        thickness = max(1, int(round(scale * 2)))
        y = int(30 * scale)
        for text in lines:
            (w, h), base = cv2.getTextSize(text, HERSHEY, scale, thickness)
            cv2.rectangle(frame, (5, y - h - 5), (15 + w, y + base), (0, 0, 0), cv2.FILLED)
            cv2.putText(frame, text, (10, y), HERSHEY, scale, (255, 255, 255), thickness, cv2.LINE_AA)
            y += h + base + int(12 * scale)
        return frame


def drawable_labels(
    shown: Mapping[str, str], extra: str = OVERLAY_CHARACTERS
) -> tuple[dict[str, str], Path | None, str | None]:
    """(canonical class name -> name to draw, font to draw with, a note for the user or None).

    `shown` maps each canonical class name to the name to show (a translation, or
    itself). When no font has glyphs for the shown names (plus `extra`), the canonical
    names are drawn instead and the note says why. None as the font means OpenCV's
    Hershey font (ASCII text, no font file found).
    """
    font = find_font("".join(shown.values()) + extra)
    if font is not None or all(ch.isascii() for ch in "".join(shown.values())):
        return dict(shown), font, None
    note = (
        "no font with glyphs for the translated class names was found (install fonts-nanum or "
        "fonts-noto-cjk, or set EDGECNN_FONT to a font file); drawing the model's own class names"
    )
    return {name: name for name in shown}, find_font("".join(shown) + extra), note
