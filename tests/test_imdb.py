from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adamrepro.data import DataError, SparseRows, load_imdb
from adamrepro.data.imdb import bag_of_words, load_imdb_text
from adamrepro.models import BagOfWordsLogisticRegression
from adamrepro.training import train
from conftest import hydra_config, make_imdb


def dense(rows: SparseRows) -> torch.Tensor:
    out = torch.zeros(rows.shape)
    batch = rows[torch.arange(len(rows))]
    out[batch.row, batch.col] = batch.value
    return out


def test_local_folder_and_tarball_give_the_same_dataset_dict(tmp_path: Path):
    make_imdb(tmp_path / "a", per_class=5)
    make_imdb(tmp_path / "b", per_class=5, tarball=True)
    folder = load_imdb_text(tmp_path / "a", verify=False)
    tarball = load_imdb_text(tmp_path / "b", verify=False)
    assert set(folder) == {"train", "test"}
    assert folder["train"].num_rows == 10 and folder["test"].num_rows == 10
    assert folder["train"]["label"] == [0] * 5 + [1] * 5
    assert folder["train"]["text"] == tarball["train"]["text"]
    assert folder["test"]["label"] == tarball["test"]["label"]


def test_vocabulary_size_and_binary_or_count_features(imdb_root: Path):
    binary = load_imdb(imdb_root, vocab_size=7, binary=True, verify=False)
    counts = load_imdb(imdb_root, vocab_size=7, binary=False, verify=False)
    assert binary.x_train.shape == (80, 7) and binary.x_test.shape == (80, 7)
    assert binary.num_classes == 2 and binary.y_train.tolist() == [0] * 40 + [1] * 40
    assert set(dense(binary.x_train).unique().tolist()) <= {0.0, 1.0}
    assert dense(counts.x_train).max() > 1  # "the" and other words repeat within a review
    assert torch.equal(dense(counts.x_train) > 0, dense(binary.x_train) > 0)
    text = load_imdb_text(imdb_root, verify=False)
    _, _, vocabulary = bag_of_words(text["train"]["text"], text["test"]["text"], 100, True)
    assert "br" not in vocabulary and "the" in vocabulary and "great" in vocabulary


def test_features_are_cached_by_what_built_them(imdb_root: Path, tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_imdb(imdb_root, vocab_size=10, cache_dir=cache, verify=False)
    assert len(list(cache.glob("*.npz"))) == 1

    def no_reading(*args, **kwargs):
        raise AssertionError("the text was read again")

    monkeypatch.setattr("adamrepro.data.imdb.load_imdb_text", no_reading)
    again = load_imdb(imdb_root, vocab_size=10, cache_dir=cache, verify=False)
    assert torch.equal(dense(first.x_train), dense(again.x_train))
    assert torch.equal(first.y_test, again.y_test)
    with pytest.raises(AssertionError, match="read again"):
        load_imdb(imdb_root, vocab_size=10, binary=False, cache_dir=cache, verify=False)  # key


def test_missing_imdb_is_one_clear_line(tmp_path: Path):
    with pytest.raises(DataError) as error:
        load_imdb(tmp_path / "nowhere", source="local")
    assert "\n" not in str(error.value)
    assert str(tmp_path / "nowhere") in str(error.value) and "data.root" in str(error.value)


def test_sparse_forward_equals_the_dense_product_and_dropout_is_training_only(imdb_root):
    data = load_imdb(imdb_root, vocab_size=12, verify=False)
    model = BagOfWordsLogisticRegression(12, 2, seeds=[0, 1, 2], input_dropout=0.5)
    x = data.x_train[torch.arange(16)]
    model.eval()
    expected = dense(data.x_train)[:16] @ model.linear.weight + model.linear.bias.unsqueeze(1)
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert torch.equal(model(x), model(x))
    per_member = data.x_train[torch.arange(16).expand(3, -1)]  # member-major rows
    assert torch.allclose(model(per_member), expected, atol=1e-6)
    model.train()
    assert not torch.allclose(model(x), expected)
    twins = BagOfWordsLogisticRegression(12, 2, seeds=[0, 0], input_dropout=0.5).train()
    noisy = twins(x)  # the same weights: outputs differ only through each member's own masks
    assert not torch.equal(noisy[0], noisy[1])
    assert torch.equal(twins.eval()(x)[0], twins(x)[1])


@pytest.mark.slow
def test_real_imdb_loads_with_the_papers_vocabulary(shared_imdb: Path, tmp_path: Path):
    data = load_imdb(shared_imdb, vocab_size=10000, cache_dir=tmp_path)
    assert data.x_train.shape == (25000, 10000) and data.x_test.shape == (25000, 10000)
    assert data.y_train.sum().item() == 12500


def test_a_short_imdb_population_learns(imdb_root: Path, tmp_path: Path):
    cfg = hydra_config(
        "experiment=imdb_bow",
        f"data.root={imdb_root}",
        f"data.cache_dir={tmp_path / 'c'}",
        "data.verify=false",
        "data.vocab_size=30",
        "trainer.epochs=4",
        "trainer.batch_size=16",
        "optimizer=adam",
        "+grid.stepsize=[0.01,0.1]",
        "sweep.seeds=[0,1]",
    )
    record = train(cfg, tmp_path / "run")
    last = [r for r in record["curves"] if r["epoch"] == 4]
    assert len(last) == 4 and record["diverged"] == {}
    assert max(r["test_accuracy"] for r in last) > 0.9
    first = [r for r in record["curves"] if r["epoch"] == 1]
    assert all(b["train_cost"] < a["train_cost"] for a, b in zip(first, last, strict=True))


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flipped-late":  # a few bytes near the end of the compressed stream
        for k in range(int(len(data) * 0.85), int(len(data) * 0.85) + 4):
            data[k] ^= 0x5A
    elif how == "truncated":
        data = data[: int(len(data) * 0.6)]
    elif how == "random-bytes":
        data = bytearray(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8))
    elif how == "not-gzip":
        data = bytearray(b"<html>404 Not Found</html>")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flipped-late", "truncated", "random-bytes", "not-gzip"])
