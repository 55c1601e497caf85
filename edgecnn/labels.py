"""Class names as people read them: the language to show, and the true class an image's path names.

A ModelSpec may carry `display_names` per language (e.g. {"ko": ["고양이", "개"]});
`class_names` stay the canonical names. `edgecnn.load(..., lang=...)` picks the language;
edgecnn-infer takes it from --lang, else from the POSIX locale (`locale_language`: LC_ALL,
then LC_MESSAGES, then LANG; "ko_KR.UTF-8" is "ko-KR").
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from edgecnn.spec import LANGUAGE_TAG

LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")  # POSIX precedence
SAMPLE_NAME = re.compile(r"\d+_(?P<label>.+)")  # the stem of sample_file_name's names


def locale_language(environ: Mapping[str, str] | None = None) -> str | None:
    """The language tag of the POSIX locale ("ko_KR.UTF-8" -> "ko-KR"), None for C/POSIX or unset."""
    environ = os.environ if environ is None else environ
    value = next((environ[name] for name in LOCALE_VARIABLES if environ.get(name)), "")
    tag = value.split(".")[0].split("@")[0].replace("_", "-")
    for candidate in (tag, tag.split("-")[0]):  # the whole tag, else its language alone
        if LANGUAGE_TAG.fullmatch(candidate):
            return candidate
    return None


def sample_file_name(index: int, class_name: str) -> str:
    """The name edgecnn-train gives test image `index` of class `class_name` in samples/:
    INDEX_LABEL.png, the label with "/" and " " as "-" ("00012_Ankle-boot.png")."""
    return f"{index:05d}_{sample_label(class_name)}.png"


def sample_label(class_name: str) -> str:
    """`class_name` as a sample file name writes it: "/" and " " as "-"."""
    return class_name.replace("/", "-").replace(" ", "-")


def true_class(path: str | os.PathLike, class_names: tuple[str, ...]) -> int | None:
    """Index of the class an image's path names, or None.

    The folder names it ("cats/" or "cat/" for class "cat", any case), or the file is
    an edgecnn-train sample (sample_file_name).
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
            if sample_label(name) == wanted:
                return index
    return None


def terminal_width(text: str) -> int:
    """Columns `text` takes on a terminal: East Asian wide and fullwidth characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def pad_left(text: str, columns: int) -> str:
    """`text` right-aligned in `columns` terminal columns (what f"{text:>N}" does for ASCII)."""
    return " " * max(0, columns - terminal_width(text)) + text
