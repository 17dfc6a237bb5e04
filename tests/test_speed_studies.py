"""The two studies behind the CPU speed-ups: the curve check of bf16-mixed against 32-true
(`precision_check`) and the halving check (`halving_check`), on generated data, their tables
recomputed from the records they read."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from adamrepro.records import read_record
from adamrepro.studies import halving_check, precision_check
from adamrepro.training import train
from conftest import hydra_config

TINY = ["data.verify=false", "data.download=false", "trainer.batch_size=50"]


def test_the_precision_check_compares_each_seed_across_precisions(mnist_root: Path, tmp_path: Path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    precision_check.main(
        [
            "--data-root",
            str(mnist_root),
            "--runs",
            str(runs),
            "--out",
            str(out),
            "--only",
            "mlp_dropout",
            "--override",
            "model.hidden=[16,16]",
            "trainer.epochs=2",
            *TINY,
        ]
    )
    full, mixed = (read_record(runs / "mlp_dropout" / p) for p in ("32-true", "bf16-mixed"))
    assert full["config"]["precision"] == "32-true" and mixed["config"]["precision"] == (
        "bf16-mixed"
    )
    assert [m["seed"] for m in full["members"]] == [0, 1, 2]
    table = pd.read_csv(out / "precision.csv")
    assert list(table["epoch"]) == [1, 1, 2, 2]
    for _, row in table.iterrows():
        a = [r[row["column"]] for r in full["curves"] if r["epoch"] == row["epoch"]]
        b = [r[row["column"]] for r in mixed["curves"] if r["epoch"] == row["epoch"]]
        largest = max(abs(x - y) for x, y in zip(a, b, strict=True))
        assert row["largest_difference"] == pytest.approx(largest, rel=1e-5)
        assert row["seed_spread"] == pytest.approx(max(a) - min(a), rel=1e-5)
        assert row["inside"] == (row["largest_difference"] <= row["seed_spread"])
    text = (out / "precision.md").read_text()
    assert "| mlp_dropout | Figure 2 (a) |" in text and (out / "precision.png").is_file()
    verdict = "bf16-mixed allowed" if table["inside"].all() else "stays 32-true"
    assert f"- **mlp_dropout** (Figure 2 (a), MNIST): {verdict}" in text
    # complete runs are read back, not trained again
    pieces = len(full["pieces"])
    precision_check.main(
        [
            "--data-root",
            str(mnist_root),
            "--runs",
            str(runs),
            "--out",
            str(out),
            "--only",
            "mlp_dropout",
            "--override",
            "model.hidden=[16,16]",
            "trainer.epochs=2",
            *TINY,
        ]
    )
    assert len(read_record(runs / "mlp_dropout" / "32-true")["pieces"]) == pieces


def test_the_halving_check_finds_the_winner_by_the_rule_of_the_training_loop(
    mnist_root: Path, tmp_path: Path
):
    cfg = hydra_config(
        "experiment=mnist_logreg",
        f"data.root={mnist_root}",
        *TINY,
        "optimizer=adam",
        "+grid.stepsize=[1e-4,1e-3,1e-2,1.0]",
        "sweep.seeds=[0,1]",
        "trainer.epochs=4",
    )
    record = train(cfg, tmp_path / "runs" / "adam")
    out = tmp_path / "results"
    halving_check.main(
        [
            "fig1_mnist_logreg",
            "--runs",
            str(tmp_path / "runs"),
            "--out",
            str(out),
            "--after",
            "1",
            "2",
            "4",
            "--keep",
            "1",
            "2",
        ]
    )
    table = pd.read_csv(out / "halving_fig1_mnist_logreg.csv")
    pairs = sorted(zip(table["after_epochs"], table["keep"], strict=True))
    assert pairs == [(1, 1), (1, 2), (2, 1), (2, 2)]

    def mean_cost(epoch: int) -> dict[float, float]:
        costs: dict[float, list[float]] = {}
        for row in record["curves"]:
            if row["epoch"] == epoch:
                stepsize = record["members"][row["member"]]["stepsize"]
                costs.setdefault(stepsize, []).append(row["train_cost"])
        return {s: sum(c) / 2 if all(map(math.isfinite, c)) else math.inf for s, c in costs.items()}

    final = mean_cost(4)
    winner = min(final, key=final.get)
    for _, row in table.iterrows():
        at = mean_cost(row["after_epochs"])
        ranked = sorted(at, key=at.get)
        assert row["winner_rank_at_E"] == ranked.index(winner) + 1
        assert row["winner_kept"] == (winner in ranked[: row["keep"]])
        e, k = row["after_epochs"], row["keep"]
        assert row["trained_share"] == pytest.approx((4 * e + k * (4 - e)) / 16)
    text = (out / "halving.md").read_text()
    assert "## fig1_mnist_logreg (4 epochs; 4 settings per curve)" in text
    assert "| 1 | 1 |" in text and "| 2 | 2 |" in text


def test_the_full_length_check_sets_the_halving_beside_the_settings_it_pruned(
    mnist_root: Path, tmp_path: Path, monkeypatch
):
    """A halved grid unit and units of one pruned setting and one outside the grid: each
    setting's rank at the halving epoch, what the halving did with it, and the lowest final
    cost over every unit that trained it to the end, written into halving.md."""
    out = tmp_path / "results"
    runs = out / "fig1_mnist_logreg" / "runs" / "toy"
    common = ("experiment=mnist_logreg", f"data.root={mnist_root}", *TINY, "optimizer=adam")
    grid = train(
        hydra_config(
            *common,
            "+grid.stepsize=[1e-4,1e-3,1e-2]",
            "+sweep.halving={after_epochs:1,keep:1}",
            "trainer.epochs=3",
        ),
        runs / "adam",
    )
    for name, stepsize in (("adam_next", "1e-3"), ("adam_outside", "3e-2")):
        train(
            hydra_config(*common, f"optimizer.stepsize={stepsize}", "trainer.epochs=3"), runs / name
        )

    def cost(record: dict, epoch: int) -> dict[float, float]:
        return {
            record["members"][r["member"]]["stepsize"]: r["train_cost"]
            for r in record["curves"]
            if r["epoch"] == epoch and r["train_cost"] == r["train_cost"]
        }

    at_1 = cost(grid, 1)
    ranked = sorted(at_1, key=at_1.get)
    table = halving_check.full_length("fig1_mnist_logreg", runs).set_index("stepsize")
    assert list(table.index) == [1e-4, 1e-3, 1e-2, 3e-2]
    for stepsize in ranked:
        assert table.loc[stepsize, "rank"] == ranked.index(stepsize) + 1
        assert table.loc[stepsize, "cost_at_epoch_1"] == pytest.approx(at_1[stepsize])
        assert table.loc[stepsize, "halving"] == ("kept" if stepsize == ranked[0] else "pruned")
    assert table.loc[3e-2, "halving"] == "outside the grid"
    finals: dict[float, list[float]] = {}
    for record in (grid, *(read_record(runs / n) for n in ("adam_next", "adam_outside"))):
        for stepsize, final in cost(record, 3).items():  # pruned members have no epoch 3
            finals.setdefault(stepsize, []).append(final)
    for stepsize in table.index:
        expected = min(finals.get(stepsize, [math.inf]))
        assert table.loc[stepsize, "final_cost"] == pytest.approx(expected)
    best = min(finals, key=lambda s: min(finals[s]))
    assert table["best"].sum() == 1 and table.loc[best, "best"]
    monkeypatch.setattr(halving_check, "FULL_LENGTH", {"fig1_mnist_logreg": "toy"})
    text = halving_check.report(out)
    assert "## fig1_mnist_logreg at its full length (3 epochs)" in text
    assert f"| Adam | {ranked[0]:g} |  | kept | 1 |" in text
    if best == ranked[0]:
        assert "kept the full-length best on 1 of 1 curves." in text
    else:
        assert "kept the full-length best on 0 of 1 curves; it pruned the best of Adam." in text


def test_the_halving_check_of_a_figure_of_markers_ranks_each_panels_stepsizes(
    mnist_root: Path, tmp_path: Path, monkeypatch
):
    """Figure 4's check: one curve per block and bias correction, the winner the lowest loss
    at the block's epoch, the stepsizes ranked at epoch E with a diverged member last."""
    records = {}
    for corrected in (True, False):
        cfg = hydra_config(
            "experiment=mnist_vae",
            f"data.root={mnist_root}",
            *TINY,
            "model.hidden=16",
            "model.latent=4",
            "optimizer=adam",
            f"optimizer.bias_correction={str(corrected).lower()}",
            "+grid.stepsize=[1e-4,1e-3,1e-2,30.0]",  # 30: diverges in its first steps
            "trainer.epochs=4",
        )
        records[corrected] = train(cfg, tmp_path / "runs" / str(corrected))
    spec = halving_check.figure_spec("fig4_vae_bias_correction") | {"epochs": [2, 4]}
    monkeypatch.setattr(halving_check, "figure_spec", lambda name: spec)
    out = tmp_path / "results"
    halving_check.main(
        ["fig4_vae_bias_correction", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    )
    table = pd.read_csv(out / "halving_fig4_vae_bias_correction.csv")
    assert len(table) == 2 * 3 * (1 + 3)  # bias correction x k x (E = 1 in block 2; 1, 2, 3 in 4)
    for corrected, record in records.items():

        def loss(epoch: int, record=record) -> dict[float, float]:
            at = {m["stepsize"]: math.inf for m in record["members"]}  # no row: diverged
            for row in record["curves"]:
                if row["epoch"] == epoch and math.isfinite(row["train_cost"] or math.nan):
                    at[record["members"][row["member"]]["stepsize"]] = row["train_cost"]
            return at

        assert loss(4)[30.0] == math.inf
        for block in (2, 4):
            final = loss(block)
            winner = min(final, key=final.get)
            name = f"{block} epochs: beta1 0.9, beta2 0.999, " + (
                "corrected" if corrected else "uncorrected"
            )
            rows = table[table["curve"] == name]
            assert sorted(set(rows["after_epochs"])) == list(range(1, block))
            for _, row in rows.iterrows():
                at = loss(row["after_epochs"])
                ranked = sorted(at, key=at.get)
                assert row["settings"] == 4 and row["epochs"] == block
                assert row["winner_rank_at_E"] == ranked.index(winner) + 1
                assert row["winner_kept"] == (winner in ranked[: row["keep"]])
                e, k = row["after_epochs"], row["keep"]
                assert row["trained_share"] == pytest.approx((4 * e + k * (4 - e)) / 16)
    text = (out / "halving.md").read_text()
    assert "## fig4_vae_bias_correction (2 and 4 epochs; 4 settings per curve)" in text
