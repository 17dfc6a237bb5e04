"""Files written whole or not at all: what a run, a cache or a checkpoint leaves on disk."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from .errors import OutputError, one_line

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write `path` through `write(file)`: into a temporary file beside it, flushed to disk
    (fsync), then renamed over `path`, so that a crash or a full disk leaves the previous
    version whole. Any failure removes the temporary file and is one OutputError line."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a unique name: two writers of one folder never write into each other's file
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would make it (mkstemp makes it private)
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = os.strerror(error.errno) if error.errno else one_line(error)
        raise OutputError(f"could not write {path} ({reason})") from None
    except BaseException:  # the writer's own failure (or Ctrl-C): no temporary file left
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda file: file.write(text.encode()))


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as error:  # some file systems refuse fsync on a directory
        if error.errno not in (errno.EINVAL, errno.EBADF, errno.EROFS):
            raise
    finally:
        os.close(fd)


def check_writable(directory: Path) -> None:
    """Make `directory` (with its parents) and create a file in it, or say in one OutputError
    line why that cannot be done (a file in the way, a read-only or full file system)."""
    directory = Path(directory).absolute()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else one_line(error)
        where = (
            f" ({error.filename})"
            if error.filename and str(error.filename) != str(directory)
            else ""
        )
        raise OutputError(f"cannot write into {directory}: {reason}{where}") from None


LOCK_NAME = ".lock"


@contextlib.contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """One process at a time in `folder`: an exclusive lock (fcntl) on folder/.lock, held for
    the block and released when the process ends however it ends. Another process is refused
    in one OutputError line that names the holder (its pid, host and start, written into the
    lock file)."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else one_line(error)
        raise OutputError(f"cannot lock {folder} ({reason})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise OutputError(
            f"{folder} is in use by {holder}: wait for it to end, or choose another output folder"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"process {os.getpid()} on {platform.node()} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(),
            0,
        )
        yield
    finally:
        os.close(fd)  # closing releases the lock
