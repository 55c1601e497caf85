"""The one exception type for every user-facing failure of edgecnn."""

from __future__ import annotations

import os


class EdgecnnError(ValueError):
    """Something the caller gave cannot be used: a missing or corrupt file, a model edgecnn cannot
    run, a video source that does not open, an output that cannot be written. The message is one line.

    When one argument is at fault, `parameter` names it as the library function calls it and
    `value` holds what was given (None: nothing was); the message then starts with
    `parameter=value: ` (or `parameter: `) and `reason` is the rest. The command-line tools
    print `--flag value: reason` instead, from their own table of parameter names to flags.
    """

    def __init__(self, reason: str, *, parameter: str | None = None, value: object = None) -> None:
        self.reason = reason
        self.parameter = parameter
        self.value = value
        if parameter is None:
            message = reason
        elif value is None:
            message = f"{parameter}: {reason}"
        else:
            shown = os.fspath(value) if isinstance(value, os.PathLike) else value
            message = f"{parameter}={shown!r}: {reason}"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields survive pickling (multiprocessing, concurrent.futures).
        return _rebuild, (type(self), self.reason, self.parameter, self.value)


def _rebuild(cls: type[EdgecnnError], reason: str, parameter: str | None, value: object) -> EdgecnnError:
    return cls(reason, parameter=parameter, value=value)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, at most `limit` characters (its type name when it has none).

    For wrapping a third-party exception into a one-line EdgecnnError.
    """
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
