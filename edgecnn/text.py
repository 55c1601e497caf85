"""Text that is safe to emit: names with control characters escaped, and strict JSON lines.

Imported by the CLIs (for their one-line errors) and by `edgecnn.sinks`; it imports nothing heavy.
"""

from __future__ import annotations

import json
import math
from typing import Any


def printable(text: str) -> str:
    """`text` with control characters (and undecodable bytes) escaped: a name is data, never terminal codes."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def json_line(record: Any) -> str:
    """One line of strict JSON: NaN and infinities (a model can output them) become null."""

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: finite(v) for key, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(record), allow_nan=False)
