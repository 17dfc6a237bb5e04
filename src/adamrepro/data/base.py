"""What every data set of the project becomes: tensors held on the training device."""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError, one_line
from ..files import write_atomic

Found = TypeVar("Found")
log = logging.getLogger(__name__)


def find_or_download(
    root: Path,
    find: Callable[[Path], Found | None],
    download: Callable[[Path], None] | None,
    name: str,
    subdirs: Sequence[str],
    wanted: str,
) -> Found:
    """What `find(root)` finds; when it finds nothing, `download(root)` (if given) first and
    then `find` again; else one line saying where it looked for what. A download that fails
    leaves no folder behind that it created (a mistyped root is not made into a tree)."""
    found = find(root)
    if found is None and download is not None:
        created = _first_missing(root)
        before = set(root.iterdir()) if created is None and root.is_dir() else set()
        try:
            download(root)
        except BaseException:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            elif root.is_dir():  # an existing root: what the download began in it goes too
                for entry in set(root.iterdir()) - before:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            raise
        found = find(root)
    if found is None:
        where = ", ".join(str(root / sub) for sub in subdirs)
        raise DataError(
            f"{name} not found: looked in {where} for {wanted}; "
            "set data.root=DIR or ADAMREPRO_DATA=DIR, or data.download=true with a network"
        )
    return found


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (None: `path` exists)."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def file_md5(path: Path) -> str:
    """The md5 of a file, read in 4 MiB pieces (archives of hundreds of MB)."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_npz_checked(path: Path, **arrays: np.ndarray) -> None:
    """np.savez with a checksum of its content, written atomically (`files.write_atomic`): a
    half-written or altered cache is never read as a good one (`load_npz_checked`)."""
    buffer = io.BytesIO()
    np.savez(buffer, __sha256__=np.str_(_digest(arrays)), **arrays)
    write_atomic(path, lambda file: file.write(buffer.getbuffer()))


def load_npz_checked(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays that `save_npz_checked` stored in `path`; None when there is no such file,
    or (with a warning) when it cannot be read or its content does not match its checksum:
    the caller then builds the cache again from the data."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        log.warning("cache %s cannot be read (%s): building it again", path, one_line(error))
        return None
    recorded = arrays.pop("__sha256__", None)
    if recorded is None or str(recorded) != _digest(arrays):
        log.warning("cache %s does not match its checksum: building it again", path)
        return None
    return arrays


@contextmanager
def download_errors(what: str, instead: str) -> Iterator[None]:
    """Turn any error of a download (network errors come in many types) into one line:
    could not download `what` (the whole error, on one line); `instead`."""
    try:
        yield
    except Exception as error:
        raise DataError(f"could not download {what} ({one_line(error)}); {instead}") from None


@dataclass
class TensorData:
    """A training set and a test set, each one tensor of inputs and one of targets.

    Minibatches are index permutations of these tensors (airbench-style): no DataLoader, no
    per-sample Python.
    """

    x_train: Any  # a Tensor, or SparseRows for bag-of-words inputs
    y_train: Tensor
    x_test: Any
    y_test: Tensor
    num_classes: int
    # Which copy the data came from and whether it is lossless (`label` names it in figures).
    description: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TensorData:
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                cast = dtype if dtype is not None and value.is_floating_point() else None
                value = value.to(device=device, dtype=cast)
            elif hasattr(value, "to"):  # SparseRows
                value = value.to(device=device, dtype=dtype)
            moved[f.name] = value
        return TensorData(**moved)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """What tells two copies of a data set apart, whatever their paths: a hash of the
        sizes, every label and every 97th input row (dense inputs; bag-of-words rows by their
        labels and sizes alone). A run's identity includes it."""
        digest = hashlib.sha1()
        for name in ("x_train", "y_train", "x_test", "y_test"):
            value = getattr(self, name)
            digest.update(f"{name}{tuple(value.shape)}".encode())
            if isinstance(value, Tensor):
                rows = value if name.startswith("y") else value[::97]
                digest.update(rows.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]
