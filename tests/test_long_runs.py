"""The long protocols in units (`python -m adamrepro.long_runs`): one whole run per call, its
record kept under results/ the moment it completes, what is there never trained again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from adamrepro import long_runs
from adamrepro.long_runs import Unit
from adamrepro.records import read_record

TINY = (
    "experiment=mnist_logreg",
    "optimizer=adam",
    "trainer.epochs=2",
    "data.verify=false",
    "data.download=false",
)


@pytest.fixture
def units(monkeypatch) -> list[Unit]:
    made = [
        Unit("toy", "fig1_mnist_logreg", f"stepsize_{s}", (*TINY, f"optimizer.stepsize={s}"), 5.0)
        for s in ("1e-3", "1e-2")
    ]
    monkeypatch.setattr(long_runs, "UNITS", made)
    return made


def unit_args(mnist_root: Path, tmp_path: Path) -> list[str]:
    work, results = tmp_path / "work", tmp_path / "results"
    return ["--data-root", str(mnist_root), "--work", str(work), "--results", str(results)]


def test_each_call_trains_the_next_unit_and_keeps_its_record(
    units, mnist_root: Path, tmp_path: Path, capsys
):
    args = unit_args(mnist_root, tmp_path)
    long_runs.main(args)
    first = tmp_path / "results" / "fig1_mnist_logreg" / "runs" / "toy" / "stepsize_1e-3"
    record = read_record(first)
    assert record["status"] == "completed" and (first / "train.log").is_file()
    assert not list(first.glob("*.pt"))  # no checkpoint in results
    assert read_record(first.parent / "stepsize_1e-2") is None
    out = capsys.readouterr().out
    assert "toy/stepsize_1e-3: completed" in out and "1 units left" in out
    text = long_runs.status(tmp_path / "results")
    assert "toy    1/2 units done" in text and "stepsize_1e-2                    to do" in text
    long_runs.main(args)
    assert read_record(first.parent / "stepsize_1e-2")["status"] == "completed"
    assert len(read_record(first)["pieces"]) == 1  # the first was not trained again
    long_runs.main(args)
    assert capsys.readouterr().out.endswith("all units done\n")
    assert "total: 0.0 hours left on two cores" in long_runs.status(tmp_path / "results")


def test_a_spent_budget_stops_the_call_and_the_same_call_continues(
    units, mnist_root: Path, tmp_path: Path
):
    args = unit_args(mnist_root, tmp_path)
    with pytest.raises(SystemExit) as paused:
        long_runs.main([*args, "--minutes", "0"])
    assert paused.value.code == 75  # the budget was spent before the unit could start
    assert long_runs.done(units[0], tmp_path / "results") is None
    long_runs.main(args)
    record = read_record(tmp_path / "results/fig1_mnist_logreg/runs/toy/stepsize_1e-3")
    assert record["status"] == "completed"


def test_ctrl_c_ends_the_call_with_one_line_and_status_130(
    units, mnist_root: Path, tmp_path: Path, monkeypatch, capsys
):
    import adamrepro.training

    def interrupted(config, folder):  # as the loop ends after its checkpoint on Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(adamrepro.training, "train", interrupted)
    with pytest.raises(SystemExit) as stopped:
        long_runs.main(unit_args(mnist_root, tmp_path))
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the same command continues it" in err
    assert long_runs.done(units[0], tmp_path / "results") is None


def test_commit_commits_the_units_folder_alone(units, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "t")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "t@t")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "t")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "t@t")
    folder = Path("results/fig1_mnist_logreg/runs/toy/stepsize_1e-3")
    folder.mkdir(parents=True)
    (folder / "record.json").write_text("{}")
    Path("other.txt").write_text("not this")
    long_runs.commit(folder, units[0], {"status": "completed", "wall_time_s": 125.0}, "cmd")
    shown = subprocess.run(
        [*git, "show", "--stat", "--format=%s"], capture_output=True, text=True, check=True
    ).stdout
    assert shown.startswith("long-run unit toy/stepsize_1e-3: completed, 2 min of training (cmd)")
    assert "record.json" in shown and "other.txt" not in shown


def test_until_done_trains_every_unit_in_one_call(units, mnist_root: Path, tmp_path: Path, capsys):
    long_runs.main([*unit_args(mnist_root, tmp_path), "--until-done"])
    runs = tmp_path / "results" / "fig1_mnist_logreg" / "runs" / "toy"
    assert all(read_record(runs / u.name)["status"] == "completed" for u in units)
    out = capsys.readouterr().out
    assert "1 units left" in out and "0 units left" in out


def test_a_unit_held_by_another_runner_is_left_to_it(
    units, mnist_root: Path, tmp_path: Path, capsys
):
    args = unit_args(mnist_root, tmp_path)
    other = long_runs.claim(units[0], tmp_path / "work")  # another runner trains the first
    assert other is not None and long_runs.claim(units[0], tmp_path / "work") is None
    try:
        long_runs.main([*args, "--until-done"])
        runs = tmp_path / "results" / "fig1_mnist_logreg" / "runs" / "toy"
        assert read_record(runs / units[1].name)["status"] == "completed"
        assert read_record(runs / units[0].name) is None
        assert capsys.readouterr().out.endswith(
            "the 1 units left are all being trained by other runners\n"
        )
    finally:
        other.release()
    long_runs.main(args)  # released (however the other runner ended): this one takes it
    assert read_record(runs / units[0].name)["status"] == "completed"


def test_a_unit_completed_by_another_runner_before_the_claim_is_not_trained_again(
    units, mnist_root: Path, tmp_path: Path, monkeypatch, capsys
):
    args = unit_args(mnist_root, tmp_path)
    long_runs.main(args)  # the first unit's record, as another runner would have kept it
    first = long_runs.record_folder(units[0], tmp_path / "results")
    kept = (first / "record.json").read_text()
    (first / "record.json").unlink()
    claim = long_runs.claim

    def finished_meanwhile(unit: Unit, work: Path):
        if unit == units[0]:
            (first / "record.json").write_text(kept)
        return claim(unit, work)

    monkeypatch.setattr(long_runs, "claim", finished_meanwhile)
    capsys.readouterr()
    long_runs.main(args)
    assert "unit toy/stepsize_1e-2" in capsys.readouterr().out
    assert len(read_record(first)["pieces"]) == 1


def test_threads_sets_the_runners_torch_threads(units, mnist_root: Path, tmp_path: Path):
    import torch

    threads = torch.get_num_threads()
    try:
        long_runs.main([*unit_args(mnist_root, tmp_path), "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    record = read_record(long_runs.record_folder(units[0], tmp_path / "results"))
    assert record["threads"] == 1


def test_status_counts_the_units_cpu_time_not_their_wall_time(
    units, mnist_root: Path, tmp_path: Path
):
    """A niced unit beside foreground work takes several times its cost in wall time: the
    hours left come from the CPU time of the units done (over two cores), and records older
    than that field leave the estimate in place."""
    import json

    long_runs.main(unit_args(mnist_root, tmp_path))
    results = tmp_path / "results"
    folder = long_runs.record_folder(units[0], results)
    record = json.loads((folder / "record.json").read_text())
    pieces = sum(p["cpu_time_s"] for p in record["pieces"])
    assert 0 < record["cpu_time_s"] == pytest.approx(pieces, abs=0.01)
    record = {k: v for k, v in record.items() if k != "cpu_time_s"} | {"wall_time_s": 6000.0}
    (folder / "record.json").write_text(json.dumps(record))
    text = long_runs.status(results)
    assert "toy    1/2 units done, 0.1 hours left on two cores (estimated)" in text
    assert "completed, 100 min wall\n" in text
    (folder / "record.json").write_text(json.dumps({**record, "cpu_time_s": 1200.0}))
    text = long_runs.status(results)
    assert "0.2 hours left on two cores (CPU time / 2 per member-epoch of the 1 done)" in text
    assert "completed, 100 min wall, 20 CPU-min" in text


def test_status_shows_a_unit_in_progress_and_counts_only_what_is_left_of_it(
    units, mnist_root: Path, tmp_path: Path
):
    """A unit whose work folder holds epochs counts only the epochs it has left, and says
    whether a runner holds it."""
    import json

    from filelock import FileLock

    long_runs.main(unit_args(mnist_root, tmp_path))
    results, work = tmp_path / "results", tmp_path / "work"
    folder = long_runs.record_folder(units[0], results)
    record = json.loads((folder / "record.json").read_text()) | {"cpu_time_s": 1200.0}
    (folder / "record.json").write_text(json.dumps(record))
    assert "total: 0.2 hours left" in long_runs.status(results, work)  # 10 min for the other
    running = work / units[1].protocol / units[1].name
    running.mkdir(parents=True)
    curves = [row for row in record["curves"] if row["epoch"] <= 1]
    record |= {"status": "running", "curves": curves}
    (running / "record.json").write_text(json.dumps(record))
    text = long_runs.status(results, work)
    assert "stepsize_1e-2                    at epoch 1 of 2 (no runner" in text
    assert "total: 0.1 hours left" in text  # half of 10 min
    with FileLock(work / units[1].protocol / f"{units[1].name}.lock"):
        assert "at epoch 1 of 2 (a runner trains it)" in long_runs.status(results, work)
    assert long_runs.member_epochs(units[0]) == 2.0


def test_a_halved_grid_counts_its_kept_members_after_the_halving_epoch():
    units = {u.name: u for u in long_runs.UNITS if u.protocol == "fig2a"}
    # Adam's grid of 4 for 2 epochs, its 2 best for the 199 after; the _next unit 1 member
    assert long_runs.member_epochs(units["adam"]) == 4 * 2 + 2 * 199
    assert long_runs.member_epochs(units["adam_next"]) == 201


def test_only_names_a_protocol_or_one_unit_of_it(units, mnist_root: Path, tmp_path: Path, capsys):
    args = unit_args(mnist_root, tmp_path)
    results = tmp_path / "results"
    long_runs.main([*args, "--only", "toy/stepsize_1e-2"])
    assert read_record(long_runs.record_folder(units[1], results))["status"] == "completed"
    assert read_record(long_runs.record_folder(units[0], results)) is None
    long_runs.main([*args, "--only", "toy/stepsize_1e-2"])
    assert capsys.readouterr().out.endswith("all units done\n")
    long_runs.main([*args, "--only", "other"])
    assert read_record(long_runs.record_folder(units[0], results)) is None
    long_runs.main([*args, "--only", "toy"])
    assert read_record(long_runs.record_folder(units[0], results))["status"] == "completed"
