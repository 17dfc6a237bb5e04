from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from adamrepro.data import DataError, load_data, load_mnist
from adamrepro.data.mnist import read_idx
from adamrepro.errors import ConfigError
from conftest import make_mnist, write_idx


def test_read_idx_round_trip(tmp_path: Path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a-idx3-ubyte", array)
    assert np.array_equal(read_idx(path.read_bytes()), array)
    with pytest.raises(ValueError, match="magic"):
        read_idx(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="holds"):
        read_idx(path.read_bytes()[:-1])


@pytest.mark.parametrize("compress,sub", [(True, "."), (False, "mnist"), (True, "MNIST/raw")])
def test_loads_generated_idx_files_raw_or_gz_in_each_layout(tmp_path: Path, compress, sub):
    make_mnist(tmp_path / sub, n_train=50, n_test=20, compress=compress)
    data = load_mnist(tmp_path, download=False, verify=False)
    assert data.x_train.shape == (50, 784) and data.x_test.shape == (20, 784)
    assert data.x_train.dtype == torch.float32
    assert data.x_train.min() == 0 and data.x_train.max() == 1
    assert data.y_train.dtype == torch.int64 and int(data.y_train.max()) <= 9
    assert data.num_classes == 10


def test_md5_check_rejects_files_that_are_not_mnist(mnist_root: Path):
    with pytest.raises(DataError, match="is not MNIST's"):
        load_mnist(mnist_root, download=False, verify=True)


def test_missing_data_is_one_line_naming_where_it_looked(tmp_path: Path):
    with pytest.raises(DataError) as error:
        load_mnist(tmp_path / "nowhere", download=False)
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere" / "MNIST/raw") in message
    assert "train-images-idx3-ubyte" in message and "data.root" in message


def test_damaged_gzip_is_reported(tmp_path: Path):
    make_mnist(tmp_path, n_train=10, n_test=10)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"xx")[:-4])
    with pytest.raises(DataError, match="train-labels"):
        load_mnist(tmp_path, download=False, verify=False)


def test_unknown_data_setting_is_a_config_error(mnist_root: Path):
    with pytest.raises(ConfigError, match="colour"):
        load_data({"name": "mnist", "root": str(mnist_root), "colour": 1})
    with pytest.raises(DataError, match="unknown data set"):
        load_data({"name": "svhn"})


def test_real_mnist_passes_the_canonical_md5s(shared_mnist: Path):
    data = load_mnist(shared_mnist, download=False, verify=True)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(data.y_test).tolist()[0] == 980


def test_a_failed_download_says_why_in_full_and_leaves_no_folder(tmp_path: Path, monkeypatch):
    import torchvision.datasets

    class Offline:  # as torchvision does: the folders first, then the failure, on many lines
        def __init__(self, root, train=True, download=False):
            (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            raise RuntimeError(
                "Error downloading train-images-idx3-ubyte.gz:\n"
                "Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got:\n"
                "<urlopen error [Errno -2] Name or service not known>\n"
            )

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    root = tmp_path / "typo" / "in" / "root"
    with pytest.raises(DataError) as error:
        load_mnist(root, download=True)
    assert str(error.value) == (
        f"could not download MNIST into {root / 'MNIST/raw'} (Error downloading "
        "train-images-idx3-ubyte.gz: Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got: "
        "<urlopen error [Errno -2] Name or service not known>); put the four IDX files there or "
        "point data.root (or ADAMREPRO_DATA) at them"
    )
    assert not (tmp_path / "typo").exists()  # a mistyped root is not made into a tree
    empty = tmp_path / "empty"  # an existing root keeps what it had, and gets nothing new
    (empty / "mine").mkdir(parents=True)
    with pytest.raises(DataError):
        load_mnist(empty, download=True)
    assert [p.name for p in empty.iterdir()] == ["mine"]


def test_images_and_labels_must_agree(tmp_path: Path):
    make_mnist(tmp_path, n_train=10, n_test=10)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(9, dtype=np.uint8), compress=True)
    with pytest.raises(DataError, match=r"MNIST train set: images of shape \(10, 28, 28\) but "):
        load_mnist(tmp_path, download=False, verify=False)


def test_binarised_mnist_is_one_where_the_grey_level_is_at_least_half(tmp_path: Path):
    """`binarize`: pixel / 255 >= 0.5 -> 1, else 0 (the same images and labels otherwise)."""
    from adamrepro.data.mnist import load_mnist

    root = make_mnist(tmp_path / "m", n_train=4, n_test=4, compress=False)
    levels = np.array([0, 1, 100, 127, 128, 200, 254, 255], dtype=np.uint8)
    images = np.resize(levels, (4, 28, 28)).astype(np.uint8)
    write_idx(root / "train-images-idx3-ubyte", images)
    grey = load_mnist(root, download=False, verify=False)
    binary = load_mnist(root, download=False, verify=False, binarize=True)
    expected = torch.from_numpy((images.reshape(4, -1) >= 128).astype(np.float32))
    assert torch.equal(binary.x_train, expected)
    assert torch.equal(grey.x_train, torch.from_numpy(images.reshape(4, -1) / 255.0).float())
    assert torch.equal(binary.y_train, grey.y_train)


