"""Console entry points. Each module has `main(argv=None) -> int`."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping

from edgecnn.errors import EdgecnnError, first_line
from edgecnn.text import printable

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, SIGTERM and SIGHUP alike
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a C program whose reader went away
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
# Errors of these libraries mean bad input (a model that cannot run, a file OpenCV refuses),
# not a bug in edgecnn: one line, exit 2.
LIBRARY_ERROR_MODULES = ("onnxruntime", "onnx", "cv2", "tf2onnx", "tensorflow", "keras")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C's KeyboardInterrupt would be, so the same clean-up runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up noise on stderr (shown only if the import fails).

    TF_CPP_MIN_LOG_LEVEL silences TensorFlow's own logging; the lines its C++ code
    prints before absl logging is initialised ignore it, so stderr is parked in a
    temp file for the import itself. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
    """
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise EdgecnnError("this command needs TensorFlow, which is not installed: pip install 'edgecnn[train]'")
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or "tensorflow" in sys.modules:
        import tensorflow

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as parked:
        os.dup2(parked.fileno(), 2)
        try:
            import keras  # noqa: F401  (imported for its start-up output, parked here)
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            parked.seek(0)
            sys.stderr.write(parked.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise `Interrupted` like Ctrl-C raises KeyboardInterrupt.

    A service manager or container runtime stops a process with SIGTERM; without this
    it would die at once, leaving temp files and a run.json saying "training".
    Only the main thread can install handlers; elsewhere this does nothing.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    try:
        previous = {signum: signal.signal(signum, interrupt) for signum in STOP_SIGNALS}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def error_message(exc: EdgecnnError, flags: Mapping[str, str]) -> str:
    """The error as a command line user reads it: a library parameter with a flag of this
    command is named by its flag (`--device cuda: ...` for `device='cuda': ...`)."""
    flag = flags.get(exc.parameter) if exc.parameter is not None else None
    if flag is None:
        return str(exc)
    if exc.value is None or exc.value == "":
        return f"{flag}: {exc.reason}"
    return f"{flag} {os.fspath(exc.value) if isinstance(exc.value, os.PathLike) else exc.value}: {exc.reason}"


def run_command(prog: str, body: Callable[[], int], flags: Mapping[str, str] | None = None) -> int:
    """Run a CLI body: user errors, library and OS errors become one line on stderr and exit 2;
    Ctrl-C, SIGTERM and SIGHUP exit 130 after the body's clean-up ran; a closed stdout
    (`... | head`) ends quietly. `flags` maps library parameter names to this command's
    flags, for the errors that name a parameter (`EdgecnnError.parameter`)."""

    def fail(message: str) -> int:
        print(f"{prog}: error: {printable(message)}", file=sys.stderr)
        return EXIT_USER_ERROR

    with stop_signals_interrupt():
        try:
            code = body()
            sys.stdout.flush()  # a reader that went away shows up here, not at interpreter exit
            return code
        except EdgecnnError as exc:
            return fail(error_message(exc, flags or {}))
        except KeyboardInterrupt as exc:
            how = f" ({exc.args[0]})" if isinstance(exc, Interrupted) else ""
            print(f"{prog}: interrupted{how}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # As the Python docs advise: point stdout at devnull so the flush at exit cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            return fail(f"{where}{exc.strerror or exc}")
        except MemoryError:
            return fail("out of memory")
        except Exception as exc:
            if type(exc).__module__.split(".")[0] not in LIBRARY_ERROR_MODULES:
                raise  # a bug in edgecnn: keep the traceback
            return fail(f"{type(exc).__module__.split('.')[0]} {type(exc).__name__}: {first_line(exc)}")
