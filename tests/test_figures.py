"""Short runs of Figures 2 and 4 on generated MNIST, each drawn as its figure: the whole path
of `make reproduce-mlp` and `make reproduce-bias-correction`, small."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from adamrepro.figures.plot import EXPERIMENTS, make_figure
from adamrepro.figures.plot import main as plot_main
from adamrepro.training import train
from conftest import hydra_config, line


def run(mnist_root, out, *overrides: str) -> dict:
    cfg = hydra_config(
        f"data.root={mnist_root}",
        "data.verify=false",
        "data.download=false",
        "trainer.batch_size=64",
        *overrides,
    )
    return train(cfg, out)


def selected_member_costs(record: dict, stepsize: float, column: str) -> list[float]:
    """The column of the member with `stepsize`, epoch by epoch, straight from its record."""
    k = [m["stepsize"] for m in record["members"]].index(stepsize)
    return [r[column] for r in record["curves"] if r["member"] == k]


def test_figure_2a_and_2b_from_short_runs(mnist_root, tmp_path, drawn):
    small = ["model.hidden=[40,40]", "trainer.epochs=3"]
    records = {}
    for optimizer in ("adagrad", "rmsprop", "nesterov", "adadelta", "adam"):
        records[optimizer] = run(
            mnist_root,
            tmp_path / "dropout" / optimizer,
            "experiment=mnist_mlp",
            "sweep=fig2_mnist_mlp_cpu",
            f"optimizer={optimizer}",
            *small,
        )
        assert records[optimizer]["status"] == "completed"
        assert len(records[optimizer]["members"]) == 2
    best = make_figure("fig2a_mnist_mlp", [str(tmp_path / "dropout")], tmp_path / "fig2a")
    assert sorted(best["curve"]) == ["AdaDelta", "AdaGrad", "Adam", "RMSProp", "SGDNesterov"]
    figure = drawn[str(tmp_path / "fig2a" / "figure.png")]
    paper = pd.read_csv(EXPERIMENTS / "fig2a_mnist_mlp" / "paper_curves.csv")
    for optimizer, name in (("adam", "Adam"), ("adagrad", "AdaGrad"), ("rmsprop", "RMSProp")):
        x, y = line(figure, name)
        stepsize = best.set_index("curve").loc[name, "stepsize"]
        # what is drawn: the selected member's mean minibatch cost, pass k+1 at x = k
        assert x.tolist() == [0, 1, 2]
        assert y.tolist() == pytest.approx(
            selected_member_costs(records[optimizer], stepsize, "train_cost")
        )
        assert y[-1] < 0.8 * y[0]  # it learns: an optimizer that never updates stays flat
        px, py = line(figure, f"{name} (paper)")
        theirs = paper[paper["curve"] == name]
        assert px.tolist() == theirs["x"].tolist() and py.tolist() == theirs["y"].tolist()

    record = run(
        mnist_root,
        tmp_path / "deterministic",
        "experiment=mnist_mlp_deterministic",
        "sweep=fig2_mnist_mlp_deterministic",
        "optimizer=adam",
        "trainer.train_eval_subset=100",
        *small,
    )
    assert record["config"]["model"]["input_dropout"] == 0.0
    assert len(record["members"]) == 3
    assert record["curves"][0]["epoch"] == 0  # evaluated before the first step
    best = make_figure(
        "fig2b_mnist_mlp_deterministic", [str(tmp_path / "deterministic")], tmp_path / "fig2b"
    )
    assert best["curve"].tolist() == ["Adam"]  # no SFO run here: the paper's curve only
    x, y = line(drawn[str(tmp_path / "fig2b" / "figure.png")], "Adam")
    stepsize = best["stepsize"].iloc[0]
    ours = selected_member_costs(record, stepsize, "train_cost_full")
    epochs = sorted({r["epoch"] for r in record["curves"]})
    assert x.tolist() == epochs  # x = k: the full-set cost after k passes (0: before training)
    assert y.tolist() == pytest.approx(ours)
    assert y[-1] < y[0]


def test_figure_4_from_a_short_run_of_the_whole_grid_drawn_by_the_command(
    mnist_root, tmp_path, drawn, drawn_axes, capsys
):
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
        costs = (
            pd.DataFrame(record["curves"])
            .pivot(index="member", columns="epoch", values="train_cost")
            .dropna()
        )
        assert (costs[2] < costs[1]).mean() > 0.8  # most members learn (not all are stable)
        assert (costs[2] / costs[1]).min() < 0.9  # the fast ones by more than 10%
    out = tmp_path / "fig4"
    capsys.readouterr()
    plot_main(["fig4_vae_bias_correction", "--runs", str(tmp_path / "runs"), "--out", str(out)])
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"wrote {out}/figure.png, markers.csv, compare.csv, sources.json"
    assert drawn_axes[str(out / "figure.png")]["texts"] == ["data: MNIST"]  # the note
    comparison = pd.read_csv(out / "compare.csv")
    best = comparison.groupby(["epochs", "beta1", "beta2", "bias_correction"])[
        ["paper_loss", "our_loss"]
    ].min()
    table = best.to_string().splitlines()  # the best loss of each panel
    assert len(printed) == len(table) + 1 and printed[0].split() == ["paper_loss", "our_loss"]
    shown = [float(v) for row in printed[2:-1] for v in row.split()[-2:]]
    assert shown == pytest.approx(best.to_numpy().ravel().tolist(), rel=1e-4, nan_ok=True)
    markers = pd.read_csv(out / "markers.csv")
    assert len(markers) == 108  # one block: the runs are shorter than its 10 epochs
    assert markers["epoch"].eq(2).all() and markers["block_epochs"].eq(10).all()
    assert markers["bias_correction"].sum() == 54
    # the paper's 6 stepsizes x 2 x 3 panels x 2 (bias correction), in the one block run
    assert len(comparison) == 72 and comparison["paper_loss"].notna().sum() > 20
    # an untrained-for-long VAE sits far above the chart: drawn off it, not dropped
    assert markers["off_chart"].all()
    record_cost = {
        (m["stepsize"], m["beta1"], m["beta2"], m["bias_correction"]): row["train_cost"]
        for bc in ("true", "false")
        for rec in [json.loads((tmp_path / "runs" / bc / "record.json").read_text())]
        for row in rec["curves"]
        if row["epoch"] == 2
        for m in [rec["members"][row["member"]]]
    }
    for r in markers.itertuples():  # each marker is its member's mean cost over epoch 2
        key = (r.stepsize, r.beta1, r.beta2, r.bias_correction)
        assert r.loss == pytest.approx(record_cost[key], rel=1e-5, nan_ok=True)
    figure = drawn[str(out / "figure.png")]
    off = [
        (x, y)
        for panel in figure
        for name, x, y in panel
        if len(y) and (y == y.max()).all() and name.startswith("_")
    ]
    assert sum(len(x) for x, _ in off) >= 108  # every member drawn, at the chart's top edge


def test_a_run_longer_than_a_block_reads_that_blocks_epoch(mnist_root, tmp_path):
    from adamrepro.figures.markers import marker_table
    from adamrepro.figures.plot import figure_spec
    from adamrepro.tables import load_records

    run(
        mnist_root,
        tmp_path / "run",
        "experiment=mnist_vae",
        "+grid.stepsize=[1e-3,1e-2]",
        "model.hidden=8",
        "model.latent=2",
        "trainer.epochs=3",
    )
    spec = figure_spec("fig4_vae_bias_correction")
    spec["epochs"] = [2, 10]
    table = load_records([tmp_path / "run"])
    markers = marker_table(table, spec)
    assert markers["epoch"].tolist() == [2, 2]  # block 10 is not reached: left out
    at_two = table[table["epoch"] == 2].sort_values("stepsize")["train_cost"].tolist()
    assert markers.sort_values("stepsize")["loss"].tolist() == pytest.approx(at_two)


def test_marker_agreement_compares_one_block_member_by_member(capsys):
    from adamrepro.figures.markers import agreement, main

    def table(losses: list[float], block: int = 10) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "block_epochs": block,
                "beta1": 0.9,
                "beta2": [0.99, 0.999, 0.9999, 0.9999],
                "bias_correction": [True, True, False, True],
                "stepsize": [1e-3, 1e-3, 1e-3, 3e-4],
                "loss": losses,
                "off_chart": [x > 140 for x in losses],
            }
        )

    ours = pd.concat([table([105.0, 107.5, 150.0, 110.0]), table([1.0] * 4, block=100)])
    reference = table([105.5, 105.5, 120.0, 110.0])
    result = agreement(ours, reference, 10)
    assert result["members"] == 4 and result["on_chart_in_both"] == 3
    assert result["median_abs_difference"] == pytest.approx(0.5)
    assert result["largest_abs_difference"] == pytest.approx(2.0)
    assert result["largest_at"] == {
        "beta1": 0.9,
        "beta2": 0.999,
        "bias_correction": True,
        "stepsize": 1e-3,
    }
    (only,) = result["on_chart_in_one_only"]
    assert only["beta2"] == 0.9999 and not only["bias_correction"] and only["loss"] == 150.0
    with pytest.raises(SystemExit, match="no such file"):
        main(["missing.csv", "missing.csv"])
