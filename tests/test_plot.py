"""Selection and figure drawing from hand-made records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adamrepro.figures.plot import EXPERIMENTS, make_figure, paper_rmse
from adamrepro.records import FORMAT, save_record


def record(
    label: str, stepsizes: list[float], costs: list[list[float]], seeds=(0,), diverged=None
) -> dict:
    members = [
        {"name": "adam", "label": label, "stepsize": s, "seed": seed}
        for s in stepsizes
        for seed in seeds
    ]
    curves = [
        {
            "member": k,
            "epoch": e + 1,
            "train_cost": c,
            "train_cost_full": c,
            "test_loss": c,
            "test_accuracy": 0.9,
            "wall_time_s": 1.0,
        }
        for k, member_costs in enumerate(costs)
        for e, c in enumerate(member_costs)
    ]
    return {
        "format": FORMAT,
        "status": "completed",
        "config": {"trainer": {"epochs": 3}},
        "members": members,
        "curves": curves,
        "diverged": diverged or {},
        "wall_time_s": 3.0,
        "device": {"type": "cpu", "name": "x"},
        "threads": 1,
        "versions": {"torch": "t"},
        "started": "2026",
    }


def test_paper_rmse_interpolates_our_curve_at_the_papers_points():
    ours = pd.DataFrame({"x": [0, 1, 2], "train_cost": [1.0, 0.5, 0.3]})
    paper = pd.DataFrame({"x": [0.5, 2.0, 9.0], "y": [0.75, 0.4, 0.1], "outside_axes": [0, 0, 0]})
    assert paper_rmse(ours, paper) == pytest.approx(math.sqrt((0 + 0.01) / 2))


def test_selection_takes_the_lowest_mean_final_cost_and_skips_diverged(tmp_path: Path):
    # Adam: stepsize 0.1 ends lowest on seed 0 but diverged on seed 1; 0.01 wins.
    save_record(
        record(
            "Adam",
            [0.01, 0.1],
            [[0.5, 0.4, 0.3], [0.5, 0.4, 0.3], [0.4, 0.2, 0.1], [0.4, float("nan"), float("nan")]],
            seeds=(0, 1),
            diverged={"3": 500},
        ),
        tmp_path / "runs" / "adam",
    )
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


def grid_record(
    label: str,
    settings: list[dict],
    seeds: tuple[int, ...],
    epochs: int,
    cost,
    data: str = "MNIST",
    status: str = "completed",
) -> dict:
    """A record whose member k (settings in order, seeds fastest) has cost(k, epoch) as its
    training cost, and other columns that differ from it, each in its own way."""
    members = [
        {"name": "adam", "label": label, **s, "seed": seed} for s in settings for seed in seeds
    ]
    curves = [
        {
            "member": k,
            "epoch": e,
            "train_cost": cost(k, e),
            "train_cost_full": cost(k, e) - 0.01,
            "test_loss": cost(k, e) + 0.05,
            "test_accuracy": 0.8 + e / 100 + k / 1000,
            "wall_time_s": 10.0 * e + k,
        }
        for k in range(len(members))
        for e in range(1, epochs + 1)
    ]
    return {
        "format": FORMAT,
        "status": status,
        "config": {"trainer": {"epochs": epochs}},
        "members": members,
        "curves": curves,
        "diverged": {},
        "wall_time_s": 100.03 * len(members),
        "device": {"type": "cpu", "name": "EPYC"},
        "threads": 2,
        "versions": {"torch": "2.x"},
        "started": f"2026-01-0{len(members)}",
        "code": {"commit": "abc", "branch": "main"},
        "data": {"label": data, "lossless": data == "MNIST"},
    }


def distance_to_paper(xs: list[float], ys: list[float], curve: str, figure: str) -> float:
    """The RMS distance the docstring promises, computed here from the paper's CSV: our curve
    interpolated at the paper's points inside the axes, up to our last x."""
    paper = pd.read_csv(EXPERIMENTS / figure / "paper_curves.csv")
    points = paper[(paper["curve"] == curve) & (paper["outside_axes"] == 0)]
    points = points[points["x"] <= max(xs)]
    if points.empty:
        return math.inf
    ours = np.interp(points["x"], xs, ys)
    return float(np.sqrt(np.mean((ours - points["y"]) ** 2)))


