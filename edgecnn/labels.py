"""Class names as people read them: the language to show, and the true class an image's path names.

A ModelSpec may carry `display_names` per language (e.g. {"ko": ["고양이", "개"]});
`class_names` stay the canonical names. The language comes from an explicit choice,
else from the POSIX locale (LC_ALL, then LC_MESSAGES, then LANG: "ko_KR.UTF-8" is
"ko-KR"), and is used only when the model carries a translation for it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from edgecnn.spec import LANGUAGE_TAG, ModelSpec

LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")  # POSIX precedence
# edgecnn-train's samples/ files: INDEX_LABEL.png, the label with "/" and " " as "-".
SAMPLE_NAME = re.compile(r"\d+_(?P<label>.+)")


def locale_language(environ: Mapping[str, str] | None = None) -> str | None:
    """The language tag of the POSIX locale ("ko_KR.UTF-8" -> "ko-KR"), None for C/POSIX or unset."""
    environ = os.environ if environ is None else environ
    value = next((environ[name] for name in LOCALE_VARIABLES if environ.get(name)), "")
    tag = value.split(".")[0].split("@")[0].replace("_", "-")
    if tag in ("C", "POSIX") or not LANGUAGE_TAG.fullmatch(tag.split("-")[0]):
        return None
    return tag


def choose_language(spec: ModelSpec, requested: str | None) -> tuple[str | None, str | None]:
    """(display_names key to use or None, a note for the user or None).

    `requested` is an explicit language tag; None means the locale's, which is used
    silently when the model has a translation for it. An explicit language the model
    lacks gives a note naming the languages it has.
    """
    if requested is None:
        return spec.display_language(locale_language()), None
    key = spec.display_language(requested)
    if key is not None:
        return key, None
    have = ", ".join(sorted(spec.display_names)) or "none"
    return None, f"{spec.name} has no class names in {requested!r} (it has: {have}); showing its own class names"


def display_map(spec: ModelSpec, language: str | None) -> dict[str, str]:
    """Canonical class name -> the name to show in `language` (itself without a translation)."""
    return dict(zip(spec.class_names, spec.labels(language), strict=True))


def true_class(path: str | os.PathLike, class_names: tuple[str, ...]) -> int | None:
    """Index of the class an image's path names, or None.

    The folder names it ("cats/" or "cat/" for class "cat", any case), or the file is
    an edgecnn-train sample, INDEX_LABEL.png ("00012_Ankle-boot.png" for "Ankle boot").
    """
    path = Path(path)
    folder = path.parent.name.casefold()
    for index, name in enumerate(class_names):
        if folder in (name.casefold(), name.casefold() + "s"):
            return index
    sample = SAMPLE_NAME.fullmatch(path.stem)
    if sample:
        wanted = sample["label"]
        for index, name in enumerate(class_names):
            if name.replace("/", "-").replace(" ", "-") == wanted:
                return index
    return None


def terminal_width(text: str) -> int:
    """Columns `text` takes on a terminal: East Asian wide and fullwidth characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def pad_left(text: str, columns: int) -> str:
    """`text` right-aligned in `columns` terminal columns (what f"{text:>N}" does for ASCII)."""
    return " " * max(0, columns - terminal_width(text)) + text
