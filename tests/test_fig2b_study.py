"""Figure 2 (b)'s protocol study: its table's numbers and the command end to end."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from adamrepro.studies import fig2b_study
from conftest import cli


def synthetic_record(costs: dict[int, float], stepsize: float = 1e-3) -> dict:
    rows = [
        {"member": 0, "epoch": k, "train_cost_full": c, "train_cost_subset": c / 2}
        for k, c in costs.items()
    ]
    return {"curves": rows, "members": [{"stepsize": stepsize}], "config": {"dtype": "float64"}}


def test_the_distance_is_the_rms_log_ratio_to_the_papers_adam_after_k_passes():
    paper = fig2b_study.paper_adam()
    assert 0 not in paper.index  # the typo is left out
    assert paper[1] == pytest.approx(0.12343) and paper[25] == pytest.approx(5.8017e-6)
    twice = {0: 2.3, **{k: 2 * paper[k] for k in range(1, 11)}}
    mixed = {k: paper[k] * (10 if k == 5 else 1) for k in range(1, 11)}
    study = fig2b_study.table(
        {"twice": synthetic_record(twice), "mixed": synthetic_record(mixed, 3e-4)}
    )
    first, second = study.iloc[0], study.iloc[1]
    assert first["distance"] == pytest.approx(math.log10(2))
    assert first["log10_ratio_10"] == pytest.approx(math.log10(2))
    assert math.isnan(first["log10_ratio_25"]) and first["passes"] == 10
    assert first["full_0"] == 2.3 and first["subset_1"] == pytest.approx(paper[1])
    assert second["distance"] == pytest.approx(math.sqrt(1 / 10))  # one point 10x off of 10
    chosen = fig2b_study.closest(
        pd.concat([study, study.assign(variant="twice", stepsize=1.0, distance=0.01)])
    )
    assert dict(zip(chosen["variant"], chosen["stepsize"], strict=True)) == {
        "twice": 1.0,
        "mixed": 3e-4,
    }


def test_the_study_runs_its_variants_and_tabulates_them(mnist_root, tmp_path):
    tiny = [
        "data.verify=false",
        "data.download=false",
        "model.hidden=[16,16]",
        "trainer.batch_size=100",
        "trainer.progress=false",
        "trainer.train_eval_subset=100",
    ]
    args = [
        "--data-root",
        str(mnist_root),
        "--runs",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "out"),
        "--passes",
        "2",
        "--only",
        "old",
        "harness",
        "--override",
        *tiny,
    ]
    done = cli(*args, cwd=tmp_path, module="adamrepro.studies.fig2b_study")
    assert done.returncode == 0, done.stderr
    study = pd.read_csv(tmp_path / "out" / "study.csv")
    assert sorted(set(study["variant"])) == ["harness", "old"]
    assert len(study) == 2 * len(fig2b_study.SCREEN_STEPSIZES)
    harness = study[study["variant"] == "harness"]
    assert harness["full_0"].tolist() == pytest.approx([math.log(10)] * 3, rel=1e-5)  # zero output
    assert (study[study["variant"] == "old"]["full_0"] != pytest.approx(math.log(10))).all()
    assert (tmp_path / "out" / "study.png").is_file()
    assert "| **" in (tmp_path / "out" / "study.md").read_text()
    again = cli(*args[:6], "--collect", cwd=tmp_path, module="adamrepro.studies.fig2b_study")
    assert again.returncode == 0 and pd.read_csv(tmp_path / "out" / "study.csv").equals(study)
    bad = cli(
        *args[:6],
        "--only",
        "old",
        "--override",
        "model.hidden",
        cwd=tmp_path,
        module="adamrepro.studies.fig2b_study",
    )
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in bad.stderr


def test_the_rereadings_read_the_committed_run_as_other_codes_logged_it(tmp_path):
    """Made-up curves: a full cost of 10^-k after pass k and a mean minibatch cost of
    2 x 10^-(k-1) over pass k. The mean-minibatch reading draws pass k + 1's mean at x = k;
    the quarter-pass reading takes the cost after k - 1/4 passes, 10^-(k - 1/4); the distance
    is the RMS of log10(ours / paper) over the paper's passes 1..25 that the reading has."""
    import pandas as pd

    rows = [
        {
            "curve": "Adam",
            "epoch": k,
            "train_cost": 2 * 10.0 ** -(k - 1) if k else math.nan,
            "train_cost_full": 10.0**-k,
        }
        for k in range(26)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "curves.csv", index=False)
    pd.DataFrame([{"curve": "Adam", "stepsize": 0.01}]).to_csv(tmp_path / "selected.csv")
    read = fig2b_study.rereadings(tmp_path / "curves.csv").set_index("variant")
    paper = fig2b_study.paper_adam()
    assert read.loc["reread_as_drawn", "full_10"] == pytest.approx(1e-10)
    assert read.loc["reread_mean_minibatch", "full_0"] == pytest.approx(2.0)  # pass 1's mean
    assert read.loc["reread_mean_minibatch", "full_5"] == pytest.approx(2e-5)  # pass 6's
    assert math.isnan(read.loc["reread_mean_minibatch", "full_25"])  # pass 26: not run
    assert read.loc["reread_mean_minibatch_aligned", "full_5"] == pytest.approx(2e-4)
    assert read.loc["reread_quarter_pass", "full_1"] == pytest.approx(10**-0.75)
    expected = math.sqrt(
        sum(math.log10(10 ** -(k - 0.25) / paper[k]) ** 2 for k in range(1, 26)) / 25
    )
    assert read.loc["reread_quarter_pass", "distance"] == pytest.approx(expected)
    assert read.loc["reread_quarter_pass", "log10_ratio_10"] == pytest.approx(
        math.log10(10**-9.75 / paper[10])
    )
