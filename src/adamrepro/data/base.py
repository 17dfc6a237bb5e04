"""What every data set of the project becomes: tensors held on the training device."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

Found = TypeVar("Found")


def find_or_download(root: Path, find: Callable[[Path], Found | None],
                     download: Callable[[Path], None] | None, name: str,
                     subdirs: Sequence[str], wanted: str) -> Found:  # fmt: skip
    """What `find(root)` finds; when it finds nothing, `download(root)` (if given) first and
    then `find` again; else one line saying where it looked for what."""
    found = find(root)
    if found is None and download is not None:
        download(root)
        found = find(root)
    if found is None:
        where = ", ".join(str(root / sub) for sub in subdirs)
        raise DataError(
            f"{name} not found: looked in {where} for {wanted}; "
            "set data.root=DIR or ADAMREPRO_DATA=DIR, or data.download=true with a network"
        )
    return found


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """np.savez to a temporary file, then renamed: a half-written cache is never read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


@contextmanager
def download_errors(what: str, instead: str) -> Iterator[None]:
    """Turn any error of a download (network errors come in many types) into one line:
    could not download `what` (the first line of the error); `instead`."""
    try:
        yield
    except Exception as error:
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        raise DataError(f"could not download {what} ({reason}); {instead}") from None


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
