"""The one exception type that means "the user gave us something wrong"."""


class UserError(Exception):
    """A problem with the user's input: the CLIs print it as one line and exit 2."""
