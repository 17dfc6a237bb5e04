"""`python -m adamrepro.train` run in this process: the lines it prints and the status it exits
with, for each way a run ends. test_cli.py runs the same commands in a new Python, as a user
does; these run `main()` here, so that a mutant of it is seen (mutation testing reaches only
code that runs in the test's own process)."""

from __future__ import annotations

import math
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from adamrepro import train as train_module
from adamrepro.records import FORMAT, read_record
from adamrepro.train import objective, summary

TINY = ["trainer.progress=false", "data.verify=false", "data.download=false", "trainer.epochs=2"]


@pytest.fixture
def main(monkeypatch, capsys, mnist_root: Path):
    """main() with `args` on its command line: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        flags = [a for a in args if a.startswith("-")]  # before the overrides, as argparse wants
        overrides = [a for a in args if not a.startswith("-")]
        argv = ["adamrepro.train", *flags, "experiment=mnist_logreg", f"data.root={mnist_root}"]
        monkeypatch.setattr(sys, "argv", [*argv, *TINY, *overrides])
        GlobalHydra.instance().clear()
        try:
            train_module.main()
            code = 0
        except SystemExit as exit_:
            code = 0 if exit_.code is None else exit_.code
        finally:
            GlobalHydra.instance().clear()
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_a_completed_run_prints_its_summary_and_exits_0(main, tmp_path: Path):
    code, out, err = main("optimizer.stepsize=1e-3", "seed=3", f"hydra.run.dir={tmp_path}")
    record = read_record(tmp_path)
    cost = [r["train_cost"] for r in record["curves"] if r["epoch"] == 2][0]
    assert code == 0
    assert err == f"mnist_logreg: 1 members (Adam), 2 epochs of 5 steps, into {tmp_path}\n"
    assert out == (
        "completed: 1 members, 0 diverged; best: member 0 (Adam, stepsize 0.001, beta1 0.9, "
        f"beta2 0.999, seed 3), final train cost {cost:.4g}; record: {tmp_path / 'record.json'}\n"
    )
    code, out, err = main("optimizer.stepsize=1e-3", "seed=3", f"hydra.run.dir={tmp_path}")
    assert code == 0 and out.startswith("completed: 1 members, 0 diverged; best: member 0")
    assert err == f"{tmp_path} is completed already: nothing to do\n"


def test_each_way_a_run_ends_has_its_line_and_exit_status(main, tmp_path: Path):
    code, _, err = main("optimizer.stepsize=-1", f"hydra.run.dir={tmp_path / 'bad'}")
    assert (code, err) == (2, "error: stepsize must be >= 0, got -1\n")
    failed = read_record(tmp_path / "bad")  # a run that could not start says why
    assert failed.pop("started") and failed.pop("updated")  # save_record stamps the time
    assert failed.pop("config")["optimizer"]["stepsize"] == -1
    assert failed == {
        "format": FORMAT,
        "status": "failed",
        "wall_time_s": 0.0,
        "members": [],
        "reason": "stepsize must be >= 0, got -1",
        "curves": [],
        "diverged": {},
        "experiment": "mnist_logreg",
        "seed": None,
        "data": {},
    }
    code, _, err = main("optimizer.stepsize=1e6", f"hydra.run.dir={tmp_path / 'diverged'}")
    record = read_record(tmp_path / "diverged")
    assert code == 3
    assert err.endswith(f"\nfailed: {record['reason']} ({tmp_path / 'diverged' / 'record.json'})\n")
    assert record["reason"].startswith("every member diverged (the last at step ")
    code, _, err = main("trainer.max_minutes=0", f"hydra.run.dir={tmp_path / 'paused'}")
    assert code == 75
    assert err.endswith(
        f"\npaused: the time budget is spent; {tmp_path / 'paused'} continues "
        "with the same command\n"
    )
    (tmp_path / "a_file").write_text("")
    for flags, key in (((), "hydra.run.dir"), (("-m",), "hydra.sweep.dir")):
        code, _, err = main(*flags, f"{key}={tmp_path / 'a_file' / 'run'}")
        assert (code, err) == (
            2,
            f"error: cannot write into {tmp_path / 'a_file' / 'run'}: Not a directory\n",
        )


@pytest.mark.parametrize(
    "raised,status,line",
    [
        (
            KeyboardInterrupt(),
            130,
            "interrupted: what was done is in {out}; the same command continues it",
        ),
        (
            torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            2,
            "error: out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB); train "
            "fewer members per run or lower trainer.eval_batch_size",
        ),
    ],
    ids=["interrupt", "out-of-memory"],
)
def test_an_interrupt_and_an_exhausted_gpu_are_one_line(
    main, monkeypatch, tmp_path: Path, raised, status, line
):
    def train(*args, **kwargs):
        raise raised

    monkeypatch.setattr(train_module, "train", train)
    code, out, err = main(f"hydra.run.dir={tmp_path}")
    assert (code, out) == (status, "")
    assert err == line.format(out=tmp_path) + "\n"


def test_a_sweep_names_its_failing_job_and_runs_the_others(main, tmp_path: Path):
    code, out, err = main("-m", "optimizer.stepsize=1e-3,-1", f"hydra.sweep.dir={tmp_path}")
    assert code == 1
    job = r"\(experiment=mnist_logreg data\.root=\S+ trainer\.progress=False .*optimizer\.stepsize="
    assert re.search(rf"^job 1 {job}-1\): error: stepsize must be >= 0, got -1$", err, re.M)
    assert "Traceback" not in err
    assert re.search(rf"^job 0 {job}0\.001\): completed: 1 members, 0 diverged; best: ", out, re.M)
    statuses = sorted(read_record(p.parent)["status"] for p in tmp_path.rglob("record.json"))
    assert statuses == ["completed", "failed"]


def test_the_objective_is_the_lowest_final_cost_of_the_members_that_did_not_diverge():
    curves = [
        {"member": 0, "epoch": 1, "train_cost": 0.1},
        {"member": 1, "epoch": 1, "train_cost": 0.5},
        {"member": 0, "epoch": 2, "train_cost": math.nan},
        {"member": 1, "epoch": 2, "train_cost": 0.4},
        {"member": 2, "epoch": 2, "train_cost": 0.3},
    ]
    record = {"config": {"trainer": {"epochs": 2}}, "curves": curves}
    assert objective(record) == 0.3
    record["curves"] = curves[:3]
    assert math.isnan(objective(record))


def test_the_summary_names_the_best_member_and_its_settings():
    members = [
        {"name": "sgd", "stepsize": 0.1, "momentum": 0.9, "seed": 0},
        {"name": "sgd", "label": "SGDNesterov", "stepsize": 0.01, "momentum": 0.99, "seed": 1},
        {"name": "sgd", "stepsize": 1.0, "momentum": 0.5, "seed": 2},
    ]
    curves = [
        {"member": 0, "epoch": 1, "train_cost": 0.01},
        {"member": 0, "epoch": 3, "train_cost": 0.25},
        {"member": 1, "epoch": 3, "train_cost": 0.123456},
        {"member": 2, "epoch": 3, "train_cost": math.nan},
    ]
    record = {
        "status": "completed",
        "config": {"trainer": {"epochs": 3}},
        "members": members,
        "curves": curves,
        "diverged": {"2": 7},
    }
    assert summary(record) == (
        "completed: 3 members, 1 diverged; best: member 1 (SGDNesterov, stepsize 0.01, "
        "momentum 0.99, seed 1), final train cost 0.1235"
    )
    record["curves"] = curves[:1] + curves[3:]
    assert summary(record) == "completed: 3 members, 1 diverged"
    members[0].pop("label", None)
    record["curves"] = curves[:2]
    assert summary(record).endswith(
        "best: member 0 (sgd, stepsize 0.1, momentum 0.9, seed 0), final train cost 0.25"
    )


def test_a_precision_that_does_not_exist_is_one_line_and_exit_2(main, tmp_path: Path):
    code, out, err = main("precision=fp8", f"hydra.run.dir={tmp_path}")
    assert (code, out) == (2, "")
    assert err == "error: precision must be one of 32-true, bf16-mixed, got 'fp8'\n"


def test_a_second_process_in_one_output_folder_is_one_line(main, tmp_path: Path):
    import os

    from adamrepro.files import exclusive

    with exclusive(tmp_path):  # as another process holds it
        code, out, err = main("optimizer.stepsize=1e-3", f"hydra.run.dir={tmp_path}")
    assert (code, out) == (2, "")
    assert re.fullmatch(
        rf"error: {re.escape(str(tmp_path))} is in use by process {os.getpid()} on \S+ since "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d: wait for it to end, or choose another output folder\n",
        err,
    ), err
    assert read_record(tmp_path) is None  # the holder's folder is left as it was
    code, out, err = main("optimizer.stepsize=1e-3", f"hydra.run.dir={tmp_path}")
    assert code == 0 and out.startswith("completed: 1 members")  # free again: it runs


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["optimizer=adamw"],
            "error: In 'train': Could not find 'optimizer/adamw' (choose one of: adadelta, "
            "adagrad, adam, adamax, amsgrad, external, momentum, nesterov, rmsprop, sgd)",
        ),
        (
            ["trainer.epoch=3"],
            "error: Could not override 'trainer.epoch'. To append to your "
            "config use +trainer.epoch=3 (Key 'epoch' is not in struct)",
        ),
        (["seed=1e20"], "error: seed must be at most 2^63 - 1, got 1e+20"),
        (["sweep.seeds=[0,x]"], "error: sweep.seeds must be an integer, got 'x'"),
        (
            ["optimizer.stepsize=1e300"],
            "error: stepsize must be at most 3.403e+38 for torch.float32 parameters, got 1e+300",
        ),
        (
            ["-m", "hydra/launcher=submitit_slurm"],
            "error: hydra/launcher=submitit_slurm needs a "
            "SLURM cluster (no srun on this machine): run the sweep here with the default launcher "
            "or hydra/launcher=joblib",
        ),
    ],
    ids=[
        "unknown-choice",
        "key-without-plus",
        "huge-seed",
        "seed-not-a-number",
        "stepsize-beyond-float32",
        "slurm-without-slurm",
    ],
)
def test_mistakes_on_the_command_line_are_one_line_and_exit_2(main, tmp_path: Path, args, message):
    if "submitit_slurm" in args[-1] and shutil.which("srun"):
        pytest.skip("this machine has SLURM")
    code, out, err = main(*args, f"hydra.run.dir={tmp_path}", f"hydra.sweep.dir={tmp_path}")
    assert (code, out, err) == (2, "", message + "\n")


def test_a_full_disk_under_hydras_own_files_is_one_line(main, tmp_path: Path, monkeypatch):
    import errno

    import hydra.core.utils

    def full(cfg, filename, output_dir):
        path = Path(output_dir) / filename
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(hydra.core.utils, "_save_config", full)
    code, out, err = main("optimizer.stepsize=1e-3", f"hydra.run.dir={tmp_path}")
    assert (code, out) == (2, "")
    assert err == (
        "error: cannot write the run's files: No space left on device "
        f"({tmp_path / '.hydra' / 'config.yaml'})\n"
    )


def test_a_figure_that_cannot_be_written_is_one_line(mnist_root: Path, tmp_path: Path):
    from adamrepro.figures.plot import main as plot_main
    from adamrepro.training import train
    from conftest import hydra_config

    train(
        hydra_config(
            "experiment=mnist_logreg", f"data.root={mnist_root}", *TINY[1:], "optimizer=adam"
        ),
        tmp_path / "runs" / "a",
    )
    (tmp_path / "in_the_way").write_text("a file, not a folder")
    with pytest.raises(SystemExit) as stopped:
        plot_main(
            [
                "fig1_mnist_logreg",
                "--runs",
                str(tmp_path / "runs"),
                "--out",
                str(tmp_path / "in_the_way" / "figure"),
            ]
        )
    assert str(stopped.value.code).startswith(
        f"error: cannot write the figure into {tmp_path / 'in_the_way' / 'figure'}: "
    )
