"""scripts/sfo_reference.py without the authors' code (not in this repository): its problems'
minima are minima, our SFO reaches them, its network is Figure 2 (b)'s objective, and its
settings parse."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import sfo_reference  # noqa: E402


@pytest.mark.parametrize("name", ["logreg", "quadratics"])
def test_each_problems_minimum_is_where_the_gradient_vanishes_and_ours_gets_there(name):
    problem = sfo_reference.PROBLEMS[name]()
    rows = sfo_reference.run_ours(problem, 25, seed=0)
    assert [r["pass"] for r in rows] == list(range(1, 26))
    assert all(r["evaluations"] >= r["pass"] * problem.n for r in rows)
    assert rows[0]["excess"] > 1e-3 and abs(rows[-1]["excess"]) < 1e-9
    assert rows[-1]["objective"] >= problem.minimum - 1e-9  # nothing found below the minimum
    theta = np.zeros_like(problem.theta0)
    assert problem.full(theta) > problem.minimum


def test_settings_are_read_as_python_literals():
    assert sfo_reference.options(["hessian_init=1e5", "a=True", "s=min_eig"]) == {
        "hessian_init": 1e5,
        "a": True,
        "s": "min_eig",
    }


def test_the_network_problem_is_figure_2b_cost_split_into_subfunctions(mnist_root):
    """On the generated MNIST files: the subfunctions sum to the mean training cost (the
    output layer starts at zero: log 10), their gradients to its gradient, and the objective
    alone agrees with the sum."""
    problem = sfo_reference.network(str(mnist_root), n=4, overrides=("data.verify=false",))
    parts = [problem.f_df(problem.theta0, i) for i in range(4)]
    assert sum(v for v, _ in parts) == pytest.approx(np.log(10), rel=1e-12)
    assert problem.full(problem.theta0) == pytest.approx(np.log(10), rel=1e-12)
    theta = problem.theta0 + 0.01 * np.random.default_rng(0).standard_normal(problem.theta0.size)
    grad = sum(g for _, g in (problem.f_df(theta, i) for i in range(4)))
    step = 1e-6 * grad / np.linalg.norm(grad)
    change = problem.full(theta + step) - problem.full(theta - step)
    assert change == pytest.approx(2 * grad @ step, rel=1e-5)
