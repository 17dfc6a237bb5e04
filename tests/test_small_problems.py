"""Small problems: the surfaces, a path checked step by step, the online problems' projection,
and the whole study at a quick size."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from adamrepro.models.surfaces import SURFACES
from adamrepro.small_problems import main, project
from adamrepro.train import train
from conftest import hydra_config


@pytest.mark.parametrize("name", list(SURFACES))
def test_each_surfaces_written_gradient_is_autograds(name):
    surface = SURFACES[name]
    gen = torch.Generator().manual_seed(0)
    x0, x1, y0, y1 = surface.box
    for _ in range(20):
        x = (x0 + (x1 - x0) * torch.rand((), generator=gen, dtype=torch.float64)).requires_grad_()
        y = (y0 + (y1 - y0) * torch.rand((), generator=gen, dtype=torch.float64)).requires_grad_()
        gx, gy = torch.autograd.grad(surface.f(x, y), (x, y))
        written = surface.gradient(x.detach(), y.detach())
        assert torch.allclose(torch.stack([gx, gy]), torch.stack(list(written)), rtol=1e-12,
                              atol=1e-12)  # fmt: skip
    assert surface.f_min == pytest.approx(
        float(surface.f(*map(torch.tensor, surface.minimum))), abs=0
    )
    grad_at_minimum = surface.gradient(
        *(torch.tensor(v, dtype=torch.float64) for v in surface.minimum)
    )
    assert all(abs(float(g)) < 1e-12 for g in grad_at_minimum)


def test_a_path_on_the_bowl_is_gradient_descent_step_by_step(tmp_path):
    """SGD with stepsize a on x^2/20 + y^2: x_t = x_0 (1 - a/10)^t, y_t = y_0 (1 - 2a)^t."""
    cfg = hydra_config("experiment=toy", "optimizer=sgd", "sweep=none", "optimizer.stepsize=0.1",
                       "data.steps=30", "dtype=float64")  # fmt: skip
    record = train(cfg, tmp_path / "run")
    positions = record["step_parameters"]["values"]
    assert record["step_parameters"]["initial"] == [[-7.0, 2.0]]
    for t, ((x, y),) in enumerate(positions, start=1):
        assert x == pytest.approx(-7.0 * (1 - 0.01) ** t, rel=1e-12)
        assert y == pytest.approx(2.0 * (1 - 0.2) ** t, rel=1e-12)
    costs = [row[0] for row in record["step_costs"]["cost"]]
    assert costs[0] == pytest.approx(49 / 20 + 4)  # the cost at theta_0, before the first step


def test_the_projection_keeps_the_online_iterate_feasible():
    x = torch.tensor([-3.0, 0.5, 1.7])
    project(x, 1.0)
    assert x.tolist() == [-1.0, 0.5, 1.0]


def test_the_study_at_a_quick_size_writes_figures_verdicts_and_readme(tmp_path):
    out = tmp_path / "out"
    main(["--runs", str(tmp_path / "runs"), "--out", str(out), "--quick",
          "--surfaces", "bowl", "saddle"])  # fmt: skip
    verdicts = pd.read_csv(out / "verdicts.csv")
    assert list(verdicts["claim"]) == ["S1", "S2", "S3", "P14/S4", "S5", "P13", "Reddi", "Thm 4.1"]
    assert set(verdicts["verdict"]) <= {"holds", "does not hold"}
    assert verdicts.set_index("claim").loc["P14/S4", "verdict"] == "holds"  # exact arithmetic
    for surface in ("bowl", "saddle"):
        for name in ("figure.png", "animation.gif", "paths.csv", "metrics.csv"):
            assert (out / surface / name).is_file()
        metrics = pd.read_csv(out / surface / "metrics.csv")
        for _, group in metrics.groupby("label"):  # the selection rule, read back
            chosen = group[group["selected"]].iloc[0]
            reached = group[group["steps_to_tolerance"].apply(math.isfinite)]
            if len(reached):
                assert chosen["steps_to_tolerance"] == reached["steps_to_tolerance"].min()
            else:
                assert chosen["final_gap"] == group["final_gap"].min()
    regret = pd.read_csv(out / "regret.csv")
    assert regret["average_regret"].is_monotonic_decreasing and (regret["average_regret"] > 0).all()
    readme = (out / "README.md").read_text()
    assert "![bowl](bowl/figure.png)" in readme and "| P13 |" in readme
