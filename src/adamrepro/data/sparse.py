"""Sparse rows (CSR) as tensors, gathered into minibatches by index, for bag-of-words inputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class SparseBatch:
    """The nonzero entries of a minibatch of rows: entry i is `value[i]` at (`row[i]`,
    `col[i]`). With `groups` = S, the rows come in S groups of B (group s: rows s*B ..
    s*B+B-1), as indexing with an (S, B) tensor gives them."""

    row: Tensor
    col: Tensor
    value: Tensor
    rows: int
    groups: int | None = None

    def __len__(self) -> int:
        return self.rows // self.groups if self.groups else self.rows


@dataclass
class SparseRows:
    """A (n x width) sparse matrix by rows: row r's entries are indices/values[indptr[r]:
    indptr[r+1]]. Indexing with a (B,) or (G, B) tensor of row numbers gives a SparseBatch."""

    indptr: Tensor
    indices: Tensor
    values: Tensor
    width: int

    @classmethod
    def from_scipy(cls, matrix) -> SparseRows:
        matrix = matrix.tocsr()
        return cls(
            indptr=torch.from_numpy(matrix.indptr.astype("int64")),
            indices=torch.from_numpy(matrix.indices.astype("int64")),
            values=torch.from_numpy(matrix.data.astype("float32")),
            width=int(matrix.shape[1]),
        )

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.width)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        return SparseRows(
            self.indptr.to(device),
            self.indices.to(device),
            self.values.to(device=device, dtype=dtype),
            self.width,
        )

    def __getitem__(self, idx: Tensor | slice) -> SparseBatch:
        if isinstance(idx, slice):
            idx = torch.arange(len(self), device=self.indptr.device)[idx]
        flat = idx.reshape(-1)
        starts = self.indptr[flat]
        lengths = self.indptr[flat + 1] - starts
        row = torch.repeat_interleave(torch.arange(len(flat), device=flat.device), lengths)
        first = torch.cumsum(lengths, 0) - lengths  # where each row's entries begin in the batch
        position = starts[row] + torch.arange(len(row), device=flat.device) - first[row]
        return SparseBatch(
            row=row,
            col=self.indices[position],
            value=self.values[position],
            rows=len(flat),
            groups=idx.shape[0] if idx.dim() == 2 else None,
        )
