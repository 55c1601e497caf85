"""Output files: checked before any work starts, written atomically when it ends.

Every file edgecnn writes (annotated video, ONNX model, run-directory JSON and
pictures) goes through `atomic_output`: the writer fills a temp file in the target's
folder, the temp file is flushed to disk and renamed over the target only when the
block ends without an exception. A failure, Ctrl-C or SIGTERM (which the CLIs turn
into KeyboardInterrupt) removes the temp file: the target is either the old file or
the complete new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError

PARTIAL_MARK = ".partial"  # in every temp name, so a leftover is recognisable


class Discard(Exception):
    """Raised inside `atomic_output` to drop the temp file and leave the target untouched, quietly."""


def check_output_path(path: str | os.PathLike, flag: str, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """`path` if a file can be written there, else EdgecnnError naming `flag`.

    Refused: a directory, a missing or unwritable folder, and any of `inputs` itself
    (the same file under another name too), which writing would destroy.
    """
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise EdgecnnError(f"{where}: is a directory (give a file name)")
    folder = path.parent
    if not folder.is_dir():
        raise EdgecnnError(f"{where}: no such directory {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EdgecnnError(f"{where}: directory {folder} is not writable")
    if path.exists() and not path.is_file():
        raise EdgecnnError(f"{where}: exists and is not a regular file")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise EdgecnnError(f"{where}: is the input {source} itself; choose another output file")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _new_file_mode(existing: Path) -> int:
    """The mode `open(path, "w")` would leave: the old file's, or 0o666 less the umask."""
    try:
        return stat.S_IMODE(existing.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask races threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on a clean exit fsync it and rename it to `path`.

    The temp name keeps the suffix (writers that pick a format from it still work) and
    holds PARTIAL_MARK. On any exception, KeyboardInterrupt included, the temp file is
    removed and `path` is left as it was. The committed file gets the permissions a
    normal write would give it. Verify what was written inside the block: raising
    there is what keeps a bad file from being committed. `Discard` drops the file
    without propagating (there was nothing to write).
    """
    path = Path(path)
    temp = _create_temp(path)
    try:
        yield temp
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(temp, _new_file_mode(path))
        os.replace(temp, path)
    except Discard:
        temp.unlink(missing_ok=True)
        return
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _create_temp(path: Path) -> Path:
    """An empty new file `.NAME.PID.N.partial.SUFFIX` in path's folder (O_EXCL: never someone else's)."""
    for attempt in range(1000):
        temp = path.with_name(f".{path.stem}.{os.getpid()}.{attempt}{PARTIAL_MARK}{path.suffix}")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return temp
        except FileExistsError:
            continue
        except OSError as exc:
            raise EdgecnnError(f"{path}: cannot create a file in {path.parent} ({exc.strerror})") from None
    raise EdgecnnError(f"{path}: cannot find a free temporary name in {path.parent}")


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through `atomic_output`."""
    with atomic_output(path) as temp:
        temp.write_bytes(data)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` through `atomic_output`."""
    write_bytes_atomically(path, text.encode("utf-8"))


def write_json_atomically(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as JSON (keys sorted, indented, non-ASCII text as it is, newline at the end)
    through `atomic_output`."""
    write_text_atomically(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_onnx_atomically(model: Any, path: str | os.PathLike) -> int:
    """Save an onnx.ModelProto through `atomic_output`, reading it back before it is committed;
    returns the size in bytes. EdgecnnError when the written file does not read back as `model`."""
    import onnx

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as temp:
        onnx.save_model(model, temp)
        if onnx.load(temp, load_external_data=False) != model:
            raise EdgecnnError(f"{out}: the written file does not read back as the model; nothing written")
    return out.stat().st_size
