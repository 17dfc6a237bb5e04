"""CIFAR-10, from any of its copies, with the whitening of section 6.3.

`source`:
- "pickle": the python batches (`data_batch_1` ... `data_batch_5`, `test_batch`: pickled dicts
  with b"data", uint8 (10000, 3072) in channel-major order, and b"labels"), looked for in
  `root/`, `root/cifar-10-batches-py/` and `root/cifar10/cifar-10-batches-py/`; when none holds
  them and `download` is set, torchvision downloads them into `root/cifar-10-batches-py/`.
- "images": an image-folder copy, `{train,test}/<class>/<image>` (PNG or JPEG) as a folder or a
  .tar.gz, in `root/`, `root/cifar10/` or `root/cifar10-jpeg/` (`data/images.py`); decoded once
  and cached. Where `train_labels_original_order.npy` lies beside it, the training images are
  put back into the original order. A JPEG copy is lossy, and every run on it says so.
- "exact": `exact_subset.npz`, pixel-exact rows of the real batches (4,000 training, 4,593 test).
- "auto" (default): the pickle batches when they are there, else an image copy, else a download.
`rows="exact"` keeps, of any source, only the rows of the exact subset: the same images, as
that copy holds them (to measure what a lossy copy changes).

`whitening`: "zca" (fitted on the training set: x -> (x - mean) W, W = U (L + eps)^(-1/2) U^T
from the eigendecomposition U L U^T of the pixel covariance; the transform is cached under
`cache_dir`, keyed by a hash of the training images and eps), "standardize" (per-channel
mean and standard deviation of the training set) or "none" (pixels in [0, 1]).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .base import (
    TensorData,
    download_errors,
    file_md5,
    find_or_download,
    load_npz_checked,
    save_npz_checked,
)
from .images import ImageSet, is_image_tree, original_order, read_image_tree

TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE = "test_batch"
SUBDIRS = (".", "cifar-10-batches-py", "cifar10/cifar-10-batches-py")
WHITENINGS = ("zca", "standardize", "none")
SHAPE = (3, 32, 32)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SOURCES = ("auto", "pickle", "images", "exact")
ROWS = ("all", "exact")
IMAGE_FOLDERS = (".", "cifar10", "cifar10-jpeg", "cifar10/cifar10-jpeg")
PER_CLASS = {"train": 5000, "test": 1000}
# Checksums of the copies this project knows (each copy's provenance file records them).
KNOWN_MD5 = {
    "cifar10-jpeg.tar.gz": "898cae031a9b9929662d149e958c4703",
    "exact_subset.npz": "4750d649350ef55ada04f63b0dacc655",
    "train_labels_original_order.npy": "d8a79c8333fefa2cd9199b5600e31a11",
}
LABELS_FILE = "train_labels_original_order.npy"
EXACT_FILE = "exact_subset.npz"
IMAGES_VERSION = 1  # bump when decoding changes: older image caches are not reused


def find_folder(root: Path) -> Path | None:
    for sub in SUBDIRS:
        folder = root / sub
        if all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            return folder
    return None


def _md5s() -> dict[str, str]:
    from torchvision.datasets import CIFAR10

    return dict(CIFAR10.train_list + CIFAR10.test_list)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR-10 batch holds (dicts, lists, bytes, numbers and numpy arrays)
    and nothing else: a crafted file that names any other callable is refused, not run."""

    ARRAYS = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes, protocol 2
        *(
            (f"numpy.{core}.multiarray", name)
            for core in ("core", "_core")
            for name in ("_reconstruct", "scalar")
        ),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ARRAYS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: not an array")


def read_batch(path: Path, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 3, 32, 32), labels int64 (n,)) of one pickle batch."""
    raw = path.read_bytes()
    if verify and hashlib.md5(raw).hexdigest() != _md5s().get(path.name):
        raise DataError(
            f"{path}: md5 {hashlib.md5(raw).hexdigest()} is not CIFAR-10's (a damaged or "
            "different file; set data.verify=false to use it anyway)"
        )
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
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


def whiten(
    train: Tensor, test: Tensor, whitening: str, eps: float, cache_dir: Path | None
) -> tuple[Tensor, Tensor]:
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


@dataclass
class Pixels:
    """CIFAR-10 as uint8 images (n, 3, 32, 32) and labels, and what it was read from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    description: dict[str, Any]


