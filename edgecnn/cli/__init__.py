"""Console entry points. Each module has `main(argv=None) -> int`."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable

from edgecnn.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up noise on stderr (shown only if the import fails).

    TF_CPP_MIN_LOG_LEVEL silences TensorFlow's own logging; the lines its C++ code
    prints before absl logging is initialised ignore it, so stderr is parked in a
    temp file for the import itself. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
    """
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise UserError("this command needs TensorFlow, which is not installed: pip install 'edgecnn[train]'")
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as parked:
        os.dup2(parked.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            parked.seek(0)
            sys.stderr.write(parked.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run a CLI body: a UserError becomes one line on stderr and exit code 2."""
    try:
        return body()
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