def test_a_damaged_archive_is_one_line_never_a_partial_run(tmp_path: Path, how: str):
    archive = make_imdb(tmp_path / "data", per_class=60, tarball=True)
    _damage(archive, how)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as error:  # even unverified: no partial read gets through
        load_imdb(tmp_path / "data", vocab_size=10, cache_dir=cache, verify=False)
    message = str(error.value)
    assert message.startswith(f"{archive} is a damaged archive (") and "\n" not in message
    assert not cache.exists() or not list(cache.iterdir())  # nothing cached from it


def test_imdbs_exact_reviews_are_checked(tmp_path: Path):
    from adamrepro.data.imdb import check_reviews

    make_imdb(tmp_path / "data", per_class=40)
    with pytest.raises(DataError) as error:
        load_imdb_text(tmp_path / "data")  # verify=True by default
    assert str(error.value) == (
        f"{tmp_path / 'data' / 'aclImdb'}: train/pos holds 40 reviews where IMDB has 12,500; "
        "missing ids 40-12499; a partial or damaged copy (data.verify=false reads it anyway)"
    )
    whole = [(s, label, i) for s in ("train", "test") for label in (0, 1) for i in range(12_500)]
    check_reviews(whole, "copy")  # the complete set passes
    gaps = [r for r in whole if not (r[0] == "train" and r[1] == 0 and r[2] in {3, 17, 18, 19})]
    with pytest.raises(DataError, match=r"copy: train/neg holds 12,496 reviews .* ids 3, 17-19;"):
        check_reviews(gaps, "copy")
    with pytest.raises(DataError) as error:
        check_reviews([*whole, ("train", 1, 7)], "copy")
    assert str(error.value) == (
        "copy: train/pos holds 12,501 reviews where IMDB has 12,500 (some "
        "twice); a partial or damaged copy (data.verify=false reads it "
        "anyway)"
    )


def test_missing_ids_are_shown_as_their_first_four_runs():
    from adamrepro.data.imdb import _spans

    assert _spans([0, 1, 2, 3, 17, 40, 41, 45]) == "0-3, 17, 40-41, 45"
    assert _spans([0, 2, 4, 6, 8, 9]) == "0, 2, 4, 6, ... (6 in all)"
    assert _spans(list(range(2000)) + [3000]) == "0-1999, 3000"
    assert _spans([1, 3, 5], shown=2) == "1, 3, ... (3 in all)"


