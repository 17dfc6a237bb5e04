"""Data sets, each loaded into one `TensorData` (tensors on the training device)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch

from ..errors import ConfigError, DataError, checked_call
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
    """The data set that `config.name` names, loaded with the rest of `config`; with
    `train_rows: k`, only k training rows (a fixed random choice, the same for every run)."""
    name = config.get("name")
    if name not in LOADERS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(LOADERS)}")
    settings = {k: v for k, v in config.items() if k not in ("name", "train_rows")}
    data = checked_call(LOADERS[name], f"data {name}", **settings)
    rows = config.get("train_rows")
    return data if rows is None else training_subset(data, rows)


def training_subset(data: TensorData, rows: Any) -> TensorData:
    """The first `rows` of one fixed permutation of the training rows (torch generator seed
    0), in their original order; the test set unchanged."""
    n = len(data.y_train)
    if isinstance(rows, bool) or not isinstance(rows, int) or not 0 < rows <= n:
        raise ConfigError(f"data.train_rows must be an integer in 1..{n}, got {rows!r}")
    if not isinstance(data.x_train, torch.Tensor):
        raise ConfigError("data.train_rows needs dense inputs (MNIST, CIFAR-10)")
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:rows].sort().values
    description = {**data.description, "train_rows": rows}
    return replace(
        data, x_train=data.x_train[keep], y_train=data.y_train[keep], description=description
    )


__all__ = [
    "LOADERS",
    "DataError",
    "SparseBatch",
    "SparseRows",
    "TensorData",
    "load_data",
    "load_cifar10",
    "load_imdb",
    "load_mnist",
]
