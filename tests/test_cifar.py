"""CIFAR-10 (Figure 3): the pickle loader on generated batches, whitening, the network."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from adamrepro.data import cifar, load_cifar10, load_data
from adamrepro.errors import DataError
from adamrepro.figures.plot import main as plot_main
from adamrepro.figures.plot import make_figure
from adamrepro.models import ConvolutionalNetwork
from adamrepro.records import save_record
from adamrepro.training import train
from conftest import hydra_config, line, make_cifar


def test_the_loader_reads_the_pickle_batches(cifar_root):
    data = load_cifar10(cifar_root, download=False, verify=False, whitening="none")
    assert data.x_train.shape == (100, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    assert (
        data.x_train.dtype == torch.float32 and 0 <= data.x_train.min() <= data.x_train.max() <= 1
    )
    assert data.num_classes == 10 and data.y_train.dtype == torch.int64
    # the first image is the first row of data_batch_1, channel-major
    first = cifar.read_batch(cifar_root / "cifar-10-batches-py" / "data_batch_1", verify=False)
    assert torch.equal(data.x_train[0], torch.from_numpy(first[0][0]).float() / 255)
    assert data.y_train[:20].tolist() == first[1].tolist()
    # also found when root is the batch folder itself
    again = load_cifar10(
        cifar_root / "cifar-10-batches-py", download=False, verify=False, whitening="none"
    )
    assert torch.equal(again.x_test, data.x_test)


def test_a_missing_or_damaged_data_set_is_one_clear_error(tmp_path, cifar_root):
    with pytest.raises(DataError, match="CIFAR-10 not found: looked in"):
        load_cifar10(tmp_path / "nothing", download=False)
    with pytest.raises(DataError, match="is not CIFAR-10's"):
        load_cifar10(cifar_root, download=False, verify=True)
    (cifar_root / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a CIFAR-10 pickle batch"):
        load_cifar10(cifar_root, download=False, verify=False)
    with pytest.raises(DataError, match="whitening must be one of"):
        load_cifar10(cifar_root, download=False, verify=False, whitening="pca")


def test_zca_whitening_gives_an_identity_covariance():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(12, 12))
    x = torch.from_numpy(rng.normal(size=(5000, 12)) @ mixing + 3.0)
    mean, matrix = cifar.zca_transform(x, eps=1e-10)
    white = (x - mean) @ matrix
    covariance = white.T @ white / len(x)
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(matrix, matrix.T)  # ZCA: the symmetric whitening, nearest to x
    assert white.mean(0).abs().max() < 1e-10


@pytest.mark.slow
def test_the_loader_whitens_on_the_training_set_and_caches_the_transform(
    cifar_root, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    data = load_cifar10(
        cifar_root, download=False, verify=False, whitening="zca", zca_epsilon=1e-6, cache_dir=cache
    )
    x = data.x_train.flatten(1).double()
    assert x.mean(0).abs().max() < 1e-4
    # 100 images span 99 directions: there the covariance is the identity, elsewhere zero
    eigenvalues = torch.linalg.eigvalsh(torch.cov(x.T, correction=0))
    assert (eigenvalues[-99:] - 1).abs().max() < 1e-2 and eigenvalues[:-99].abs().max() < 1e-3
    assert len(list(cache.glob("cifar10_zca_*.npz"))) == 1

    def refit(*args, **kwargs):
        raise AssertionError("the cached transform should have been used")

    monkeypatch.setattr(cifar, "zca_transform", refit)
    cached = load_cifar10(
        cifar_root, download=False, verify=False, whitening="zca", zca_epsilon=1e-6, cache_dir=cache
    )
    assert torch.allclose(cached.x_test, data.x_test)
    with pytest.raises(AssertionError):  # another epsilon is another transform
        load_cifar10(cifar_root, download=False, verify=False, zca_epsilon=1e-3, cache_dir=cache)
    (stored,) = cache.glob("cifar10_zca_*.npz")  # an altered cache is not used: refitted
    content = bytearray(stored.read_bytes())
    content[len(content) // 2] ^= 0xFF
    stored.write_bytes(bytes(content))
    with pytest.raises(AssertionError, match="should have been used"):
        load_cifar10(cifar_root, download=False, verify=False, zca_epsilon=1e-6, cache_dir=cache)


def test_standardisation_is_per_channel(cifar_root):
    data = load_data(
        {
            "name": "cifar10",
            "root": str(cifar_root),
            "download": False,
            "verify": False,
            "whitening": "standardize",
        }
    )
    per_channel = data.x_train.transpose(0, 1).flatten(1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1), torch.ones(3), atol=1e-4)


def test_the_network_has_the_papers_shapes():
    net = ConvolutionalNetwork((3, 32, 32), 10, seeds=[0, 0, 1], dropout=True)
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes[:6] == [
        (3, 64, 3, 5, 5),
        (3, 64),
        (3, 64, 64, 5, 5),
        (3, 64),
        (3, 128, 64, 5, 5),
        (3, 128),
    ]
    assert shapes[6:] == [(3, 128 * 4 * 4, 1000), (3, 1000), (3, 1000, 10), (3, 10)]
    net.eval()
    x = torch.randn(4, 3, 32, 32)
    out = net(x)
    assert out.shape == (3, 4, 10)
    assert torch.allclose(out[0], out[1], atol=1e-6) and not torch.allclose(out[0], out[2])
    alone = ConvolutionalNetwork((3, 32, 32), 10, seeds=[0])  # a population of one, same member
    alone.eval()
    assert torch.allclose(alone(x)[0], out[0], atol=1e-5)
    assert net(torch.randn(3, 4, 3, 32, 32)).shape == (3, 4, 10)


def test_dropout_is_a_switch_and_acts_in_training_only():
    x = torch.randn(2, 3, 32, 32)
    plain = ConvolutionalNetwork((3, 32, 32), 10, seeds=[0, 0], hidden=50)
    noisy = ConvolutionalNetwork((3, 32, 32), 10, seeds=[0, 0], hidden=50, dropout=True)
    plain.train()
    assert torch.equal(plain(x), plain(x))  # dropout=false: deterministic even in training
    noisy.train()
    out = noisy(x)
    assert not torch.allclose(out[0], out[1])  # same weights, each member its own masks
    noisy.eval()
    assert torch.equal(noisy(x), plain.eval()(x))


@pytest.mark.slow
def test_a_two_epoch_run_draws_both_panels_and_the_vhat_figure(tmp_path, drawn, capsys):
    root = make_cifar(tmp_path / "data", per_batch=26)
    runs, out = tmp_path / "runs", tmp_path / "fig3"
    common = [
        f"data.root={root}",
        "data.verify=false",
        "data.download=false",
        "data.whitening=standardize",
        "trainer.epochs=2",
        "trainer.batch_size=32",
        "model.channels=[8,8,16]",
        "model.hidden=32",
        "trainer.moment_stats_every=2",
    ]
    records = {}
    for optimizer, label, dropout in (
        ("adam", "Adam", "false"),
        ("adam", "Adam+dropout", "true"),
        ("nesterov", "SGDNesterov", "false"),
    ):
        cfg = hydra_config(
            "experiment=cifar_cnn",
            "sweep=fig3_cifar10_cnn",
            f"optimizer={optimizer}",
            f"optimizer.label={label}",
            f"model.dropout={dropout}",
            *common,
        )
        record = records[label] = train(cfg, runs / label)
        assert len(record["members"]) == 4  # the curve's stepsize grid
        assert len(record["step_costs"]["cost"]) == 10  # 5 steps per pass, both passes logged
    best = make_figure("fig3_cifar10_cnn", [str(runs)], out)
    assert sorted(best["curve"]) == ["Adam", "Adam+dropout", "SGDNesterov"]
    figure = drawn[str(out / "figure.png")]
    for label in best["curve"]:  # what is drawn: the selected member's cost, pass by pass
        k = [m["stepsize"] for m in records[label]["members"]].index(
            best.set_index("curve").loc[label, "stepsize"]
        )
        x, y = line(figure, label)
        costs = [r["train_cost"] for r in records[label]["curves"] if r["member"] == k]
        assert y.tolist() == pytest.approx(costs) and len(x) == 2
    assert str(out / "figure_first_epochs.png") in drawn
    steps = pd.read_csv(out / "steps.csv")
    assert steps.columns[:3].tolist() == ["step", "curve", "epoch"]
    assert steps[["train_cost", "train_cost_min", "train_cost_max"]].notna().all().all()
    assert set(steps["curve"]) == {"Adam", "Adam+dropout", "SGDNesterov"}
    assert steps.groupby("curve")["step"].max().tolist() == [10, 10, 10]
    assert steps["epoch"].max() == pytest.approx(2.0)
    # the left panel's curve is the selected member's logged steps, smoothed over 20 steps
    first = steps[steps["curve"] == "Adam"].iloc[0]
    chosen = best.set_index("curve").loc["Adam"]
    members = pd.DataFrame(record_members(runs / "Adam"))
    k = members.index[members["stepsize"] == chosen["stepsize"]][0]
    logged = json.loads((runs / "Adam" / "record.json").read_text())["step_costs"]["cost"]
    assert first["train_cost"] == pytest.approx(logged[0][k], rel=1e-5)
    # claim P9's figure: sqrt(v-hat) per layer of the selected Adam member, logged every 2 steps
    capsys.readouterr()
    plot_main(["fig3_cifar10_cnn_vhat", "--runs", str(runs), "--out", str(tmp_path / "vhat")])
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == (
        f"wrote {tmp_path / 'vhat'}/figure.png, moments.csv, verdict.csv, sources.json"
    )
    verdict = pd.read_csv(tmp_path / "vhat" / "verdict.csv")
    assert printed[0].split()[:2] == verdict.columns[:2].tolist() and len(printed) == 12
    assert set(verdict["label"]) == {"Adam", "Adam+dropout"}
    stats = json.loads((runs / "Adam" / "record.json").read_text())["moment_stats"]
    assert len(stats) == 5 * 10 * 4  # 5 logs x 10 tensors x 4 members (none diverged)
    last = [r for r in stats if r["member"] == k and r["parameter"] == "output.weight"][-1]
    row = verdict.set_index(["label", "parameter"]).loc[("Adam", "output.weight")]
    assert row["median_sqrt_vhat"] == pytest.approx(last["median"], rel=1e-5)
    assert row["fraction_below_eps"] == pytest.approx(last["below_eps"])
    sgd = json.loads((runs / "SGDNesterov" / "record.json").read_text())
    assert sgd.get("moment_stats", []) == []  # SGD keeps no second moment
    # a selected curve whose run logged no steps is missing from the left panel, the rest not
    first = best["curve"].iloc[0]
    unlogged = json.loads((runs / first / "record.json").read_text())
    save_record({**unlogged, "step_costs": None}, runs / first)
    make_figure("fig3_cifar10_cnn", [str(runs)], tmp_path / "unlogged")
    steps = pd.read_csv(tmp_path / "unlogged" / "steps.csv")
    assert set(steps["curve"]) == {"Adam", "Adam+dropout", "SGDNesterov"} - {first}


def record_members(run):
    return json.loads((run / "record.json").read_text())["members"]


def test_a_failed_download_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>\ndetails")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as error:
        load_cifar10(tmp_path, download=True)
    message = str(error.value)
    assert message.startswith(f"could not download CIFAR-10 into {tmp_path} (<urlopen error")
    assert "\n" not in message
    assert message.endswith(
        "put cifar-10-batches-py/ there or point data.root (or ADAMREPRO_DATA) at it"
    )


def test_the_download_asks_torchvision_for_the_archive_into_root(tmp_path, torchvision_calls):
    """torchvision's CIFAR10(root, train=True, download=True) fetches and unpacks the whole
    archive (both splits) into root/cifar-10-batches-py: asked for once, with flags."""
    from adamrepro.data import cifar

    calls = torchvision_calls("CIFAR10")
    cifar._download(tmp_path)
    assert calls == [(str(tmp_path), True, True)]
    assert all(type(flag) is bool for flag in calls[0][1:])


def test_a_pickle_row_is_red_then_green_then_blue_each_row_major(tmp_path):
    """CIFAR-10's layout (its web page): each row is 1024 red values, then 1024 green, then
    1024 blue, each channel's 32x32 image row by row. A row written that way must load as
    channel c, pixel (i, j) = value [1024 c + 32 i + j]."""
    import pickle

    from adamrepro.data.cifar import load_cifar10

    root = make_cifar(tmp_path / "data", per_batch=2)
    folder = root / "cifar-10-batches-py"
    index = np.arange(3072)
    row = ((index // 1024) * 80 + (index % 1024) % 61).astype(np.uint8)  # channel and position
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    batch[b"data"] = np.stack([row, row[::-1]])
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    data = load_cifar10(root, download=False, verify=False, whitening="none")
    image = (data.x_test[0] * 255).round().to(torch.uint8).numpy()
    for c in range(3):
        for i, j in ((0, 0), (0, 31), (1, 0), (17, 5), (31, 31)):
            assert image[c, i, j] == row[1024 * c + 32 * i + j], (c, i, j)


def test_verify_checks_the_test_batch_as_well_as_the_training_batches(cifar_root, monkeypatch):
    import hashlib

    folder = cifar_root / "cifar-10-batches-py"
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setattr(cifar, "_md5s", lambda: md5s)
    assert len(load_cifar10(cifar_root, download=False, verify=True, whitening="none").y_test)
    md5s["test_batch"] = "0" * 32
    with pytest.raises(DataError) as error:
        load_cifar10(cifar_root, download=False, verify=True, whitening="none")
    assert str(error.value).startswith(f"{folder / 'test_batch'}: md5 ")


def test_pickle_batches_are_described_in_full_and_a_short_label_list_is_named(cifar_root):
    import pickle

    folder = cifar_root / "cifar-10-batches-py"
    data = load_cifar10(cifar_root, download=False, verify=False, whitening="none")
    assert data.description == {
        "name": "CIFAR-10",
        "source": "pickle batches",
        "path": str(folder),
        "lossless": True,
        "order": "original",
        "label": "CIFAR-10",
    }
    batch = {b"data": np.zeros((3, 3072), dtype=np.uint8), b"labels": [1, 2]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError) as error:
        load_cifar10(cifar_root, download=False, verify=False, whitening="none")
    assert str(error.value) == f"{folder / 'test_batch'}: 3 images but 2 labels"


class _Payload:
    """What a crafted file would make pickle call: here it only leaves a mark."""

    def __reduce__(self):
        return (Path.touch, (Path(os.environ["ADAMREPRO_TEST_MARK"]),))


def test_a_crafted_pickle_batch_is_refused_not_run(tmp_path, monkeypatch):
    from adamrepro.data.cifar import read_batch

    mark = tmp_path / "ran"
    monkeypatch.setenv("ADAMREPRO_TEST_MARK", str(mark))
    crafted = tmp_path / "data_batch_1"
    crafted.write_bytes(pickle.dumps({b"data": _Payload(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError) as error:
        read_batch(crafted, verify=False)
    assert str(error.value).startswith(f"{crafted} is not a CIFAR-10 pickle batch (")
    assert "refused to load " in str(error.value) and not mark.exists()


def test_a_crafted_checkpoint_is_refused_not_run(tmp_path, monkeypatch):
    import torch

    from adamrepro.checkpoint import CHECKPOINT_NAME, load_checkpoint

    mark = tmp_path / "ran"
    monkeypatch.setenv("ADAMREPRO_TEST_MARK", str(mark))
    torch.save({"model": _Payload()}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(DataError) as error:
        load_checkpoint(tmp_path, torch.device("cpu"))
    assert str(error.value).startswith(f"{tmp_path / CHECKPOINT_NAME} cannot be read (")
    assert not mark.exists()
