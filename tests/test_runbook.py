"""The GPU runbook, at toy sizes on the CPU: the same protocols, pieces and resumes as on a GPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from adamrepro.records import read_record
from adamrepro.runbook import PROTOCOLS, compose_run, run_folder, step_cost
from conftest import REPO, make_cifar, make_mnist


def runbook(*args: str) -> list[str]:
    return [sys.executable, "-m", "adamrepro.runbook", *args]


IN_PROJECT_VENV = Path(sys.prefix).resolve() == (REPO / ".venv").resolve()


@pytest.mark.skipif(not IN_PROJECT_VENV, reason="the Makefile runs the project's .venv")
def test_make_reproduce_gpu_runs_in_pieces_survives_a_kill_and_ends_all_done(tmp_path):
    data, outputs = tmp_path / "data", tmp_path / "outputs"
    runs = outputs / "gpu"  # make's RUNS/gpu
    make_mnist(data, n_train=300, n_test=100)
    make_cifar(data)
    make = [
        "make",
        "-s",
        "reproduce-gpu",
        f"RUNS={outputs}",
        f"DATA_ROOT={data}",
        "GPU_MINUTES=0.1",
        "GPU_ARGS=--tiny",
    ]
    args = ["--tiny", "--runs", str(runs), "--data-root", str(data), "--minutes", "0.1"]
    first = next(iter(PROTOCOLS))
    started = subprocess.Popen(
        make, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    folder = run_folder(runs, first, first.runs[0])
    deadline = time.monotonic() + 120
    while read_record(folder) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(started.pid, signal.SIGKILL)  # a hard kill in the middle of a piece
    started.wait()
    # A piece whose budget is spent before it starts pauses (exit 75, make's 2) whatever the
    # machine's speed.
    spent = subprocess.run(
        [*make, "GPU_MINUTES=0"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert spent.returncode == 2, spent.stdout + spent.stderr[-2000:]  # make: 75 -> 2

    def pieces_so_far() -> int:
        return sum(
            len((read_record(f.parent) or {}).get("pieces", [])) for f in runs.rglob("record.json")
        )

    # Pieces of 6 s each take at least a step, however loaded the machine: each one trains
    # something more, and pauses (2) unless nothing is left (0). How many such pieces the
    # whole protocol needs depends on the machine's speed, so a few are checked, and one
    # piece with a budget no load can spend ends it.
    for _ in range(3):
        before = pieces_so_far()
        piece = subprocess.run(make, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert piece.returncode in (0, 2), piece.stderr[-2000:]
        if piece.returncode == 0:
            break
        assert pieces_so_far() > before, piece.stdout
    done = subprocess.run(
        [*make, "GPU_MINUTES=60"], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.rstrip().endswith("all done")
    for protocol in PROTOCOLS:
        for run in protocol.runs:
            assert read_record(run_folder(runs, protocol, run))["status"] == "completed"
    pieces = {str(f): len(read_record(f.parent)["pieces"]) for f in runs.rglob("record.json")}
    again = subprocess.run(runbook(*args), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0  # idempotent: nothing trained again
    assert pieces == {
        str(f): len(read_record(f.parent)["pieces"]) for f in runs.rglob("record.json")
    }
    assert "all done" in again.stdout and (folder / "train.log").is_file()
    packed = tmp_path / "records.tar.gz"
    subprocess.run(runbook("--runs", str(runs), "--collect", str(packed)), cwd=REPO, check=True)
    with tarfile.open(packed) as archive:
        names = archive.getnames()
    assert "fig4/bias_correction_true/record.json" in names
    assert not any(name.endswith(".pt") for name in names)  # no checkpoints: small
    results = tmp_path / "results"
    drawn = subprocess.run(
        runbook("--runs", str(runs), "--figures", "--results", str(results)),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        "fig2a_mnist_mlp" in drawn.stdout
        and (results / "fig3_cifar10_cnn" / "figure.png").is_file()
    )


def test_a_protocol_without_its_data_is_skipped_and_said_so(tmp_path, mnist_root):
    done = subprocess.run(
        runbook(
            "--tiny",
            "--runs",
            str(tmp_path / "runs"),
            "--data-root",
            str(mnist_root),
            "--only",
            "fig3",
            "--override",
            "data.download=false",
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 75
    assert "fig3           skipped: CIFAR-10 not found: looked in" in done.stdout


def test_the_plan_counts_the_papers_matmul_flops():
    fig2a = next(p for p in PROTOCOLS if p.name == "fig2a")
    adam = next(r for r in fig2a.runs if r.name == "adam")
    cost = step_cost(compose_run(fig2a, adam, "data", [], tiny=False))
    per_member = 2 * 128 * (784 * 1000 + 1000 * 1000 + 1000 * 10) * 3 - 2 * 128 * 784 * 1000
    assert cost["members"] == 4 and cost["flops"] == pytest.approx(4 * per_member, rel=1e-9)
    assert cost["parameters"] == 4 * (784 * 1000 + 1000 + 1000 * 1000 + 1000 + 1000 * 10 + 10)
