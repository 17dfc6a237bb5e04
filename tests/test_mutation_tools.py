"""The mutation-testing scripts: the sample they draw and the score they report."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import mutation_report  # noqa: E402
import mutation_sample  # noqa: E402


def names(module: str, n: int) -> list[str]:
    return [f"adamrepro.{module}.x_f__mutmut_{k}" for k in range(1, n + 1)]


def test_the_sample_is_stratified_fixed_and_as_large_as_asked():
    pool = (
        names("optim.rules", 300)
        + names("optim.base", 100)
        + names("train", 50)
        + names("data.mnist", 30)
        + names("data.cifar", 90)
        + ["adamrepro.report.x_g__mutmut_1"]
    )
    drawn = mutation_sample.sample(pool, per_place=40, seed=0)
    assert drawn == mutation_sample.sample(list(reversed(pool)), per_place=40, seed=0)
    assert drawn != mutation_sample.sample(pool, per_place=40, seed=1)
    by_module = Counter(n.split(".x")[0] for n in drawn)
    assert by_module == {
        "adamrepro.optim.rules": 30,
        "adamrepro.optim.base": 10,
        "adamrepro.train": 40,
        "adamrepro.data.mnist": 10,
        "adamrepro.data.cifar": 30,
    }
    assert len(set(drawn)) == len(drawn) and set(drawn) <= set(pool)
    assert len(mutation_sample.sample(names("figures.plot", 7), per_place=40, seed=0)) == 7


def test_the_wilson_interval():
    low, high = mutation_report.wilson(255, 300)
    assert (low, high) == pytest.approx((0.8052, 0.8860), abs=1e-4)  # by hand: 0.8456 -+ 0.0404
    assert mutation_report.wilson(10, 10)[1] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in mutation_report.wilson(0, 0))


def test_the_report_scores_the_sample_only_and_counts_unreached_mutants_as_not_killed(
    tmp_path: Path,
):
    codes = {
        "adamrepro.optim.rules.x_f__mutmut_1": 1,
        "adamrepro.optim.rules.x_f__mutmut_2": 0,
        "adamrepro.optim.rules.x_f__mutmut_3": 33,
        "adamrepro.optim.rules.x_f__mutmut_4": 1,
        "adamrepro.optim.rules.x_f__mutmut_5": 0,
        "adamrepro.train.x_g__mutmut_1": 36,
        "adamrepro.train.x_g__mutmut_2": None,
    }
    meta = tmp_path / "mutants" / "src" / "x.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    sample = tmp_path / "sample.txt"
    gone = "adamrepro.figures.plot.x_h__mutmut_9"  # drawn, then its function changed
    sample.write_text("# header\n" + "\n".join(list(codes)[:4] + list(codes)[5:] + [gone]))
    equivalent = tmp_path / "equivalent.txt"
    equivalent.write_text("adamrepro.optim.rules.x_f__mutmut_4  only an allocation\n")
    out = tmp_path / "report.md"
    mutation_report.main(
        [
            "--mutants",
            str(tmp_path / "mutants"),
            "--sample",
            str(sample),
            "--equivalent",
            str(equivalent),
            "--out",
            str(out),
        ]
    )
    text = out.read_text()
    assert "a random sample of 7 of its 7 mutants" in text and "**NOT reached**" in text
    assert "1 of them no longer exist and are left out" in text
    # optim: 1 killed, 1 survived, 1 unreached, 1 equivalent (mutant 5 is not in the sample)
    assert "| optim/ | 4 | 1 | 1 | 1 | 1 | 0 | 33.3% | 6.1% - 79.2% |" in text
    assert "| train.py, training/ | 2 | 1 | 0 | 0 | 0 | 1 | 100.0% |" in text  # a timeout is a kill
    assert "`adamrepro.optim.rules.x_f__mutmut_2`" in text
    assert "`adamrepro.optim.rules.x_f__mutmut_5`" not in text
    assert "  - `adamrepro.optim.rules.x_f`: 1" in text  # the unreached, by function