def _check_md5(path: Path, verify: bool) -> None:
    expected = KNOWN_MD5.get(path.name)
    if not verify or expected is None:
        return
    found = file_md5(path)
    if found != expected:
        raise DataError(
            f"{path}: md5 {found} is not that of the known copy ({expected}); a "
            "damaged or different file (data.verify=false reads it anyway)"
        )


def _beside(root: Path, near: Path | None, name: str) -> Path | None:
    folders = [near.parent] if near is not None else []
    for folder in [*folders, root, root / "cifar10"]:
        if (folder / name).is_file():
            return folder / name
    return None


def find_images(root: Path) -> Path | None:
    """An image-folder copy of CIFAR-10 (a folder or a .tar.gz) at or in `root`."""
    for sub in IMAGE_FOLDERS:
        if is_image_tree(root / sub, CLASSES):
            return root / sub
    if root.is_file() and root.name.endswith((".tar.gz", ".tgz")):
        return root
    for folder in (root, root / "cifar10"):
        tarballs = sorted(folder.glob("*.tar.gz")) if folder.is_dir() else []
        for tarball in tarballs:
            if "cifar" in tarball.name.lower() and tarball.name != "cifar-10-python.tar.gz":
                return tarball
    return None


def _from_pickles(root: Path, download: bool, verify: bool) -> Pixels:
    folder = find_or_download(
        root,
        find_folder,
        _download if download else None,
        "CIFAR-10",
        SUBDIRS,
        f"{', '.join(TRAIN_FILES)}, {TEST_FILE}",
    )
    batches = [read_batch(folder / name, verify) for name in TRAIN_FILES]
    x_test, y_test = read_batch(folder / TEST_FILE, verify)
    x_train = np.concatenate([b[0] for b in batches])
    y_train = np.concatenate([b[1] for b in batches])
    described = {
        "name": "CIFAR-10",
        "source": "pickle batches",
        "path": str(folder),
        "lossless": True,
        "order": "original",
        "label": "CIFAR-10",
    }
    return Pixels(x_train, y_train, x_test, y_test, described)


def _from_images(root: Path, verify: bool, cache_dir: Path | None) -> Pixels:
    import PIL

    source = find_images(root)
    if source is None:
        raise DataError(
            f"CIFAR-10 not found: no image copy ({{train,test}}/<class>/<image>, a folder or a "
            f".tar.gz) in {root}, {root / 'cifar10'} or {root / 'cifar10-jpeg'}; set "
            "data.root=DIR (or ADAMREPRO_DATA)"
        )
    if source.is_file():
        _check_md5(source, verify)
    labels_file = _beside(root, source, LABELS_FILE)
    stat = source.stat()
    key_parts = [
        str(source.resolve()),
        stat.st_size,
        stat.st_mtime_ns,
        PIL.__version__,
        bool(verify),
        str(labels_file),
        IMAGES_VERSION,
    ]
    key = hashlib.sha256(repr(key_parts).encode()).hexdigest()[:16]
    cached = cache_dir / f"cifar10_images_{key}.npz" if cache_dir else None
    stored = load_npz_checked(cached) if cached is not None else None
    if stored is None:
        counts = PER_CLASS if verify else None
        images = read_image_tree(source, CLASSES, counts)
        stored = _restore_order(images, labels_file, verify)
        if cached is not None:
            save_npz_checked(cached, **stored)
    formats = str(stored["formats"])
    quality = int(stored["quality"])
    lossless = "JPEG" not in formats
    label = (
        "CIFAR-10"
        if lossless
        else f"CIFAR-10 (JPEG-{quality} copy)"
        if quality
        else ("CIFAR-10 (JPEG copy)")
    )
    described = {
        "name": "CIFAR-10",
        "source": f"image copy ({formats})",
        "path": str(source),
        "lossless": lossless,
        "jpeg_quality": quality or None,
        "order": str(stored["order"]),
        "label": label,
    }
    return Pixels(
        stored["x_train"], stored["y_train"], stored["x_test"], stored["y_test"], described
    )


def _restore_order(images: ImageSet, labels_file: Path | None, verify: bool) -> dict:
    """The decoded copy as arrays, its training images in the original order where the labels
    file tells it (else grouped by class)."""
    x_train, y_train = images.images["train"], images.labels["train"]
    order = "by class"
    if labels_file is not None:
        _check_md5(labels_file, verify)
        original = np.load(labels_file).astype(np.int64)
        permutation = original_order(y_train, original)
        x_train, y_train, order = x_train[permutation], original, "original"
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": images.images["test"],
        "y_test": images.labels["test"],
        "formats": np.str_("+".join(images.formats)),
        "quality": np.int64(images.jpeg_quality or 0),
        "order": np.str_(order),
    }


