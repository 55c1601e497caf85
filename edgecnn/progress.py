"""Progress bars (tqdm) on stderr for long work, shown only to a person at a terminal.

A bar appears only when stderr is a terminal (never in logs, pipes or CI output) and
only once the work has taken `DELAY_S`, so quick runs print nothing extra. Lines printed
while a bar may be shown go through `write`, which, on a terminal, clears the bar,
prints the line and redraws the bar below it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tqdm import tqdm

DELAY_S = 0.5


def on_terminal() -> bool:
    """Whether stderr is a terminal (where a bar is wanted)."""
    return _isatty(sys.stderr)


def bar(total: int | None, description: str, unit: str = "it", enabled: bool = True, **options: Any) -> tqdm:
    """A tqdm bar of `total` `unit`s on stderr: count, rate and ETA. Disabled (every call a no-op)
    unless `enabled` and stderr is a terminal. Removed from the screen when closed; `options`
    go to tqdm."""
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        disable=not (enabled and on_terminal()),
        delay=DELAY_S,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.2,
        **options,
    )


@contextlib.contextmanager
def steps(names: Sequence[str], description: str) -> Iterator[Callable[[str], None]]:
    """A bar over the named steps of one job; yields `begin(name)`, to call as each step starts."""
    progress = bar(len(names), description, unit="step", bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}")
    started = False

    def begin(name: str) -> None:
        nonlocal started
        if started:
            progress.update(1)
        started = True
        progress.set_description_str(f"{description}: {name}")

    try:
        yield begin
    finally:
        progress.close()


def write(line: str, file: Any = None) -> None:
    """Print `line` to `file` (stdout by default) above any bar that is showing: on a terminal
    the bar is cleared and redrawn below the line; into a file or pipe it is printed as it is."""
    file = sys.stdout if file is None else file
    if _isatty(file):
        tqdm.write(line, file=file)
    else:
        print(line, file=file)


def _isatty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False
