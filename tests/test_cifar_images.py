"""CIFAR-10 from image-folder copies (folders and tarballs, PNG and JPEG): decoded as written,
put back in the original order, cached, checked, labelled lossy where they are."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from adamrepro.data import DataError, load_cifar10
from adamrepro.data.images import jpeg_quality
from conftest import CIFAR_CLASSES, make_cifar_images, make_exact_subset


def load(root: Path, **settings):
    return load_cifar10(root, download=False, verify=False, whitening="none", **settings)


@pytest.mark.parametrize("tarball", [False, True], ids=["folder", "tarball"])
def test_a_png_copy_is_read_exactly_and_in_the_original_order(tmp_path, tarball):
    written = make_cifar_images(tmp_path, tarball=tarball)
    data = load(tmp_path, source="images", cache_dir=tmp_path / "cache")
    pixels = (data.x_train * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(pixels, written["x_train"])  # lossless, original order restored
    assert data.y_train.tolist() == written["y_train"].tolist()
    assert sorted(data.y_test.tolist()) == sorted(written["y_test"].tolist())
    assert data.description["lossless"] and data.description["order"] == "original"
    assert data.description["label"] == "CIFAR-10"
    auto = load(tmp_path, cache_dir=tmp_path / "cache")  # no pickle batches: the image copy
    assert torch.equal(auto.x_train, data.x_train)


def test_a_jpeg_copy_is_labelled_lossy_with_its_quality(tmp_path):
    written = make_cifar_images(tmp_path, fmt="JPEG")
    data = load(tmp_path, source="images")
    assert data.description == {
        "name": "CIFAR-10",
        "source": "image copy (JPEG)",
        "path": str(tmp_path / "cifar10" / "cifar10-jpeg"),
        "lossless": False,
        "jpeg_quality": 75,
        "order": "original",
        "label": "CIFAR-10 (JPEG-75 copy)",
    }
    error = (data.x_train * 255 - torch.from_numpy(written["x_train"]).float()).abs().mean()
    assert 1 < error < 80  # close to, but not, the pixels written (random images compress badly)


def test_without_the_labels_file_the_images_stay_grouped_by_class(tmp_path):
    written = make_cifar_images(tmp_path, labels_file=False)
    data = load(tmp_path, source="images")
    assert data.description["order"] == "by class"
    assert data.y_train.tolist() == sorted(written["y_train"].tolist())


def test_decoded_images_are_cached_and_checked(tmp_path, monkeypatch):
    import adamrepro.data.cifar as cifar

    make_cifar_images(tmp_path)
    first = load(tmp_path, source="images", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("cifar10_images_*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cifar, "read_image_tree", no_decoding)
    again = load(tmp_path, source="images", cache_dir=tmp_path / "cache")
    assert torch.equal(first.x_train, again.x_train)
    (stored,) = (tmp_path / "cache").glob("cifar10_images_*.npz")
    content = bytearray(stored.read_bytes())
    content[len(content) // 2] ^= 0xFF
    stored.write_bytes(bytes(content))
    with pytest.raises(AssertionError, match="decoded again"):  # an altered cache is not used
        load(tmp_path, source="images", cache_dir=tmp_path / "cache")


def test_the_exact_rows_of_a_copy_are_found_by_index_and_class_rank(tmp_path):
    written = make_cifar_images(tmp_path, per_class={"train": 6, "test": 4})
    make_exact_subset(tmp_path, written)
    exact = load(tmp_path, source="exact")
    copy = load(tmp_path, source="images", rows="exact")
    assert torch.equal(exact.x_train, copy.x_train) and torch.equal(exact.x_test, copy.x_test)
    assert torch.equal(exact.y_test, copy.y_test)
    assert exact.description == {
        "name": "CIFAR-10",
        "source": "exact subset",
        "lossless": True,
        "order": "original",
        "rows": "exact",
        "label": f"CIFAR-10 (exact subset: 20 train, {len(exact.y_test)} test)",
    }
    folder = str(tmp_path / "cifar10" / "cifar10-jpeg")
    assert copy.description == {
        "name": "CIFAR-10",
        "source": "image copy (PNG)",
        "path": folder,
        "lossless": True,
        "jpeg_quality": None,
        "order": "original",
        "label": "CIFAR-10, exact subset's rows",
        "rows": "exact",
    }
    whole = load(tmp_path, source="images")
    expected = {k: v for k, v in copy.description.items() if k != "rows"}
    assert whole.description == {**expected, "label": "CIFAR-10"}


def test_every_damage_is_one_line(tmp_path):
    def fresh(name: str, **kwargs) -> Path:
        root = tmp_path / name
        make_cifar_images(root, **kwargs)
        return root

    root = fresh("extra_class")
    (root / "cifar10/cifar10-jpeg/train/horse").rename(root / "cifar10/cifar10-jpeg/train/pony")
    with pytest.raises(
        DataError,
        match=r"train/ has class folders pony that are not classes, "
        r"and lacks horse; the classes are airplane",
    ):
        load(root, source="images")
    root = fresh("counts", per_class={"train": 5, "test": 3})
    with pytest.raises(DataError, match=r"train/airplane holds 5 images where there must be 5,000"):
        load_cifar10(root, download=False, whitening="none", source="images")  # verified
    root = fresh("unreadable")
    (root / "cifar10/cifar10-jpeg/test/cat/0001.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"test/cat/0001.png is not a readable image"):
        load(root, source="images")
    root = fresh("tar", tarball=True)
    archive = root / "cifar10" / "cifar10-jpeg.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cifar10-jpeg.tar.gz is a damaged archive \(Compressed"):
        load(root, source="images")
    with pytest.raises(DataError, match=r"md5 \w+ is not that of the known copy"):
        load_cifar10(root, download=False, whitening="none", source="images")  # verified
    root = fresh("labels")
    np.save(root / "cifar10" / "train_labels_original_order.npy", np.zeros(60, dtype=np.uint8))
    with pytest.raises(DataError, match="does not count the images of each class as the copy"):
        load(root, source="images")
    shutil.rmtree(root / "cifar10")
    with pytest.raises(DataError, match=r"CIFAR-10 not found: no image copy"):
        load(root, source="images")
    with pytest.raises(DataError, match=r"exact_subset.npz not found in"):
        load(root, source="exact")
    for key, value in (("source", "tfrecords"), ("rows", "some")):
        with pytest.raises(DataError, match=f"data.{key} must be one of"):
            load(root, **{key: value})
    assert len(CIFAR_CLASSES) == 10


def test_the_jpeg_quality_is_read_from_the_quantisation_table():
    from adamrepro.data.images import _IJG_LUMINANCE

    for quality in (50, 75, 90, 25):  # the IJG scaling of the standard table
        scale = 200 - 2 * quality if quality >= 50 else 5000 // quality
        table = np.clip((_IJG_LUMINANCE * scale + 50) // 100, 1, 255)
        assert jpeg_quality(table) == quality


@pytest.mark.slow
def test_real_cifar_jpeg_copy_matches_the_exact_rows(tmp_path):
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "cifar10" / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip(f"no CIFAR-10 copy in {SHARED_DATA} (ADAMREPRO_DATA, else ../shared/data)")
    exact = load_cifar10(SHARED_DATA, whitening="none", source="exact")
    copy = load_cifar10(SHARED_DATA, whitening="none", rows="exact", cache_dir=tmp_path)
    assert copy.description["label"] == "CIFAR-10 (JPEG-75 copy), exact subset's rows"
    assert torch.equal(exact.y_train, copy.y_train) and torch.equal(exact.y_test, copy.y_test)
    mse = (exact.x_train - copy.x_train).square().mean(dim=(1, 2, 3))
    psnr = 10 * torch.log10(1 / mse)
    assert 29 < psnr.median() < 32 and psnr.min() > 20  # PROVENANCE: 30.5 dB median


@pytest.mark.slow
def test_the_copy_check_compares_spectra_and_curves_and_picks_stepsizes(tmp_path):
    from adamrepro.studies.copycheck import main

    written = make_cifar_images(tmp_path / "data", fmt="JPEG", per_class={"train": 6, "test": 4})
    make_exact_subset(tmp_path / "data", written)
    out = tmp_path / "out"
    main(
        [
            "--data-root",
            str(tmp_path / "data"),
            "--runs",
            str(tmp_path / "runs"),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--no-verify",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--override",
            "model.channels=[4,4,8]",
            "model.hidden=16",
            "data.verify=false",
            "data.whitening=standardize",
            "trainer.batch_size=8",
        ]
    )
    import json

    import pandas as pd

    spectrum = pd.read_csv(out / "spectrum.csv")
    assert len(spectrum) == 3072 and (spectrum["exact"].iloc[:19] > 0).all()
    assert spectrum["exact"].iloc[20:].abs().max() < 1e-9  # 20 images span 19 directions
    compare = pd.read_csv(out / "compare.csv")
    assert len(compare) == 9 and set(compare["optimizer"]) == {"AdaGrad", "SGDNesterov", "Adam"}
    assert (compare["max_abs_difference"] > 0).all()  # JPEG pixels differ: so do the curves
    selected = json.loads((out / "selected.json").read_text())
    assert set(selected) == {"AdaGrad", "SGDNesterov", "Adam"}
    best = compare.loc[compare.groupby("optimizer")["final_exact"].idxmin()]
    assert selected == dict(zip(best["optimizer"], best["stepsize"], strict=True))
    summary = (out / "summary.md").read_text()
    assert summary.startswith("Data: CIFAR-10 (JPEG-75 copy), exact subset's rows against")


def test_each_damage_says_what_and_where_in_full(tmp_path):
    import gzip

    from adamrepro.data.cifar import KNOWN_MD5
    from adamrepro.data.images import read_image_tree

    root = tmp_path / "unreadable"
    make_cifar_images(root)
    (root / "cifar10/cifar10-jpeg/test/cat/0001.png").write_bytes(b"not an image")
    with pytest.raises(DataError) as error:
        load(root, source="images")
    assert str(error.value).startswith(
        f"{root / 'cifar10/cifar10-jpeg'}: test/cat/0001.png is not a readable image (cannot "
        "identify image file <_io.BytesIO object at 0x"  # PIL's own words, then ours
    ) and str(error.value).endswith(">)")
    # images of four sizes: the first three sizes are named
    root = tmp_path / "sizes"
    make_cifar_images(root, per_class={"train": 1, "test": 1})
    from PIL import Image

    folder = root / "cifar10/cifar10-jpeg/train"
    for name, size in (("airplane", 8), ("automobile", 9), ("bird", 10), ("cat", 11)):
        (image,) = (folder / name).glob("*.png")
        Image.new("RGB", (size, size)).save(image)
    with pytest.raises(DataError) as error:
        read_image_tree(root / "cifar10/cifar10-jpeg", CIFAR_CLASSES)
    assert str(error.value) == (
        f"{root / 'cifar10/cifar10-jpeg'}: the train images differ in "
        "size ([(3, 8, 8), (3, 9, 9), (3, 10, 10)])"
    )
    # data after a tarball's end (whitespace, or anything that is not its zero padding)
    root = tmp_path / "tail"
    make_cifar_images(root, per_class={"train": 1, "test": 1}, tarball=True)
    archive = root / "cifar10" / "cifar10-jpeg.tar.gz"
    tar = gzip.decompress(archive.read_bytes())
    for tail in (b"\n \n", b"XX"):
        archive.write_bytes(gzip.compress(tar + tail, compresslevel=1))
        with pytest.raises(DataError) as error:
            read_image_tree(archive, CIFAR_CLASSES)
        stops = f"the tar stops at byte {len(tar):,} but data follows"
        assert str(error.value) == f"{archive} is a damaged archive ({stops}); get a whole copy"
    archive.write_bytes(gzip.compress(tar + b"\0" * 700, compresslevel=1))
    assert len(read_image_tree(archive, CIFAR_CLASSES).labels["train"]) == 10
    # a known archive with other bytes: its md5 named
    known = next(iter(KNOWN_MD5))
    other = tmp_path / "md5" / "cifar10" / known
    other.parent.mkdir(parents=True)
    other.write_bytes(archive.read_bytes())
    with pytest.raises(DataError) as error:
        load_cifar10(tmp_path / "md5", download=False, whitening="none", source="images")
    from adamrepro.data.base import file_md5

    assert str(error.value) == (
        f"{other}: md5 {file_md5(other)} is not that of the known copy ({KNOWN_MD5[known]}); a "
        "damaged or different file (data.verify=false reads it anyway)"
    )


def test_a_tarball_named_as_the_root_finds_its_labels_beside_it(tmp_path):
    written = make_cifar_images(tmp_path, per_class={"train": 2, "test": 1}, tarball=True)
    beside = tmp_path / "elsewhere"
    beside.mkdir()
    (tmp_path / "cifar10" / "cifar10-jpeg.tar.gz").rename(beside / "cifar10-jpeg.tar.gz")
    (tmp_path / "cifar10" / "train_labels_original_order.npy").rename(
        beside / "train_labels_original_order.npy"
    )
    data = load(beside / "cifar10-jpeg.tar.gz", source="images")
    assert data.description["order"] == "original"
    assert data.y_train.tolist() == written["y_train"].tolist()
    (beside / "other.tar.gz").write_bytes(b"")
    (beside / "cifar-10-python.tar.gz").write_bytes(b"")
    from adamrepro.data.cifar import find_images

    assert find_images(beside) == beside / "cifar10-jpeg.tar.gz"
    (beside / "cifar10-jpeg.tar.gz").unlink()
    assert find_images(beside) is None  # neither the pickle archive nor a tarball of another name


def test_two_copies_with_the_same_size_and_time_never_share_a_cache_entry(tmp_path):
    """Nothing beside either copy: only their paths tell them apart."""
    import os
    import shutil

    make_cifar_images(
        tmp_path / "a", per_class={"train": 1, "test": 1}, tarball=True, labels_file=False
    )
    first = tmp_path / "a" / "cifar10" / "cifar10-jpeg.tar.gz"
    second = tmp_path / "b" / "cifar10" / "cifar10-jpeg.tar.gz"
    second.parent.mkdir(parents=True)
    shutil.copy(first, second)
    content = bytearray(second.read_bytes())
    content[len(content) // 2] ^= 0xFF  # the same size, other bytes
    second.write_bytes(bytes(content))
    stat = first.stat()
    os.utime(second, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    load(tmp_path / "a", source="images", cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="is a damaged archive"):
        load(tmp_path / "b", source="images", cache_dir=tmp_path / "cache")


def test_an_exact_subset_that_disagrees_with_the_copy_is_refused(tmp_path):
    written = make_cifar_images(tmp_path, per_class={"train": 6, "test": 4})
    path = make_exact_subset(tmp_path, written)
    stored = dict(np.load(path))
    stored["train_labels"] = (stored["train_labels"] + 1) % 10
    np.savez(path, **stored)
    with pytest.raises(DataError) as error:
        load(tmp_path, source="images", rows="exact")
    assert str(error.value) == "the exact subset's labels do not match the copy's at the same rows"
    (tmp_path / "cifar10" / "train_labels_original_order.npy").unlink()
    with pytest.raises(DataError) as error:
        load(tmp_path, source="images", rows="exact")
    assert str(error.value) == (
        "rows=exact needs the training images in their original order: "
        "put train_labels_original_order.npy beside the copy"
    )


def test_verify_checks_the_exact_subset_read_beside_an_image_copy(tmp_path, monkeypatch):
    """rows=exact with data.verify=true checks the subset's md5 as well as the copy's counts."""
    from adamrepro.data import cifar

    written = make_cifar_images(tmp_path, per_class={"train": 2, "test": 2})
    path = make_exact_subset(tmp_path, written, train_rows=4)
    monkeypatch.setattr(cifar, "PER_CLASS", {"train": 2, "test": 2})
    monkeypatch.setattr(cifar, "KNOWN_MD5", {"exact_subset.npz": "0" * 32})
    with pytest.raises(DataError) as error:
        load_cifar10(
            tmp_path, download=False, verify=True, whitening="none", source="images", rows="exact"
        )
    assert str(error.value).startswith(f"{path}: md5 ")
    assert len(load(tmp_path, source="images", rows="exact").y_train) == 4
