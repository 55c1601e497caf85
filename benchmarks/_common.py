"""Small helpers shared by the benchmark scripts: the repository, timing and table printing."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from edgecnn.benchmark import time_calls

REPO = Path(__file__).resolve().parents[1]


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` runs after `warmup` untimed runs (edgecnn.benchmark.time_calls)."""
    return statistics.median(time_calls(fn, warmup=warmup, min_runs=repeats, min_seconds=0.0))


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