def _exact_subset(root: Path, verify: bool) -> dict[str, np.ndarray]:
    path = _beside(root, None, EXACT_FILE)
    if path is None:
        raise DataError(f"{EXACT_FILE} not found in {root} or {root / 'cifar10'}")
    _check_md5(path, verify)
    with np.load(path) as stored:
        return {k: stored[k] for k in stored.files}


def _from_exact(root: Path, verify: bool) -> Pixels:
    exact = _exact_subset(root, verify)
    sizes = f"{len(exact['train_labels']):,} train, {len(exact['test_labels']):,} test"
    described = {
        "name": "CIFAR-10",
        "source": "exact subset",
        "lossless": True,
        "order": "original",
        "rows": "exact",
        "label": f"CIFAR-10 (exact subset: {sizes})",
    }
    return Pixels(
        exact["train_data"].reshape(-1, *SHAPE),
        exact["train_labels"].astype(np.int64),
        exact["test_data"].reshape(-1, *SHAPE),
        exact["test_labels"].astype(np.int64),
        described,
    )


def _exact_rows(pixels: Pixels, root: Path, verify: bool) -> Pixels:
    """Only the rows of the exact subset, as `pixels` holds them: the training rows by their
    original index, the test rows by their rank within their class (a test copy grouped by
    class keeps each class in its original order, and the subset holds, for each class, every
    row of that class before each of its rows)."""
    exact = _exact_subset(root, verify)
    if pixels.description["order"] != "original":
        raise DataError(
            f"rows=exact needs the training images in their original order: put "
            f"{LABELS_FILE} beside the copy"
        )
    train = exact["train_index"].astype(np.int64)
    test_rows, test_labels = exact["test_index"].astype(np.int64), exact["test_labels"]
    if pixels.description["source"] == "pickle batches":
        test = test_rows
    else:  # grouped by class: start of the class + rank of the row among its class
        start = np.searchsorted(pixels.y_test, np.arange(len(CLASSES)))
        test = np.empty_like(test_rows)
        for c in range(len(CLASSES)):
            mine = np.flatnonzero(test_labels == c)
            ranks = np.argsort(np.argsort(test_rows[mine]))
            test[mine] = start[c] + ranks
    if not np.array_equal(pixels.y_train[train], exact["train_labels"]) or not np.array_equal(
        pixels.y_test[test], test_labels
    ):
        raise DataError("the exact subset's labels do not match the copy's at the same rows")
    described = {
        **pixels.description,
        "rows": "exact",
        "label": pixels.description["label"] + ", exact subset's rows",
    }
    return Pixels(
        pixels.x_train[train],
        pixels.y_train[train],
        pixels.x_test[test],
        pixels.y_test[test],
        described,
    )


def load_cifar10(
    root: str | Path,
    download: bool = True,
    verify: bool = True,
    whitening: str = "zca",
    zca_epsilon: float = 0.01,
    cache_dir: str | Path | None = None,
    source: str = "auto",
    rows: str = "all",
) -> TensorData:
    """CIFAR-10 as float images (n, 3, 32, 32), whitened as `whitening` says; integer labels;
    its `description` says which copy it came from and whether that copy is lossless."""
    for name, value, allowed in (
        ("whitening", whitening, WHITENINGS),
        ("source", source, SOURCES),
        ("rows", rows, ROWS),
    ):
        if value not in allowed:
            raise DataError(f"data.{name} must be one of {', '.join(allowed)}, got {value!r}")
    root = Path(root).expanduser()
    cache = Path(cache_dir).expanduser() if cache_dir else None
    if source == "auto":
        source = "pickle" if find_folder(root) or find_images(root) is None else "images"
    if source == "exact":
        pixels = _from_exact(root, verify)
    elif source == "images":
        pixels = _from_images(root, verify, cache)
    else:
        pixels = _from_pickles(root, download, verify)
    if rows == "exact" and source != "exact":
        pixels = _exact_rows(pixels, root, verify)
    train, test = whiten(
        torch.from_numpy(pixels.x_train).float() / 255.0,
        torch.from_numpy(pixels.x_test).float() / 255.0,
        whitening,
        float(zca_epsilon),
        cache,
    )
    return TensorData(
        train,
        torch.from_numpy(pixels.y_train),
        test,
        torch.from_numpy(pixels.y_test),
        10,
        pixels.description,
    )