def test_the_hub_is_asked_once_and_quickly_unless_offline(monkeypatch):
    """One HEAD request to the hub's endpoint with a 5 s timeout; its error, on one line, is
    the answer. HF_HUB_OFFLINE set to anything but 0, empty or false skips the request."""
    from huggingface_hub import constants
    from huggingface_hub import utils as hub_utils

    from adamrepro.data.imdb import _hub_unreachable

    asked = []

    class Session:
        def head(self, url, timeout=None):
            asked.append((url, timeout))
            raise OSError("no route to host\n(details)")

    monkeypatch.setattr(hub_utils, "get_session", lambda: Session())
    for value in ("0", "", "false", "False"):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert _hub_unreachable() == "no route to host (details)"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert _hub_unreachable(timeout=0.5) == "no route to host (details)"
    assert asked == 4 * [(constants.ENDPOINT, 5.0)] + [(constants.ENDPOINT, 0.5)]
    for value in ("1", "true", "FALSE"):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert _hub_unreachable() is None
    assert len(asked) == 5


def test_a_cached_sparse_matrix_keeps_its_shape_with_empty_last_rows_and_columns():
    import scipy.sparse

    from adamrepro.data.imdb import _pack, _unpack

    matrix = scipy.sparse.csr_matrix(([1.0, 2.0], ([0, 1], [0, 2])), shape=(4, 7))
    back = _unpack(_pack(matrix, "x"), "x")
    assert back.shape == (4, 7) and (back != matrix).nnz == 0


def test_the_official_archive_is_md5_checked(tmp_path: Path):
    archive = make_imdb(tmp_path, per_class=5, tarball=True)
    assert archive.name == "aclImdb_v1.tar.gz"
    from adamrepro.data.base import file_md5

    with pytest.raises(DataError) as error:
        load_imdb_text(tmp_path)
    assert str(error.value) == (
        f"{archive}: md5 {file_md5(archive)} is not that of the official aclImdb_v1.tar.gz "
        "(7c2ac02c03563afcf9b574c7e56c153a); a damaged or different file (data.verify=false "
        "reads it anyway)"
    )
    assert load_imdb_text(tmp_path, verify=False)["train"].num_rows == 10


def test_a_damaged_cache_is_built_again_and_an_unverified_one_never_serves_a_verified_read(
    imdb_root: Path, tmp_path: Path, caplog
):
    cache = tmp_path / "cache"
    first = load_imdb(imdb_root, vocab_size=10, cache_dir=cache, verify=False)
    (stored,) = cache.glob("*.npz")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        again = load_imdb(imdb_root, vocab_size=10, cache_dir=cache, verify=False)
    assert "building it again" in caplog.text
    assert torch.equal(dense(first.x_train), dense(again.x_train))
    with pytest.raises(DataError, match="holds 40 reviews where IMDB has 12,500"):
        load_imdb(imdb_root, vocab_size=10, cache_dir=cache)  # verify=True: its own key


def test_the_hub_is_asked_only_without_a_local_copy_and_quietly(imdb_root, tmp_path, monkeypatch):
    import time

    import datasets
    import huggingface_hub.utils

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("hub asked"))
    load_imdb_text(imdb_root, verify=False)  # a local copy: the hub is not asked

    class Offline:
        def head(self, *args, **kwargs):
            raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: Offline())
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        load_imdb_text(tmp_path / "nowhere")
    assert time.monotonic() - started < 2
    assert str(error.value).endswith(
        "the hub's stanfordnlp/imdb could not be loaded ([Errno -2] Name or service not known); "
        "set data.root=DIR (or ADAMREPRO_DATA) to a folder holding one"
    )


def test_sparse_rows_move_every_part_and_cast_only_the_values():
    """`to` moves indptr, indices and values to the device (the meta device stands in for a
    GPU here: it shows where a tensor went without one) and casts the values only."""
    import scipy.sparse

    matrix = scipy.sparse.csr_matrix(np.array([[0, 2.0, 0], [1.0, 0, 3.0]], dtype=np.float32))
    rows = SparseRows.from_scipy(matrix)
    moved = rows.to(torch.device("meta"), torch.float64)
    assert [t.device.type for t in (moved.indptr, moved.indices, moved.values)] == ["meta"] * 3
    assert moved.values.dtype == torch.float64 and moved.indices.dtype == rows.indices.dtype
    assert moved.width == 3
    cast = rows.to("cpu", torch.float64)
    assert cast.values.tolist() == [2.0, 1.0, 3.0] and cast.values.dtype == torch.float64
    assert rows.to("cpu").values.dtype == torch.float32


def test_two_classes_give_one_output_and_more_give_one_each():
    two = BagOfWordsLogisticRegression(vocab_size=7, num_classes=2, seeds=[0, 1])
    assert two.linear.weight.shape == (2, 7, 1) and two.weight_decay == 0.0
    assert two.dropout.p == 0.5
    three = BagOfWordsLogisticRegression(vocab_size=7, num_classes=3, seeds=[0])
    assert three.linear.weight.shape == (1, 7, 3)


