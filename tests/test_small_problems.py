"""Small problems: the surfaces, a path checked step by step, the online problems' projection,
and the whole study at a quick size."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from adamrepro.models.surfaces import SURFACES
from adamrepro.studies.small_problems import main, project
from adamrepro.training import train
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
        assert torch.allclose(
            torch.stack([gx, gy]), torch.stack(list(written)), rtol=1e-12, atol=1e-12
        )
    assert surface.f_min == pytest.approx(
        float(surface.f(*map(torch.tensor, surface.minimum))), abs=0
    )
    grad_at_minimum = surface.gradient(
        *(torch.tensor(v, dtype=torch.float64) for v in surface.minimum)
    )
    assert all(abs(float(g)) < 1e-12 for g in grad_at_minimum)


def test_a_path_on_the_bowl_is_gradient_descent_step_by_step(tmp_path):
    """SGD with stepsize a on x^2/20 + y^2: x_t = x_0 (1 - a/10)^t, y_t = y_0 (1 - 2a)^t."""
    cfg = hydra_config(
        "experiment=toy",
        "optimizer=sgd",
        "sweep=none",
        "optimizer.stepsize=0.1",
        "data.steps=30",
        "dtype=float64",
    )
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
    main(
        [
            "--runs",
            str(tmp_path / "runs"),
            "--out",
            str(out),
            "--quick",
            "--surfaces",
            "bowl",
            "saddle",
        ]
    )
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


def test_a_surfaces_data_is_one_row_of_gaussian_noise_per_step():
    from adamrepro.data import load_data
    from adamrepro.data.surface import load_surface
    from adamrepro.errors import ConfigError

    data = load_surface(steps=5, noise=0.5, seed=3)
    expected = torch.randn(5, 2, generator=torch.Generator().manual_seed(3)) * 0.5
    assert torch.equal(data.x_train, expected)
    assert torch.equal(data.y_train, torch.zeros(5, dtype=torch.long))
    assert torch.equal(data.x_test, torch.zeros(1, 2)) and data.y_test.tolist() == [0]
    assert data.y_train.dtype == data.y_test.dtype == torch.long and data.num_classes == 0
    assert data.description == {
        "name": "surface",
        "lossless": True,
        "label": "2-D surface, gradient noise sd 0.5",
    }
    quiet = load_data({"name": "surface", "steps": 4})
    assert torch.equal(quiet.x_train, torch.zeros(4, 2))
    assert quiet.description["label"] == "2-D surface, no noise"
    assert not torch.equal(load_surface(5, 0.5, 4).x_train, data.x_train)
    assert len(load_surface(1).x_train) == 1
    for steps, noise in ((0, 0.1), (3, -0.1), (3, float("nan"))):
        with pytest.raises(ConfigError) as error:
            load_surface(steps, noise)
        assert str(error.value) == (
            f"data.steps must be >= 1 and data.noise >= 0, got {steps}, {noise}"
        )


def test_a_surface_model_starts_where_asked_and_adds_the_minibatchs_noise_term():
    from adamrepro.errors import ConfigError
    from adamrepro.models.surfaces import SurfaceModel

    model = SurfaceModel([0, 1, 2])
    assert model.surface is SURFACES["bowl"] and model.members == 3
    assert model.position.dtype == torch.float32
    assert model.position.tolist() == [list(SURFACES["bowl"].start)] * 3
    model = SurfaceModel([0, 1], "saddle", start=(0.5, -1.0))
    assert model.position.tolist() == [[0.5, -1.0], [0.5, -1.0]]
    noise = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])  # (S, B, 2)
    mean = noise.reshape(-1, 2).mean(0)  # (4, 5)
    expected = model.value() + 0.5 * mean[0] - 1.0 * mean[1]
    assert model.cost(noise).tolist() == pytest.approx(expected.tolist())
    assert model.cost(noise[0]).tolist() == pytest.approx(
        (model.value() + 0.5 * 2.0 - 1.0 * 3.0).tolist()
    )
    with pytest.raises(ConfigError) as error:
        SurfaceModel([0], "moon")
    assert str(error.value) == f"unknown surface 'moon'; choose one of {', '.join(SURFACES)}"
    for start, shown in (((1.0, 2.0, 3.0), "[1.0, 2.0, 3.0]"), ((), "[]")):
        if not start:  # no start: the surface's own, which is two numbers
            assert SurfaceModel([0], "bowl", start=start).position.shape == (1, 2)
            continue
        with pytest.raises(ConfigError) as error:
            SurfaceModel([0], "bowl", start=start)
        assert str(error.value) == f"model.start must be two numbers, got {shown}"


def test_the_plot_command_draws_a_small_problems_paths(tmp_path, capsys, drawn_axes):
    from adamrepro.figures.plot import main as plot_main

    cfg = hydra_config(
        "experiment=toy", "optimizer=sgd", "sweep=none", "optimizer.stepsize=0.1", "data.steps=20"
    )
    train(cfg, tmp_path / "runs" / "sgd")
    capsys.readouterr()
    plot_main(["toy_bowl", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == (
        f"wrote {tmp_path / 'out'}/figure.png, animation.gif, paths.csv, metrics.csv"
    )
    assert drawn_axes[str(tmp_path / "out" / "figure.png")]["texts"] == [
        "data: 2-D surface, no noise"
    ]  # the note
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert "path_ratio" in printed[0].split() and len(printed) == 1 + len(metrics) + 1