def test_every_table_and_line_of_a_figure_follows_from_its_records(
    tmp_path: Path, capsys, drawn_axes
):
    runs, out = tmp_path / "runs", tmp_path / "out"
    epochs = 10

    def adam(k: int, e: int) -> float:  # members 0, 1: stepsize 1e-3; 2, 3: 1e-2 (ends lowest)
        return [0.6, 0.62, 0.5, 0.54][k] / math.sqrt(e) + [0.2, 0.2, 0.1, 0.1][k]

    save_record(
        grid_record("Adam", [{"stepsize": 1e-3}, {"stepsize": 1e-2}], (0, 1), epochs, adam),
        runs / "adam",
    )
    diverging = grid_record(
        "AdaGrad",
        [{"stepsize": 0.1}, {"stepsize": 1.0}],
        (0,),
        epochs,
        lambda k, e: 0.7 - 0.01 * e if k == 0 else 0.1,
    )
    for row in diverging["curves"]:
        if row["member"] == 1 and row["epoch"] >= 4:
            row["train_cost"] = math.nan
    diverging["diverged"] = {"1": 40}
    save_record(diverging, runs / "adagrad")
    save_record(
        grid_record(
            "AdaGrad-nodecay",
            [{"stepsize": 0.01}, {"stepsize": 0.1}],
            (0,),
            epochs,
            lambda k, e: [0.9, 0.67][k] - 0.001 * e,
        ),
        runs / "nodecay",
    )
    save_record(
        grid_record("RMSProp", [{"stepsize": 0.1}], (0,), epochs, lambda k, e: 0.01),
        runs / "other_label",
    )
    save_record(
        grid_record("Adam", [{"stepsize": 0.1}], (0,), 4, lambda k, e: 0.01, status="interrupted"),
        runs / "stopped",
    )
    (runs / "half_written").mkdir()
    (runs / "half_written" / "record.json").write_text('{"format": 1, "curves": [')

    best = make_figure("fig1_mnist_logreg", [str(runs)], out, note="a note")

    assert capsys.readouterr().err == (
        f"left out {runs / 'stopped'}: interrupted after 4 of 4 epochs\n"
        f"left out {runs / 'half_written'}: its record.json cannot be read (half-written or "
        "damaged)\n"
    )
    xs = list(range(epochs))  # pass k+1 drawn at x = k
    mean = {
        s: [sum(adam(k, e) for k in ks) / 2 for e in range(1, epochs + 1)]
        for s, ks in ((1e-3, (0, 1)), (1e-2, (2, 3)))
    }
    grid = pd.read_csv(out / "grid.csv")
    assert grid.columns.tolist() == [
        "curve",
        "label",
        "name",
        "stepsize",
        "trainer.epochs",
        "seeds",
        "epochs",
        "final_cost",
        "diverged_seeds",
        "paper_rmse",
        "run",
    ]
    rows = {(r.label, r.stepsize): r for r in grid.itertuples()}
    assert sorted(rows) == [
        ("AdaGrad", 0.1),
        ("AdaGrad", 1.0),
        ("AdaGrad-nodecay", 0.01),
        ("AdaGrad-nodecay", 0.1),
        ("Adam", 0.001),
        ("Adam", 0.01),
    ]
    for s in (1e-3, 1e-2):
        row = rows["Adam", s]
        assert (row.curve, row.seeds, row.epochs, row.diverged_seeds) == ("Adam", 2, 10, 0)
        assert row.final_cost == pytest.approx(mean[s][-1], rel=1e-5)
        assert row.paper_rmse == pytest.approx(
            distance_to_paper(xs, mean[s], "Adam", "fig1_mnist_logreg"), rel=1e-5
        )
        assert row.run == str(runs / "adam")
    assert math.isinf(rows["AdaGrad", 1.0].final_cost) and rows["AdaGrad", 1.0].diverged_seeds == 1
    assert math.isinf(rows["AdaGrad", 1.0].paper_rmse)  # a curve with NaN has no distance
    assert rows["AdaGrad", 0.1].final_cost == pytest.approx(0.6)
    assert rows["AdaGrad-nodecay", 0.1].curve == "AdaGrad"  # compared with the paper's AdaGrad
    selected = pd.read_csv(out / "selected.csv")
    assert list(zip(selected["curve"], selected["stepsize"], strict=True)) == [
        ("AdaGrad", 0.1),
        ("Adam", 0.01),
    ]
    chosen = grid.set_index(["label", "stepsize"]).loc[[("AdaGrad", 0.1), ("Adam", 0.01)]]
    assert selected.equals(chosen.reset_index()[selected.columns])
    assert best["stepsize"].tolist() == [0.1, 0.01]

    curves = pd.read_csv(out / "curves.csv")
    assert curves.columns.tolist() == [
        "curve",
        "epoch",
        "train_cost",
        "train_cost_min",
        "train_cost_max",
        "seeds",
        "train_cost_full",
        "test_loss",
        "test_accuracy",
        "wall_time_s",
    ]
    ours = curves[curves["curve"] == "Adam"]
    assert ours["epoch"].tolist() == xs and ours["seeds"].tolist() == [2] * epochs
    assert ours["train_cost"].tolist() == pytest.approx(mean[1e-2], rel=1e-5)
    assert ours["train_cost_min"].tolist() == pytest.approx(
        [adam(2, e) for e in range(1, 11)], rel=1e-5
    )
    assert ours["train_cost_max"].tolist() == pytest.approx(
        [adam(3, e) for e in range(1, 11)], rel=1e-5
    )
    assert ours["test_loss"].tolist() == pytest.approx([c + 0.05 for c in mean[1e-2]], rel=1e-5)
    assert ours["train_cost_full"].tolist() == pytest.approx(
        [c - 0.01 for c in mean[1e-2]], rel=1e-5
    )
    assert ours["test_accuracy"].tolist() == pytest.approx(
        [0.8 + e / 100 + 2.5 / 1000 for e in range(1, 11)], rel=1e-5
    )
    assert ours["wall_time_s"].tolist() == pytest.approx([10.0 * e + 2.5 for e in range(1, 11)])

    figure = drawn_axes[str(out / "figure.png")]
    assert figure["texts"] == ["a note | data: MNIST"]
    (axes,) = figure["axes"]
    left, bottom, width, height = axes["position"]
    assert bottom > 0.04 and height > 0.6 and width > 0.6  # the axes fill the figure above the note
    assert axes["title"] == "MNIST Logistic Regression"
    assert (axes["xlabel"], axes["ylabel"]) == ("iterations over entire dataset", "training cost")
    assert axes["xlim"] == (0, 45) and axes["ylim"] == (0.2, 0.7) and axes["yscale"] == "linear"
    closest = min(
        (0.01, 0.1),
        key=lambda s: distance_to_paper(
            xs,
            [[0.9, 0.67][s == 0.1] - 0.001 * e for e in range(1, 11)],
            "AdaGrad",
            "fig1_mnist_logreg",
        ),
    )
    extra = f"AdaGrad-nodecay, stepsize {closest:.3g} (closest to paper)"
    assert axes["legend"] == [
        "AdaGrad",
        "AdaGrad (paper)",
        "SGDNesterov (paper)",
        "Adam",
        "Adam (paper)",
        extra,
    ]
    paper = pd.read_csv(EXPERIMENTS / "fig1_mnist_logreg" / "paper_curves.csv")
    colours = {}
    for name in ("AdaGrad", "SGDNesterov", "Adam"):
        x, y, colour, style = axes["lines"][f"{name} (paper)"]
        theirs = paper[paper["curve"] == name]
        assert x.tolist() == theirs["x"].tolist() and y.tolist() == theirs["y"].tolist()
        assert style == "--"
        colours[name] = colour
    assert len(set(colours.values())) == 3
    x, y, colour, style = axes["lines"]["Adam"]
    assert x.tolist() == xs and y.tolist() == pytest.approx(mean[1e-2], rel=1e-5)
    assert (colour, style) == (colours["Adam"], "-")
    assert axes["lines"]["AdaGrad"][2:] == (colours["AdaGrad"], "-")
    x, y, colour, style = axes["lines"][extra]
    assert y.tolist() == pytest.approx(
        [[0.9, 0.67][closest == 0.1] - 0.001 * e for e in range(1, 11)]
    )
    assert style == ":" and colour not in colours.values()
    # the band of the two seeds, for Adam only (AdaGrad has one seed)
    ((colour, low, high),) = axes["bands"]
    assert colour == colours["Adam"]
    assert (low, high) == pytest.approx((adam(2, 10), adam(3, 1)), rel=1e-6)

    sources = json.loads((out / "sources.json").read_text())
    assert sources == {
        "runs": 4,
        "members": 9,
        "wall_time_s": 900.3,  # 100.03 s a member, to 0.1 s
        "status": ["completed"],
        "devices": ["cpu: EPYC"],
        "threads": [2],
        "versions": ['{"torch": "2.x"}'],
        "started": "2026-01-01",
        "code": ['{"branch": "main", "commit": "abc"}'],
        "data": ["MNIST"],
        "lossless": True,
        "left_out": [
            {"run": str(runs / "stopped"), "why": "interrupted after 4 of 4 epochs"},
            {
                "run": str(runs / "half_written"),
                "why": "its record.json cannot be read (half-written or damaged)",
            },
        ],
    }


