"""What every data set of the project becomes: tensors held on the training device."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor


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
