"""Selection and figure drawing from hand-made records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from adamrepro.plot import make_figure, paper_rmse
from adamrepro.records import FORMAT, save_record


def record(label: str, stepsizes: list[float], costs: list[list[float]], seeds=(0,),
           diverged=None) -> dict:  # fmt: skip
    members = [{"name": "adam", "label": label, "stepsize": s, "seed": seed}
               for s in stepsizes for seed in seeds]  # fmt: skip
    curves = [
        {"member": k, "epoch": e + 1, "train_cost": c, "train_cost_full": c, "test_loss": c,
         "test_accuracy": 0.9, "wall_time_s": 1.0}
        for k, member_costs in enumerate(costs) for e, c in enumerate(member_costs)
    ]  # fmt: skip
    return {"format": FORMAT, "status": "completed", "config": {"trainer": {"epochs": 3}},
            "members": members, "curves": curves, "diverged": diverged or {},
            "wall_time_s": 3.0, "device": {"type": "cpu", "name": "x"}, "threads": 1,
            "versions": {"torch": "t"}, "started": "2026"}  # fmt: skip


def test_paper_rmse_interpolates_our_curve_at_the_papers_points():
    ours = pd.DataFrame({"x": [0, 1, 2], "train_cost": [1.0, 0.5, 0.3]})
    paper = pd.DataFrame({"x": [0.5, 2.0, 9.0], "y": [0.75, 0.4, 0.1], "outside_axes": [0, 0, 0]})
    assert paper_rmse(ours, paper) == pytest.approx(math.sqrt((0 + 0.01) / 2))


def test_selection_takes_the_lowest_mean_final_cost_and_skips_diverged(tmp_path: Path):
    # Adam: stepsize 0.1 ends lowest on seed 0 but diverged on seed 1; 0.01 wins.
    save_record(record("Adam", [0.01, 0.1], [[0.5, 0.4, 0.3], [0.5, 0.4, 0.3],
                                             [0.4, 0.2, 0.1], [0.4, float("nan"), float("nan")]],
                       seeds=(0, 1), diverged={"3": 500}), tmp_path / "runs" / "adam")  # fmt: skip
    save_record(record("AdaGrad", [0.1], [[0.6, 0.5, 0.45]]), tmp_path / "runs" / "adagrad")
    best = make_figure("fig1_mnist_logreg", [str(tmp_path / "runs")], tmp_path / "out")
    chosen = dict(zip(best["curve"], best["stepsize"], strict=True))
    assert chosen == {"Adam": 0.01, "AdaGrad": 0.1}
    grid = pd.read_csv(tmp_path / "out" / "grid.csv")
    diverged = grid[(grid["curve"] == "Adam") & (grid["stepsize"] == 0.1)].iloc[0]
    assert diverged["diverged_seeds"] == 1 and math.isinf(diverged["final_cost"])
    curves = pd.read_csv(tmp_path / "out" / "curves.csv")
    adam = curves[curves["curve"] == "Adam"]
    assert adam["epoch"].tolist() == [0, 1, 2] and adam["train_cost"].tolist() == [0.5, 0.4, 0.3]
    assert adam["seeds"].tolist() == [2, 2, 2]
    assert (tmp_path / "out" / "figure.png").is_file()


def test_only_completed_runs_of_the_expected_length_enter_a_figure(tmp_path: Path):
    runs = tmp_path / "runs"
    save_record(record("Adam", [0.01], [[0.5, 0.4, 0.3]]), runs / "complete")
    # an interrupted run whose short curve ends lowest, and a complete but shorter run
    short = record("Adam", [0.1], [[0.2, 0.1]])
    save_record({**short, "status": "interrupted"}, runs / "interrupted")
    save_record(record("Adam", [0.3], [[0.2, 0.05]]), runs / "shorter")
    killed = {**record("AdaGrad", [0.1], [[0.6]]), "status": "running"}
    save_record(killed, runs / "killed")
    failed = {**record("AdaGrad", [0.1], []), "status": "failed", "reason": "stepsize must be >= 0"}
    save_record(failed, runs / "failed")
    best = make_figure("fig1_mnist_logreg", [str(runs)], tmp_path / "out")
    assert dict(zip(best["curve"], best["stepsize"], strict=True)) == {"Adam": 0.01}
    sources = json.loads((tmp_path / "out" / "sources.json").read_text())
    why = {Path(r["run"]).name: r["why"] for r in sources["left_out"]}
    assert why["interrupted"] == "interrupted after 2 of 3 epochs"
    assert why["shorter"] == "completed, but with 2 epochs where 3 are expected"
    assert why["killed"].startswith("running after 1 of 3 epochs (last written ")
    assert why["failed"] == "failed after 0 of 3 epochs: stepsize must be >= 0"
    assert sources["runs"] == 1 and sources["status"] == ["completed"]


def test_runs_with_no_label_of_the_figure_are_one_clear_error(tmp_path: Path):
    save_record(record("RMSProp", [0.01], [[0.5, 0.4, 0.3]]), tmp_path / "runs" / "a")
    with pytest.raises(FileNotFoundError, match="no run has a label that figure fig1_mnist_logreg"):
        make_figure("fig1_mnist_logreg", [str(tmp_path / "runs")], tmp_path / "out")