def test_a_figure_at_the_passes_end_with_its_wall_clock_panel(tmp_path: Path, drawn_axes):
    """Figure 2 (b)'s spec: the full-set cost after k passes drawn at x = k (offset 0), the
    paper's point Adam x = 0 left out of the distance, and the wall-clock figure in units of
    Adam's time per pass: from each run's own times, or from times measured side by side."""
    from adamrepro.figures.plot import figure_spec, walltime_figure

    runs, out = tmp_path / "runs", tmp_path / "out"
    for label, slow in (("Adam", 1.0), ("SFO", 3.0)):
        record = grid_record(label, [{"stepsize": 0.01}], (0,), 4, lambda k, e: 1.0 / (1 + e))
        for row in record["curves"]:
            row["wall_time_s"] = 6.0 * slow * row["epoch"]
        record["curves"].insert(
            0,
            {
                **record["curves"][0],
                "epoch": 0,
                "train_cost": math.nan,
                "train_cost_full": 2.5,
                "wall_time_s": 0.0,
            },
        )
        save_record(record, runs / label)
    best = make_figure(
        "fig2b_mnist_mlp_deterministic", [str(runs)], out, xlim=(0, 4), ylim=(0.1, 3.0)
    )
    full = [2.5] + [1.0 / (1 + e) - 0.01 for e in range(1, 5)]
    paper = pd.read_csv(EXPERIMENTS / "fig2b_mnist_mlp_deterministic" / "paper_curves.csv")
    adam = paper[
        (paper["curve"] == "Adam")
        & (paper["outside_axes"] == 0)
        & (paper["x"] > 0)
        & (paper["x"] <= 4)
    ]
    expected = np.sqrt(np.mean((np.interp(adam["x"], range(5), full) - adam["y"]) ** 2))
    assert best.set_index("curve").loc["Adam", "paper_rmse"] == pytest.approx(expected)
    axes = drawn_axes[str(out / "figure.png")]["axes"][0]
    assert axes["xlim"] == (0, 4) and axes["ylim"] == (0.1, 3.0) and axes["yscale"] == "log"
    x, y, *_ = axes["lines"]["Adam"]
    assert x.tolist() == [0, 1, 2, 3, 4] and y.tolist() == pytest.approx(full)
    wall = drawn_axes[str(out / "figure_walltime.png")]
    (axes,) = wall["axes"]
    assert axes["xlabel"] == "normalized walltime" and axes["xlim"] == (0, 25)
    assert axes["lines"]["Adam"][0].tolist() == pytest.approx([0, 1, 2, 3, 4])
    assert axes["lines"]["SFO"][0].tolist() == pytest.approx([0, 3, 6, 9, 12])
    assert wall["texts"][0].startswith("time unit: Adam's 6.0 s per pass, each run's own time | ")
    table = pd.read_csv(out / "curves_walltime.csv")
    assert table.columns[0] == "curve"  # no index column
    sfo = table.loc[table["curve"] == "SFO", "walltime"]
    assert sfo.tolist() == pytest.approx([0, 3, 6, 9, 12])

    spec = figure_spec("fig2b_mnist_mlp_deterministic")
    curves = {
        name: pd.read_csv(out / "curves.csv").query("curve == @name") for name in ("Adam", "SFO")
    }
    (tmp_path / "timed").mkdir()
    walltime_figure(
        spec, curves, tmp_path / "timed", "n", seconds_per_pass={"Adam": 2.0, "SFO": 10.0}
    )
    timed = drawn_axes[str(tmp_path / "timed" / "figure_walltime.png")]
    assert timed["axes"][0]["position"][3] > 0.6
    assert timed["axes"][0]["lines"]["SFO"][0].tolist() == pytest.approx([0, 5, 10, 15, 20])
    assert timed["texts"] == [
        "time unit: Adam's 2.0 s per pass, passes timed side by side (Adam 2.0 s, SFO 10.0 s) | n"
    ]


