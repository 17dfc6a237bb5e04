"""scripts/sfo_reference.py without the authors' code (not in this repository): its problems'
minima are minima, our SFO reaches them, and its settings parse."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import sfo_reference  # noqa: E402


@pytest.mark.parametrize("name", sorted(sfo_reference.PROBLEMS))
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
