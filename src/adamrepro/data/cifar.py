"""CIFAR-10 from its python pickle batches, with the whitening of section 6.3.

The files (`data_batch_1` ... `data_batch_5`, `test_batch`: pickled dicts with b"data", uint8
(10000, 3072) in channel-major order, and b"labels") are looked for in `root/`,
`root/cifar-10-batches-py/` and `root/cifar10/cifar-10-batches-py/`; when none holds them and
`download` is set, torchvision downloads and unpacks them into `root/cifar-10-batches-py/`.

`whitening`: "zca" (fitted on the training set: x -> (x - mean) W, W = U (L + eps)^(-1/2) U^T
from the eigendecomposition U L U^T of the pixel covariance; the transform is cached under
`cache_dir`, keyed by a hash of the training images and eps), "standardize" (per-channel
mean and standard deviation of the training set) or "none" (pixels in [0, 1]).
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .base import (
    TensorData,
    download_errors,
    find_or_download,
    load_npz_checked,
    save_npz_checked,
)

TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE = "test_batch"
SUBDIRS = (".", "cifar-10-batches-py", "cifar10/cifar-10-batches-py")
WHITENINGS = ("zca", "standardize", "none")
SHAPE = (3, 32, 32)


def find_folder(root: Path) -> Path | None:
    for sub in SUBDIRS:
        folder = root / sub
        if all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            return folder
    return None


def _md5s() -> dict[str, str]:
    from torchvision.datasets import CIFAR10

    return dict(CIFAR10.train_list + CIFAR10.test_list)


def read_batch(path: Path, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 3, 32, 32), labels int64 (n,)) of one pickle batch."""
    raw = path.read_bytes()
    if verify and hashlib.md5(raw).hexdigest() != _md5s().get(path.name):
        raise DataError(
            f"{path}: md5 {hashlib.md5(raw).hexdigest()} is not CIFAR-10's (a damaged or "
            "different file; set data.verify=false to use it anyway)"
        )
    try:
        batch = pickle.loads(raw, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, *SHAPE)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as error:
        raise DataError(f"{path} is not a CIFAR-10 pickle batch ({error!r})") from None
    if len(data) != len(labels):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise DataError(f"{path}: labels outside 0..9")
    return data, labels


def _download(root: Path) -> None:
    from torchvision.datasets import CIFAR10

    instead = "put cifar-10-batches-py/ there or point data.root (or ADAMREPRO_DATA) at it"
    with download_errors(f"CIFAR-10 into {root}", instead):
        CIFAR10(str(root), train=True, download=True)


def zca_transform(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """(mean, W) of ZCA whitening fitted on the rows of `x` (n, d): (x - mean) W has
    covariance U L (L + eps)^-1 U^T, the identity as eps -> 0. Computed in float64."""
    x = x.double()
    mean = x.mean(0)
    centred = x - mean
    covariance = centred.T @ centred / len(x)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    scale = (eigenvalues.clamp_min(0) + eps).rsqrt()
    return mean, (eigenvectors * scale) @ eigenvectors.T


def _zca_cached(x: Tensor, eps: float, cache_dir: Path | None) -> tuple[Tensor, Tensor]:
    """`zca_transform(x, eps)`, read from `cache_dir` when it holds one fitted on the same
    data with the same eps (keyed by a hash of the data and eps), else fitted and stored."""
    if cache_dir is None:
        return zca_transform(x, eps)
    fingerprint = hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16]
    path = cache_dir / f"cifar10_zca_{fingerprint}_eps{eps:g}.npz"
    stored = load_npz_checked(path)
    if stored is not None and stored.get("matrix", np.empty(0)).shape == (x.shape[1],) * 2:
        return torch.from_numpy(stored["mean"]), torch.from_numpy(stored["matrix"])
    mean, matrix = zca_transform(x, eps)
    save_npz_checked(path, mean=mean.numpy(), matrix=matrix.numpy())
    return mean, matrix


def whiten(train: Tensor, test: Tensor, whitening: str, eps: float,
           cache_dir: Path | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Both sets transformed by the whitening fitted on the training set; float32."""
    if whitening == "none":
        return train, test
    if whitening == "standardize":
        mean = train.mean((0, 2, 3), keepdim=True)
        std = train.std((0, 2, 3), keepdim=True)
        return (train - mean) / std, (test - mean) / std
    mean, matrix = _zca_cached(train.flatten(1), eps, cache_dir)
    mean, matrix = mean.float(), matrix.float()

    def apply(x: Tensor) -> Tensor:
        return ((x.flatten(1) - mean) @ matrix).view_as(x)

    return apply(train), apply(test)


def load_cifar10(
    root: str | Path,
    download: bool = True,
    verify: bool = True,
    whitening: str = "zca",
    zca_epsilon: float = 0.01,
    cache_dir: str | Path | None = None,
) -> TensorData:
    """CIFAR-10 as float images (n, 3, 32, 32), whitened as `whitening` says; integer labels."""
    if whitening not in WHITENINGS:
        raise DataError(f"data.whitening must be one of {', '.join(WHITENINGS)}, got {whitening!r}")
    root = Path(root).expanduser()
    folder = find_or_download(root, find_folder, _download if download else None, "CIFAR-10",
                              SUBDIRS, f"{', '.join(TRAIN_FILES)}, {TEST_FILE}")  # fmt: skip
    batches = [read_batch(folder / name, verify) for name in TRAIN_FILES]
    x_test, y_test = read_batch(folder / TEST_FILE, verify)
    x_train = np.concatenate([b[0] for b in batches])
    y_train = np.concatenate([b[1] for b in batches])
    train, test = whiten(
        torch.from_numpy(x_train).float() / 255.0, torch.from_numpy(x_test).float() / 255.0,
        whitening, float(zca_epsilon), Path(cache_dir).expanduser() if cache_dir else None,
    )  # fmt: skip
    return TensorData(train, torch.from_numpy(y_train), test, torch.from_numpy(y_test), 10)