def test_a_figure_without_its_unit_curve_has_no_wall_clock_panel(tmp_path: Path, capsys):
    from adamrepro.figures.plot import figure_spec, walltime_figure

    spec = figure_spec("fig2b_mnist_mlp_deterministic")
    walltime_figure(spec, {"SFO": pd.DataFrame()}, tmp_path, "")
    assert capsys.readouterr().err == "no Adam curve: no wall-clock figure\n"
    assert list(tmp_path.iterdir()) == []


def test_what_cannot_be_drawn_is_one_clear_error(tmp_path: Path):
    from adamrepro.figures.plot import figure_spec

    with pytest.raises(FileNotFoundError) as error:
        figure_spec("fig9")
    known = sorted(p.parent.name for p in EXPERIMENTS.glob("*/figure.yaml"))
    assert str(error.value) == f"no figure 'fig9' (known: {', '.join(known)})"
    assert "fig1_mnist_logreg" in known and "toy_bowl" in known
    with pytest.raises(FileNotFoundError) as error:
        make_figure("fig1_mnist_logreg", [str(tmp_path / "a"), str(tmp_path / "b")], tmp_path)
    assert str(error.value) == f"no record.json found under {tmp_path / 'a'}, {tmp_path / 'b'}"
    runs = tmp_path / "runs"
    for k in range(4):
        failed = {**record("Adam", [0.1], []), "status": "failed", "reason": f"reason {k}"}
        save_record(failed, runs / f"r{k}")
    with pytest.raises(FileNotFoundError) as error:
        make_figure("fig1_mnist_logreg", [str(runs)], tmp_path / "out")
    assert str(error.value) == (
        f"no completed run under {runs} ({runs / 'r0'}: failed after 0 of 3 epochs: reason 0; "
        f"{runs / 'r1'}: failed after 0 of 3 epochs: reason 1; {runs / 'r2'}: failed after 0 of "
        "3 epochs: reason 2)"
    )
    save_record(record("RMSProp", [0.01], [[0.5, 0.4, 0.3]]), runs / "x")
    with pytest.raises(FileNotFoundError) as error:
        make_figure("fig1_mnist_logreg", [str(runs)], tmp_path / "out")
    assert str(error.value) == (
        "no run has a label that figure fig1_mnist_logreg draws "
        "(AdaGrad, SGDNesterov, Adam, AdaGrad-nodecay); the runs have "
        "RMSProp"
    )


