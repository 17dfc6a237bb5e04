"""The SFO study (claims P5 and P6) on a generated MNIST and a small network: every part runs
through the real drivers, and the verdicts follow from the curves as the rules say."""

import math

import pandas as pd
import pytest

from adamrepro.studies.sfo_study import compare, dropout_verdict, linear_fit, log_interpolate


def test_every_part_runs_and_the_verdicts_follow_from_the_tables(mnist_root, tmp_path):
    from adamrepro.studies.sfo_study import main
    from adamrepro.training import compose_config, train

    small = ["data.verify=false", "data.download=false", "model.hidden=[16,16]"]
    train(
        compose_config(
            [
                "experiment=mnist_mlp_deterministic",
                f"data.root={mnist_root}",
                "experiment_name=t",
                *small,
                "sweep=fig2_mnist_mlp_deterministic",
                "trainer.epochs=3",
                "trainer.train_eval_subset=300",
                "trainer.progress=false",
            ]
        ),
        tmp_path / "adam",
    )
    out = tmp_path / "out"
    args = [
        "--data-root",
        str(mnist_root),
        "--adam-runs",
        str(tmp_path / "adam"),
        "--runs",
        str(tmp_path / "runs"),
        "--out",
        str(out),
        "--passes",
        "3",
        "--dropout-passes",
        "4",
        "--rounds",
        "1",
        "--subfunctions",
        "8",
        "--memory-rows",
        "240",
        "--override",
        *small,
        "trainer.train_eval_subset=300",
    ]
    main(args)
    timing = pd.read_csv(out / "sfo_timing.csv")
    assert sorted(timing["optimizer"]) == ["Adam", "SFO", "SFO"] and (timing["seconds"] > 0).all()
    assert (timing["load"] >= 0).all()  # the load the times were taken under
    memory = pd.read_csv(out / "sfo_memory.csv")
    assert memory["subfunctions"].tolist() == [6, 12, 24, 48]
    assert memory["parameters"].iloc[0] == 784 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
    assert memory["memory_bytes"].is_monotonic_increasing
    # the basis alone: parameters x subspace float64 numbers
    assert (memory["memory_bytes"] >= memory["parameters"] * memory["subspace"] * 8).all()

    p5 = pd.read_csv(out / "sfo.csv").iloc[0]
    curves = pd.read_csv(out / "curves.csv")
    adam = curves[curves["curve"] == "Adam"].set_index("epoch")["train_cost_full"]
    sfo = curves[curves["curve"] == "SFO"].set_index("epoch")["train_cost_full"]
    assert sfo.index.tolist() == [0, 1, 2, 3]
    assert p5["adam_faster_per_pass"] == all(adam[k] < sfo[k] for k in (1, 2, 3))
    ratio = (
        timing[timing["optimizer"] == "SFO"]["seconds"].median()
        / timing[timing["optimizer"] == "Adam"]["seconds"].median()
    )
    assert p5["time_ratio"] == pytest.approx(ratio, rel=1e-5)
    assert p5["holds"] == (
        p5["adam_faster_per_pass"]
        and p5["adam_faster_per_second"]
        and 5 <= ratio <= 10
        and p5["memory_r2"] >= 0.99
    )
    walltime = pd.read_csv(out / "curves_walltime.csv")
    timed_sfo = walltime[walltime["curve"] == "SFO"]
    assert timed_sfo["walltime"].tolist() == pytest.approx(
        (timed_sfo["epoch"] * ratio).tolist(), rel=1e-4
    )

    p6 = pd.read_csv(out / "sfo_dropout.csv").iloc[0]
    both = pd.read_csv(out / "sfo_dropout_curves.csv")
    s = both[both["curve"] == "SFO"].set_index("epoch")["train_cost"]
    a = both[both["curve"] == "Adam"].set_index("epoch")["train_cost"]
    fails = s[4] / s[2] > a[4] / a[2] and s[4] > 2 * a[4]
    assert p6["converged"] == (not fails) and p6["passes"] == 4
    text = (out / "sfo.md").read_text()
    assert "P5" in text and "P6" in text
    for name in ("figure.png", "figure_walltime.png", "sfo_memory.png", "sfo_dropout.png"):
        assert (out / name).stat().st_size > 0
    # the same command again reads every run back: no run is repeated
    before = {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("record.json")}
    main(args)
    assert {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("record.json")} == before


def test_the_p5_rule_on_made_up_curves():
    epochs = [0, 1, 2, 3, 4]
    rows = [{"curve": "Adam", "epoch": k, "train_cost_full": 2.0 / 10**k} for k in epochs]
    rows += [{"curve": "SFO", "epoch": k, "train_cost_full": 2.0 / 2**k} for k in epochs]
    memory = pd.DataFrame({"subfunctions": [6, 12, 24], "memory_bytes": [700, 1300, 2500]})
    verdict = compare(pd.DataFrame(rows), {"Adam": 1.0, "SFO": 6.0}, memory)
    assert verdict["adam_faster_per_pass"] and verdict["adam_faster_per_second"]
    assert verdict["five_to_ten_times_slower"] and verdict["memory_linear"] and verdict["holds"]
    assert verdict["memory_bytes_per_subfunction"] == pytest.approx(100.0)
    # SFO faster per pass at pass 4 only: the per-pass part fails, the rest stands
    rows[-1]["train_cost_full"] = 1e-9
    verdict = compare(pd.DataFrame(rows), {"Adam": 1.0, "SFO": 6.0}, memory)
    assert not verdict["adam_faster_per_pass"] and not verdict["holds"]
    assert verdict["adam_below_after_passes"] == 3
    # 3x slower per pass only: outside 5-10x
    assert not compare(
        pd.DataFrame(rows[:-1] + [{**rows[-1], "train_cost_full": 1.0}]),
        {"Adam": 1.0, "SFO": 3.0},
        memory,
    )["five_to_ten_times_slower"]
    bent = memory.assign(memory_bytes=[100, 1000, 100_000])
    assert not compare(pd.DataFrame(rows), {"Adam": 1.0, "SFO": 6.0}, bent)["memory_linear"]


def test_log_interpolation_and_the_fit():
    times = pd.Series([0.0, 1.0, 2.0])
    costs = pd.Series([1.0, 1e-2, 1e-4])
    assert log_interpolate(0.5, times, costs) == pytest.approx(0.1)
    assert math.isnan(log_interpolate(2.5, times, costs))
    a, b, r2 = linear_fit(pd.Series([1, 2, 3]), pd.Series([5.0, 7.0, 9.0]))
    assert (a, b, r2) == pytest.approx((2.0, 3.0, 1.0))


def test_the_p6_rule():
    sfo = pd.DataFrame(
        {
            "epoch": [0, 1, 2, 3, 4],
            "train_cost": [math.nan, 1.0, 0.8, 0.79, 0.78],
            "current_stepsize": [1.0] * 4 + [0.01],
        }
    )
    adam = pd.DataFrame({"epoch": [1, 2, 3, 4], "train_cost": [0.5, 0.2, 0.15, 0.1]})
    record = {"sfo": {"subfunctions": 8, "events": {"failed_steps": 20}}}
    verdict = dropout_verdict(sfo, adam, record)
    assert not verdict["converged"] and verdict["steps"] == 32 and verdict["failed_steps"] == 20
    assert verdict["sfo_fall"] == pytest.approx(0.78 / 0.8)
    # SFO falling faster than Adam over the second half converges by the rule
    sfo["train_cost"] = [math.nan, 1.0, 0.8, 0.3, 0.1]
    assert dropout_verdict(sfo, adam, record)["converged"]
