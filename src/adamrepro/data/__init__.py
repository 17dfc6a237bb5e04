"""Data sets, each loaded into one `TensorData` (tensors on the training device)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import DataError, checked_call
from .base import TensorData
from .cifar import load_cifar10
from .imdb import load_imdb
from .mnist import load_mnist
from .sparse import SparseBatch, SparseRows
from .surface import load_surface

LOADERS: dict[str, Callable[..., TensorData]] = {
    "mnist": load_mnist,
    "imdb": load_imdb,
    "cifar10": load_cifar10,
    "surface": load_surface,
}


def load_data(config: Mapping[str, Any]) -> TensorData:
    """The data set that `config.name` names, loaded with the rest of `config`."""
    name = config.get("name")
    if name not in LOADERS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(LOADERS)}")
    settings = {k: v for k, v in config.items() if k != "name"}
    return checked_call(LOADERS[name], f"data {name}", **settings)


__all__ = [
    "LOADERS", "DataError", "SparseBatch", "SparseRows", "TensorData", "load_data",
    "load_cifar10", "load_imdb", "load_mnist",
]  # fmt: skip