def test_the_command_prints_the_selection_and_what_it_wrote(tmp_path: Path, capsys):
    from adamrepro.figures.plot import main

    save_record(record("Adam", [0.01, 0.1], [[0.5, 0.4, 0.3], [0.5, 0.4, 0.2]]), tmp_path / "a")
    main(["fig1_mnist_logreg", "--runs", str(tmp_path / "a"), "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["curve", "stepsize", "seeds", "epochs", "final_cost", "paper_rmse"]
    assert lines[1].split()[:5] == ["Adam", "0.1", "1", "3", "0.2"]
    distance = distance_to_paper([0, 1, 2], [0.5, 0.4, 0.2], "Adam", "fig1_mnist_logreg")
    assert float(lines[1].split()[5]) == pytest.approx(distance, rel=1e-4)
    assert lines[2] == (
        f"wrote {tmp_path / 'out'}/figure.png, curves.csv, selected.csv, grid.csv, sources.json"
    )
    main(
        [
            "fig1_mnist_logreg",
            "--runs",
            str(tmp_path / "a"),
            "--out",
            str(tmp_path / "o2"),
            "--epochs",
            "3",
            "--xlim",
            "0",
            "2",
            "--ylim",
            "0.1",
            "0.6",
            "--note",
            "short",
        ]
    )
    assert (tmp_path / "o2" / "selected.csv").is_file()
    with pytest.raises(SystemExit) as exit_:
        main(["nofigure", "--runs", str(tmp_path / "a"), "--out", str(tmp_path / "o3")])
    assert str(exit_.value.code).startswith("error: no figure 'nofigure' (known: fig1_imdb_bow")


def test_the_commands_help_names_every_option(capsys, monkeypatch):
    from adamrepro.figures.plot import main

    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(
        "usage: python -m adamrepro.figures.plot [-h] --runs RUNS [RUNS ...] --out OUT\n"
    )
    assert (
        text.split("positional arguments:\n")[1]
        == """\
  figure                a folder name under experiments/, e.g.
                        fig1_mnist_logreg

options:
  -h, --help            show this help message and exit
  --runs RUNS [RUNS ...]
                        run folders or record files
  --out OUT             where to write the results
  --note NOTE           a line printed under the figure
  --xlim LOW HIGH       x axis limits, not the paper's (a shortened run)
  --ylim LOW HIGH       y axis limits, not the paper's
  --epochs EPOCHS       the runs' expected length (default: the most that a
                        completed run has); other runs are left out
"""
    )


def test_the_command_draws_its_limits_and_shows_momentum(tmp_path: Path, capsys, drawn_axes):
    from adamrepro.figures.plot import main

    sgd = record("SGDNesterov", [0.01], [[0.5, 0.4, 0.3]])
    sgd["members"][0]["momentum"] = 0.9
    save_record(sgd, tmp_path / "runs" / "sgd")
    main(
        [
            "fig1_mnist_logreg",
            "--runs",
            str(tmp_path / "runs"),
            "--out",
            str(tmp_path / "out"),
            "--xlim",
            "0",
            "2",
            "--ylim",
            "0.1",
            "0.6",
            "--note",
            "short",
        ]
    )
    axes = drawn_axes[str(tmp_path / "out" / "figure.png")]["axes"][0]
    assert axes["xlim"] == (0.0, 2.0) and axes["ylim"] == (0.1, 0.6)
    assert all(isinstance(v, float) for v in (*axes["xlim"], *axes["ylim"]))
    assert drawn_axes[str(tmp_path / "out" / "figure.png")]["texts"] == [
        "short | data: DATA NOT RECORDED"
    ]  # a record without its data: the config names none
    header, row, _ = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "curve",
        "stepsize",
        "momentum",
        "seeds",
        "epochs",
        "final_cost",
        "paper_rmse",
    ]
    assert row.split()[:6] == ["SGDNesterov", "0.01", "0.9", "1", "3", "0.3"]


def test_a_figure_is_840_by_660_pixels_with_its_note_small_grey_and_wrapped(
    tmp_path: Path, drawn_axes
):
    """5.6 x 4.4 inches at 150 dpi; the note in 5.5-point grey (0.3) text that wraps; the seed
    band drawn without an edge. Without a note the data alone are named; two data sets both."""
    from PIL import Image

    runs = tmp_path / "runs"
    save_record(
        grid_record("Adam", [{"stepsize": 1e-3}], (0, 1), 4, lambda k, e: 0.5 + 0.1 * k - 0.01 * e),
        runs / "adam",
    )
    make_figure("fig1_mnist_logreg", [str(runs)], tmp_path / "noted", note="a note")
    figure = drawn_axes[str(tmp_path / "noted" / "figure.png")]
    assert Image.open(tmp_path / "noted" / "figure.png").size == (840, 660)
    assert figure["text_styles"] == [(5.5, "#4c4c4c", True)]  # grey 0.3
    assert figure["axes"][0]["band_edges"] == [0.0] and len(figure["axes"][0]["bands"]) == 1
    make_figure("fig1_mnist_logreg", [str(runs)], tmp_path / "plain")
    assert drawn_axes[str(tmp_path / "plain" / "figure.png")]["texts"] == ["data: MNIST"]
    save_record(
        grid_record(
            "AdaGrad", [{"stepsize": 1e-2}], (0,), 4, lambda k, e: 0.4, data="MNIST (a copy)"
        ),
        runs / "adagrad",
    )
    make_figure("fig1_mnist_logreg", [str(runs)], tmp_path / "both")
    assert drawn_axes[str(tmp_path / "both" / "figure.png")]["texts"] == [
        "data: MNIST; MNIST (a copy)"
    ]


def test_a_figure_of_a_given_length_leaves_out_runs_of_another(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    save_record(
        grid_record("Adam", [{"stepsize": 1e-3}], (0,), 4, lambda k, e: 0.5), runs / "short"
    )
    save_record(
        grid_record("Adam", [{"stepsize": 1e-2}], (0,), 10, lambda k, e: 0.4), runs / "long"
    )
    best = make_figure("fig1_mnist_logreg", [str(runs)], tmp_path / "out", epochs=4)
    assert best["stepsize"].tolist() == [1e-3]
    assert capsys.readouterr().err == (
        f"left out {runs / 'long'}: completed, but with 10 epochs where 4 are expected\n"
    )
    assert make_figure("fig1_mnist_logreg", [str(runs)], tmp_path / "out")["stepsize"].tolist() == [
        1e-2
    ]


def test_the_vhat_figure_draws_of_two_runs_of_a_label_the_one_that_ends_lowest(tmp_path: Path):
    """A curve trained in units (Figure 3's Adam at 3e-4 and at 1e-3): the v-hat figure draws
    one line per label, from the run whose selected member has the lower final cost."""
    from adamrepro.figures.vhat import moment_table

    spec = {"labels": ["Adam"], "parameters": ["output.weight"]}
    used = []
    for name, stepsizes, costs, median in (
        ("low", [1e-3], [[2.0, 1.0, 0.1]], 1e-3),
        ("high", [3e-4, 1e-4], [[2.0, 1.0, 0.5], [2.0, 1.5, math.nan]], 1e-4),
    ):
        run = record("Adam", stepsizes, costs)
        run["moment_stats"] = [
            {"step": 10 * e, "epoch": e, "parameter": p, "member": k, "median": median / e}
            for e in (1, 2, 3)
            for k in range(len(stepsizes))
            for p in ("output.weight", "convs.0.weight")
        ]
        save_record(run, tmp_path / name)
        used.append((tmp_path / name / "record.json", run))
    for order in (used, used[::-1]):
        table = moment_table(spec, order)
        assert set(table["run"]) == {str(tmp_path / "low")}
        assert table["stepsize"].eq(1e-3).all() and table["parameter"].eq("output.weight").all()
        assert table["median"].tolist() == pytest.approx([1e-3, 5e-4, 1e-3 / 3])
    # within a run, the member with the lower final cost; a diverged member never
    table = moment_table(spec, used[1:])
    assert table["stepsize"].eq(3e-4).all() and len(table) == 3
