"""Short runs of Figures 2 and 4 on generated MNIST, each drawn as its figure: the whole path
of `make reproduce-mlp` and `make reproduce-bias-correction`, small."""

from __future__ import annotations

import pandas as pd
import pytest

from adamrepro.plot import make_figure
from adamrepro.train import train
from conftest import hydra_config


def run(mnist_root, out, *overrides: str) -> dict:
    cfg = hydra_config(f"data.root={mnist_root}", "data.verify=false", "data.download=false",
                       "trainer.batch_size=64", *overrides)  # fmt: skip
    return train(cfg, out)


def test_figure_2a_and_2b_from_short_runs(mnist_root, tmp_path):
    small = ["model.hidden=[40,40]", "trainer.epochs=2"]
    for optimizer in ("adagrad", "rmsprop", "nesterov", "adadelta", "adam"):
        record = run(mnist_root, tmp_path / "dropout" / optimizer, "experiment=mnist_mlp",
                     "sweep=fig2_mnist_mlp_cpu", f"optimizer={optimizer}", *small)  # fmt: skip
        assert record["status"] == "completed" and len(record["members"]) == 2
    best = make_figure("fig2a_mnist_mlp", [str(tmp_path / "dropout")], tmp_path / "fig2a")
    assert sorted(best["curve"]) == ["AdaDelta", "AdaGrad", "Adam", "RMSProp", "SGDNesterov"]
    assert (tmp_path / "fig2a" / "figure.png").stat().st_size > 10_000
    curves = pd.read_csv(tmp_path / "fig2a" / "curves.csv")
    assert curves.groupby("curve")["epoch"].max().eq(1).all()  # passes 1, 2 drawn at x = 0, 1

    record = run(mnist_root, tmp_path / "deterministic", "experiment=mnist_mlp_deterministic",
                 "sweep=fig2_mnist_mlp_deterministic", "optimizer=adam", *small)  # fmt: skip
    assert record["config"]["model"]["input_dropout"] == 0.0
    assert len(record["members"]) == 5
    best = make_figure("fig2b_mnist_mlp_deterministic", [str(tmp_path / "deterministic")],
                       tmp_path / "fig2b")  # fmt: skip
    assert best["curve"].tolist() == ["Adam"]  # SFO: the paper's curve only
    assert (tmp_path / "fig2b" / "figure.png").stat().st_size > 10_000


def test_figure_4_from_a_short_run_of_the_whole_grid(mnist_root, tmp_path):
    for bias_correction in ("true", "false"):
        record = run(
            mnist_root,
            tmp_path / "runs" / bias_correction,
            "experiment=mnist_vae",
            "sweep=fig4_vae_bias_correction",
            "model.hidden=16",
            "model.latent=4",
            f"optimizer.bias_correction={bias_correction}",
            "trainer.epochs=2",
        )
        assert len(record["members"]) == 54
        evaluated = [r for r in record["curves"] if r["train_cost_full"] == r["train_cost_full"]]
        assert {r["epoch"] for r in evaluated} == {2}  # eval_every 10: only the last epoch
    out = tmp_path / "fig4"
    comparison = make_figure("fig4_vae_bias_correction", [str(tmp_path / "runs")], out)
    markers = pd.read_csv(out / "markers.csv")
    assert len(markers) == 108  # one block: the runs are shorter than its 10 epochs
    assert markers["epoch"].eq(2).all() and markers["block_epochs"].eq(10).all()
    assert markers["bias_correction"].sum() == 54
    # the paper's 6 stepsizes x 2 x 3 panels x 2 (bias correction), in the one block run
    assert len(comparison) == 72 and comparison["paper_loss"].notna().sum() > 20
    # an untrained-for-long VAE sits far above the chart: drawn off it, not dropped
    assert markers["off_chart"].all()
    assert (out / "figure.png").stat().st_size > 20_000


def test_a_run_longer_than_a_block_reads_that_blocks_epoch(mnist_root, tmp_path):
    from adamrepro.markers import marker_table
    from adamrepro.plot import figure_spec
    from adamrepro.records import load_records

    run(mnist_root, tmp_path / "run", "experiment=mnist_vae", "+grid.stepsize=[1e-3,1e-2]",
        "model.hidden=8", "model.latent=2", "trainer.epochs=3")  # fmt: skip
    spec = figure_spec("fig4_vae_bias_correction")
    spec["epochs"] = [2, 10]
    table = load_records([tmp_path / "run"])
    markers = marker_table(table, spec)
    assert markers["epoch"].tolist() == [2, 2]  # block 10 is not reached: left out
    at_two = table[table["epoch"] == 2].sort_values("stepsize")["train_cost"].tolist()
    assert markers.sort_values("stepsize")["loss"].tolist() == pytest.approx(at_two)
