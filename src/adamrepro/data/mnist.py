"""MNIST from its four IDX files, raw or gzip-compressed, checked against the canonical md5s.

Where the files are looked for, below `root`: `root/`, `root/mnist/` and `root/MNIST/raw/`
(the last is where torchvision downloads them). When none holds them and `download` is set,
torchvision downloads them into `root/MNIST/raw/`.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import TensorData, download_errors, find_or_download

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# md5 of the decompressed files, as published with torchvision's MNIST.
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SUBDIRS = (".", "mnist", "MNIST/raw")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(data: bytes) -> np.ndarray:
    """Parse one IDX file (LeCun's format): magic 0x0000 <dtype> <ndim>, ndim big-endian
    int32 sizes, then the values."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError("not an IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, ">i4", count=ndim, offset=4))
    values = np.frombuffer(data, _IDX_DTYPES[data[2]], offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"IDX header says {shape} but the file holds {values.size} values")
    return values.reshape(shape)


def find_files(root: Path) -> dict[str, Path] | None:
    """The four files in the first of SUBDIRS that holds all of them (raw or .gz)."""
    for sub in SUBDIRS:
        found = {}
        for key, name in FILES.items():
            for candidate in (root / sub / name, root / sub / f"{name}.gz"):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(FILES):
            return found
    return None


def _read(path: Path, verify: bool) -> np.ndarray:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DataError(f"{path} is not a readable gzip file ({error})") from None
    name = path.name.removesuffix(".gz")
    if verify and hashlib.md5(raw).hexdigest() != MD5[name]:
        raise DataError(
            f"{path}: decompressed md5 {hashlib.md5(raw).hexdigest()} is not MNIST's {MD5[name]} "
            "(a damaged or different file; set data.verify=false to use it anyway)"
        )
    try:
        return read_idx(raw)
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None


def _download(root: Path) -> None:
    from torchvision.datasets import MNIST

    instead = "put the four IDX files there or point data.root (or ADAMREPRO_DATA) at them"
    with download_errors(f"MNIST into {root / 'MNIST/raw'}", instead):
        for train in (True, False):
            MNIST(str(root), train=train, download=True)


def load_mnist(
    root: str | Path, download: bool = True, verify: bool = True, binarize: bool = False
) -> TensorData:
    """MNIST as float pixels in [0, 1], flattened to 784, with integer labels; `binarize`
    thresholds the pixels at 0.5 (fixed binarisation: each pixel 0 or 1)."""
    root = Path(root).expanduser()
    files = find_or_download(
        root,
        find_files,
        _download if download else None,
        "MNIST",
        SUBDIRS,
        f"{', '.join(FILES.values())} (or .gz)",
    )
    arrays = {key: _read(path, verify) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"MNIST {split} set: images of shape {images.shape} but labels of shape "
                f"{labels.shape} ({files[f'{split}_images']}, {files[f'{split}_labels']})"
            )
        if len(labels) and int(labels.max()) > 9:
            raise DataError(f"{files[f'{split}_labels']}: a label {int(labels.max())} above 9")

    def images(a: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)
        return (pixels >= 0.5).float() if binarize else pixels

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    return TensorData(
        x_train=images(arrays["train_images"]),
        y_train=labels(arrays["train_labels"]),
        x_test=images(arrays["test_images"]),
        y_test=labels(arrays["test_labels"]),
        num_classes=10,
        description={
            "name": "MNIST",
            "source": "IDX files",
            "lossless": True,
            "path": str(files["train_images"].parent),
            "md5_checked": bool(verify),
            "label": "MNIST" + (", binarised" if binarize else ""),
        },
    )