def test_a_training_subset_is_a_fixed_choice_of_rows_and_leaves_the_test_set(tmp_path: Path):
    root = make_mnist(tmp_path / "m", n_train=50, n_test=10)
    config = {"name": "mnist", "root": str(root), "download": False, "verify": False}
    whole = load_data(config)
    part, again = (load_data({**config, "train_rows": 20}) for _ in range(2))
    assert part.x_train.shape == (20, 784) and torch.equal(part.x_train, again.x_train)
    rows = [next(i for i in range(50) if torch.equal(whole.x_train[i], x)) for x in part.x_train]
    assert rows == sorted(rows) and len(set(rows)) == 20  # distinct rows, in their order
    assert torch.equal(part.y_train, whole.y_train[rows])
    assert torch.equal(part.x_test, whole.x_test) and part.description["train_rows"] == 20
    for bad in (51, 0, -1, True, 2.0, "20"):
        with pytest.raises(ConfigError) as error:
            load_data({**config, "train_rows": bad})
        assert str(error.value) == f"data.train_rows must be an integer in 1..50, got {bad!r}"
    assert len(load_data({**config, "train_rows": 1}).y_train) == 1
    assert torch.equal(load_data({**config, "train_rows": 50}).x_train, whole.x_train)
    # the rows of torch's permutation from seed 0, whatever else has drawn from torch before
    torch.manual_seed(123)
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(0))[:20].sort().values
    assert rows == expected.tolist()


def test_a_training_subset_of_sparse_rows_is_refused(imdb_root: Path, tmp_path: Path):
    config = {
        "name": "imdb",
        "root": str(imdb_root),
        "source": "local",
        "verify": False,
        "vocab_size": 30,
        "cache_dir": str(tmp_path / "cache"),
        "train_rows": 5,
    }
    with pytest.raises(ConfigError) as error:
        load_data(config)
    assert str(error.value) == "data.train_rows needs dense inputs (MNIST, CIFAR-10)"


@pytest.mark.parametrize(
    "header",
    [
        b"\x00\x00\x99\x01",  # an unknown value type, the zeros right
        b"\x00\x01\x08\x01",  # the second byte not zero
        b"\x01\x00\x08\x01",  # the first byte not zero
        b"\x00\x00",  # shorter than a magic number
    ],
)
def test_each_bad_magic_number_is_refused_by_name(header: bytes):
    with pytest.raises(ValueError) as error:
        read_idx(header + b"\x00\x00\x00\x01\x07")
    assert str(error.value) == "not an IDX file (bad magic number)"


def test_a_bare_four_byte_header_is_read_as_a_header():
    """A zero-dimensional IDX header alone is a header that promises one value, not a bad
    magic number."""
    with pytest.raises(ValueError) as error:
        read_idx(b"\x00\x00\x08\x00")
    assert str(error.value) == "IDX header says () but the file holds 0 values"


def test_the_defaults_download_when_missing_and_check_the_md5(tmp_path: Path, monkeypatch):
    """load_mnist(root) with its defaults fetches missing files (here a stand-in writes
    generated ones) and then refuses them because they are not MNIST's bytes; with
    download=False the stand-in is never called and the error names MNIST and its files."""
    from adamrepro.data import mnist

    calls = []

    def fake_download(root: Path) -> None:
        calls.append(root)
        make_mnist(root / "MNIST" / "raw", n_train=10, n_test=10)

    monkeypatch.setattr(mnist, "_download", fake_download)
    with pytest.raises(DataError) as error:
        load_mnist(tmp_path / "absent", download=False)
    assert calls == []
    message = str(error.value)
    assert message.startswith("MNIST ") and "(or .gz)" in message
    assert (
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte (or .gz)"
    ) in message
    with pytest.raises(DataError) as error:
        load_mnist(tmp_path / "fetched")
    assert calls == [tmp_path / "fetched"]
    assert str(error.value).endswith(
        "(a damaged or different file; set data.verify=false to use it anyway)"
    )
    assert str(error.value).startswith(str(tmp_path / "fetched" / "MNIST" / "raw"))


def test_flat_images_and_a_label_above_nine_are_refused(tmp_path: Path):
    make_mnist(tmp_path / "flat", n_train=10, n_test=10)
    flat = np.zeros((10, 784), dtype=np.uint8)
    write_idx(tmp_path / "flat" / "train-images-idx3-ubyte", flat, compress=True)
    with pytest.raises(DataError, match=r"MNIST train set: images of shape \(10, 784\)"):
        load_mnist(tmp_path / "flat", download=False, verify=False)
    make_mnist(tmp_path / "ten", n_train=10, n_test=10)
    labels = np.full(10, 10, dtype=np.uint8)
    write_idx(tmp_path / "ten" / "t10k-labels-idx1-ubyte", labels, compress=True)
    with pytest.raises(DataError) as error:
        load_mnist(tmp_path / "ten", download=False, verify=False)
    assert (
        str(error.value) == f"{tmp_path / 'ten' / 't10k-labels-idx1-ubyte.gz'}: a label 10 above 9"
    )


def test_download_asks_torchvision_for_both_splits_into_root(tmp_path: Path, torchvision_calls):
    """`_download` hands torchvision the root as a string and asks for the training and the
    test split, each with download=True (torchvision reads `download` as a flag)."""
    from adamrepro.data import mnist

    calls = torchvision_calls("MNIST")
    mnist._download(tmp_path)
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    assert all(type(flag) is bool for call in calls for flag in call[1:])


def test_a_file_that_is_not_idx_is_named_with_the_reason(tmp_path: Path):
    make_mnist(tmp_path, n_train=10, n_test=10, compress=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError) as error:
        load_mnist(tmp_path, download=False, verify=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    assert str(error.value) == f"{path}: not an IDX file (bad magic number)"


def test_the_data_check_says_one_line_either_way(mnist_root: Path, tmp_path: Path, capsys):
    from adamrepro.data.__main__ import main

    main(["mnist", "--root", str(mnist_root), "data.verify=false"])
    assert capsys.readouterr().out == f"MNIST: 600 training and 200 test rows ({mnist_root})\n"
    with pytest.raises(SystemExit) as stopped:
        main(["mnist", "--root", str(tmp_path / "none"), "data.download=false"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("error: MNIST not found: looked in ")
    assert err.count("\n") == 1