def test_three_classes_forward_is_the_dense_product_plus_each_members_bias(imdb_root):
    data = load_imdb(imdb_root, vocab_size=12, verify=False)
    model = BagOfWordsLogisticRegression(12, 3, seeds=[0, 1]).eval()
    with torch.no_grad():
        model.linear.bias.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]]))
    x = data.x_train[torch.arange(5)]
    expected = dense(data.x_train)[:5] @ model.linear.weight + model.linear.bias.unsqueeze(1)
    assert model(x).shape == (2, 5, 3)
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_two_copies_of_imdb_never_share_a_cache_entry(tmp_path: Path):
    """The cache key names the copy (its path, size and times): another copy, found by the
    default source or named local, is read afresh; its description names where it came from."""
    cache = tmp_path / "cache"
    one = make_imdb(tmp_path / "one", per_class=8, seed=1)
    two = make_imdb(tmp_path / "two", per_class=8, seed=2)
    first = load_imdb(tmp_path / "one", vocab_size=12, cache_dir=cache, verify=False)
    second = load_imdb(tmp_path / "two", vocab_size=12, cache_dir=cache, verify=False)
    local = load_imdb(
        tmp_path / "two", source="local", vocab_size=12, cache_dir=cache, verify=False
    )
    assert len(list(cache.glob("*.npz"))) == 2  # auto and local read the same copy: one entry
    assert not torch.equal(dense(first.x_train), dense(second.x_train))
    assert torch.equal(dense(local.x_train), dense(second.x_train))
    assert first.description == {
        "name": "IMDB",
        "source": str(one),
        "lossless": True,
        "checked": False,
        "label": "IMDB, binary 12 words",
    }
    counts = load_imdb(tmp_path / "two", vocab_size=12, binary=False, verify=False)
    assert counts.description["source"] == str(two)
    assert counts.description["label"] == "IMDB, counts of 12 words"


def test_features_are_float32_and_a_tarball_under_imdb_is_found(tmp_path: Path):
    from adamrepro.data.imdb import find_local

    train, test, _ = bag_of_words(["ab cd cd", "ef"], ["cd"], vocab_size=3, binary=False)
    assert train.dtype == np.float32 and test.dtype == np.float32
    archive = make_imdb(tmp_path / "imdb", per_class=2, tarball=True)
    assert find_local(tmp_path) == archive


def test_the_hubs_copy_is_checked_for_imdbs_counts_when_verifying(tmp_path, monkeypatch):
    """The hub's copy (asked here of a stand-in) passes with 2 x PER_LABEL reviews per split,
    PER_LABEL positive; any other count is named in one line; verify=false takes it as it is."""
    import datasets

    from adamrepro.data import imdb

    def hub(test_labels):
        def load_dataset(name):
            assert name == "stanfordnlp/imdb"
            split = lambda labels: datasets.Dataset.from_dict(  # noqa: E731
                {"text": ["review"] * len(labels), "label": labels}
            )
            return {"train": split([0, 1, 0, 1]), "test": split(test_labels), "unsupervised": 0}

        return load_dataset

    monkeypatch.setattr(imdb, "PER_LABEL", 2)
    monkeypatch.setattr(imdb, "_hub_unreachable", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", hub([1, 1, 0, 0]))
    text = imdb.load_imdb_text(tmp_path, verify=True)
    assert sorted(text) == ["test", "train"] and text["test"]["label"] == [1, 1, 0, 0]
    for labels, held in (([1, 1, 1, 0], "4 reviews, 3"), ([1, 0, 1], "3 reviews, 2")):
        monkeypatch.setattr(datasets, "load_dataset", hub(labels))
        with pytest.raises(DataError) as error:
            imdb.load_imdb_text(tmp_path, verify=True)
        assert str(error.value) == (
            f"the hub's stanfordnlp/imdb test split holds {held} positive, where IMDB has 4 and 2"
        )
        assert imdb.load_imdb_text(tmp_path, verify=False)["test"]["label"] == labels


def test_a_data_set_of_sparse_rows_casts_their_values_and_keeps_its_labels(imdb_root):
    data = load_imdb(imdb_root, vocab_size=12, verify=False)
    cast = data.to("cpu", torch.float64)
    assert cast.x_train.values.dtype == cast.x_test.values.dtype == torch.float64
    assert cast.y_train.dtype == data.y_train.dtype and torch.equal(cast.y_test, data.y_test)
    assert torch.equal(cast.x_train.values, data.x_train.values.double())
