"""The one exception type that means "the user gave us something wrong"."""


class UserError(Exception):
    """A problem with the user's input: the CLIs print it as one line and exit 2."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, at most `limit` characters (its type name when it has none).

    For wrapping a third-party exception into a one-line UserError.
    """
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
