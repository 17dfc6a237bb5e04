"""Small generated files in the real formats, so that the real loading code runs in CI."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """LeCun's IDX format: 0, 0, dtype code (0x08 = uint8), ndim, big-endian sizes, values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_mnist(
    root: Path, n_train: int = 600, n_test: int = 200, compress: bool = True, seed: int = 0
) -> Path:
    """A learnable MNIST look-alike: each class lights its own 28x28 block pattern."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    templates = rng.random((10, 28, 28)) < 0.2

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, n)
        noise = rng.random((n, 28, 28)) < 0.05
        images = np.where(templates[labels] ^ noise, 255, 0).astype(np.uint8)
        return images, labels.astype(np.uint8)

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = split(n)
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return root


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    return make_mnist(tmp_path / "mnist_data")


@pytest.fixture
def shared_mnist() -> Path:
    if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("../shared/data/mnist is not here")
    return SHARED_DATA
