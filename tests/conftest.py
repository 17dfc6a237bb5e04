"""Small generated files in the real formats, so that the real loading code runs in CI."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Real data for the tests that use it: ADAMREPRO_DATA where set, else the shared copy beside
# the clone where there is one; a test that needs it skips where neither has it.
SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = Path(os.environ.get("ADAMREPRO_DATA") or SHARED / "data")
REPO = Path(__file__).resolve().parents[1]


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """LeCun's IDX format: 0, 0, dtype code (0x08 = uint8), ndim, big-endian sizes, values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data, compresslevel=1)  # level 9 takes ~1 s on these patterns
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
        pytest.skip(f"no real MNIST in {SHARED_DATA} (ADAMREPRO_DATA, else ../shared/data)")
    return SHARED_DATA


POSITIVE = ["good", "great", "wonderful", "loved", "fine", "superb"]
NEGATIVE = ["bad", "awful", "boring", "hated", "worst", "dull"]
NEUTRAL = ["the", "movie", "film", "plot", "actor", "scene", "story", "ending", "music"]


def make_imdb(root: Path, per_class: int = 40, seed: int = 0, tarball: bool = False) -> Path:
    """An aclImdb folder (or aclImdb.tar.gz) in the original layout:
    aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt, with learnable reviews."""
    import tarfile

    rng = np.random.default_rng(seed)
    folder = root / "aclImdb"
    for split in ("train", "test"):
        for label, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
            (folder / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                tokens = list(rng.choice(NEUTRAL, 12)) + list(rng.choice(words, 3))
                rng.shuffle(tokens)
                rating = int(rng.integers(7, 11) if label == "pos" else rng.integers(1, 5))
                text = " ".join(tokens).capitalize() + ".<br /><br />The End."
                (folder / split / label / f"{i}_{rating}.txt").write_text(text)
    (folder / "imdb.vocab").write_text("\n".join(NEUTRAL + POSITIVE + NEGATIVE))
    if tarball:
        import shutil

        with tarfile.open(root / "aclImdb_v1.tar.gz", "w:gz") as archive:
            archive.add(folder, arcname="aclImdb")
        shutil.rmtree(folder)
        return root / "aclImdb_v1.tar.gz"
    return folder


@pytest.fixture
def imdb_root(tmp_path: Path) -> Path:
    make_imdb(tmp_path / "imdb_data")
    return tmp_path / "imdb_data"


def make_cifar(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """CIFAR-10's python version in miniature: cifar-10-batches-py/ with five training batches
    and a test batch, each a pickled dict of uint8 rows (3072 values, channel-major) and labels,
    as the real files are (and batches.meta). Each class has its own colour pattern."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    templates = rng.integers(0, 256, (10, 3072))

    def batch(name: str) -> None:
        labels = rng.integers(0, 10, per_batch)
        noise = rng.integers(-40, 41, (per_batch, 3072))
        data = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
        content = {
            b"batch_label": name.encode(),
            b"labels": labels.tolist(),
            b"data": data,
            b"filenames": [f"{k}.png".encode() for k in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))

    for k in range(1, 6):
        batch(f"data_batch_{k}")
    batch("test_batch")
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return root


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    return make_cifar(tmp_path / "cifar_data")


@pytest.fixture
def shared_imdb() -> Path:
    if not (SHARED_DATA / "imdb" / "aclImdb_labeled_text.tar.gz").is_file():
        pytest.skip(f"no real IMDB in {SHARED_DATA} (ADAMREPRO_DATA, else ../shared/data)")
    return SHARED_DATA


def same_evaluation(a: float, b: float) -> bool:
    """Two end-of-epoch evaluations of the same parameters, in two processes: equal to float32
    rounding (relative 1e-6), NaN as NaN. Why not bit for bit: tests/test_resume.py's
    `assert_same_run`."""
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6)


def hydra_config(*overrides: str):
    """The project's Hydra config with overrides, composed as the command line would."""
    from adamrepro.training import compose_config

    return compose_config(["trainer.progress=false", "experiment_name=test", *overrides])


def cli(
    *args: str,
    cwd: Path,
    module: str = "adamrepro.train",
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`python -m <module> args...` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "", **(env or {})},
    )


CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def make_cifar_images(
    root: Path,
    per_class: dict[str, int] | None = None,
    fmt: str = "PNG",
    tarball: bool = False,
    labels_file: bool = True,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """An image-folder copy of CIFAR-10 in miniature, as the common copies lay it out:
    cifar10-jpeg/{train,test}/<class>/NNNN.<ext>, NNNN counting a class's images in their
    original order, with train_labels_original_order.npy beside it. Returns the original
    arrays (uint8 (n, 3, 32, 32) and labels, in the original order) that were written."""
    from PIL import Image

    per_class = per_class or {"train": 6, "test": 3}
    rng = np.random.default_rng(seed)
    folder = root / "cifar10" / "cifar10-jpeg"
    written: dict[str, np.ndarray] = {}
    for split, n in per_class.items():
        labels = rng.permutation(np.repeat(np.arange(10), n))  # the original order
        images = rng.integers(0, 256, (len(labels), 3, 32, 32), dtype=np.uint8)
        counters = [0] * 10
        for image, label in zip(images, labels, strict=True):
            target = folder / split / CIFAR_CLASSES[label]
            target.mkdir(parents=True, exist_ok=True)
            ext = "png" if fmt == "PNG" else "jpg"
            Image.fromarray(image.transpose(1, 2, 0)).save(
                target / f"{counters[label]:04d}.{ext}",
                fmt,
                **({"quality": 75} if fmt == "JPEG" else {}),
            )
            counters[label] += 1
        written[f"x_{split}"], written[f"y_{split}"] = images, labels.astype(np.int64)
    if labels_file:
        np.save(
            root / "cifar10" / "train_labels_original_order.npy",
            written["y_train"].astype(np.uint8),
        )
    if tarball:
        import shutil
        import tarfile

        with tarfile.open(root / "cifar10" / "cifar10-jpeg.tar.gz", "w:gz") as archive:
            archive.add(folder, arcname="cifar10-jpeg")
        shutil.rmtree(folder)
    return written


def make_exact_subset(root: Path, written: dict[str, np.ndarray], train_rows: int = 20) -> Path:
    """exact_subset.npz for a copy made by make_cifar_images: its first training rows, and
    test rows 0..9 plus every test row of class 0 (the real subset's shape of choice)."""
    train_index = np.arange(train_rows)
    test_index = np.union1d(np.arange(10), np.flatnonzero(written["y_test"] == 0))
    path = root / "cifar10" / "exact_subset.npz"
    np.savez(
        path,
        train_index=train_index.astype(np.int32),
        train_data=written["x_train"][train_index].reshape(train_rows, -1),
        train_labels=written["y_train"][train_index].astype(np.uint8),
        test_index=test_index.astype(np.int32),
        test_data=written["x_test"][test_index].reshape(len(test_index), -1),
        test_labels=written["y_test"][test_index].astype(np.uint8),
    )
    return path


@pytest.fixture
def drawn(monkeypatch) -> dict[str, list[list[tuple[str, np.ndarray, np.ndarray]]]]:
    """The data of every figure saved while the test runs, read off its axes as matplotlib holds
    it: {path: [per axes: [(label, x, y) per line]]}. Figures are checked through what they
    draw, not through the size of a PNG."""
    from matplotlib.figure import Figure

    saved: dict[str, list[list[tuple[str, np.ndarray, np.ndarray]]]] = {}
    original = Figure.savefig

    def keep(self, fname, *args, **kwargs):
        saved[str(fname)] = [
            [
                (
                    line.get_label(),
                    np.asarray(line.get_xdata(), dtype=float),
                    np.asarray(line.get_ydata(), dtype=float),
                )
                for line in ax.get_lines()
            ]
            for ax in self.axes
        ]
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


@pytest.fixture
def torchvision_calls(monkeypatch):
    """`record(name)` puts a recorder in place of torchvision's dataset class `name` and returns
    the list that collects each call's (root, train, download)."""
    import torchvision.datasets

    def record(name: str) -> list[tuple]:
        calls: list[tuple] = []

        class Recorder:
            def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
                calls.append((root, train, download))

        monkeypatch.setattr(torchvision.datasets, name, Recorder)
        return calls

    return record


@pytest.fixture
def drawn_axes(monkeypatch) -> dict[str, dict]:
    """Everything a saved figure shows, read off matplotlib's objects: {path: {"texts": the
    figure's own texts, "text_styles": their (size, colour, wrap), "axes": [per axes: title,
    labels, limits, scale, legend, lines (label, x, y, colour, style), bands (colour, lower
    and upper y) and the bands' edge widths]}}."""
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_hex
    from matplotlib.figure import Figure

    saved: dict[str, dict] = {}
    original = Figure.savefig

    def band(collection: PolyCollection) -> tuple[str, float, float]:
        ys = np.concatenate([p.vertices[:, 1] for p in collection.get_paths()])
        return to_hex(collection.get_facecolor()[0], keep_alpha=False), ys.min(), ys.max()

    def keep(self, fname, *args, **kwargs):
        saved[str(fname)] = {
            "texts": [t.get_text() for t in self.texts],
            "text_styles": [
                (t.get_fontsize(), to_hex(t.get_color()), t.get_wrap()) for t in self.texts
            ],
            "axes": [
                {
                    "title": ax.get_title(),
                    "xlabel": ax.get_xlabel(),
                    "ylabel": ax.get_ylabel(),
                    "position": ax.get_position().bounds,  # (left, bottom, width, height)
                    "xlim": ax.get_xlim(),
                    "ylim": ax.get_ylim(),
                    "yscale": ax.get_yscale(),
                    "legend": [t.get_text() for t in ax.get_legend().get_texts()]
                    if ax.get_legend()
                    else [],
                    "lines": {
                        line.get_label(): (
                            np.asarray(line.get_xdata(), dtype=float),
                            np.asarray(line.get_ydata(), dtype=float),
                            to_hex(line.get_color()),
                            line.get_linestyle(),
                        )
                        for line in ax.get_lines()
                    },
                    "bands": [band(c) for c in ax.collections if isinstance(c, PolyCollection)],
                    "band_edges": [
                        float(c.get_linewidth()[0])
                        for c in ax.collections
                        if isinstance(c, PolyCollection)
                    ],
                }
                for ax in self.axes
            ],
        }
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def line(
    figure: list[list[tuple[str, np.ndarray, np.ndarray]]], label: str, axes: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the line labelled `label` on a figure's axes `axes`, as `drawn` read it."""
    found = [(x, y) for name, x, y in figure[axes] if name == label]
    names = [name for name, *_ in figure[axes]]
    assert len(found) == 1, f"{len(found)} lines labelled {label!r} among {names}"
    return found[0]


def pytest_sessionfinish(session, exitstatus):
    """With ADAMREPRO_REQUIRE_PASSED=1 (as `.ci/run` sets it) a session in which no test
    passed fails, even when nothing failed: a suite that skipped everything proves nothing."""
    if os.environ.get("ADAMREPRO_REQUIRE_PASSED") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and not reporter.stats.get("passed"):
        reporter.write_line("no test passed (every test skipped or none ran): failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Modules whose tests train for real (seconds to a minute each): `make test-fast` leaves them
# out (pytest -m "not slow"); single slow tests elsewhere carry @pytest.mark.slow.
SLOW_MODULES = {
    "test_train",
    "test_resume",
    "test_runbook",
    "test_cli",
    "test_long_runs",
    "test_speed_studies",
    "test_small_problems",
    "test_sfo_study",
    "test_fig2b_study",
    "test_figures",
    "test_main",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
