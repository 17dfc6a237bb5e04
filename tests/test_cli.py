"""The command line as a user meets it: every command of the README (in a tiny form), sweeps
that go on past a failing job, the launchers that scale sweeps out, and one line for what
cannot work."""

from __future__ import annotations

import json
import math
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from adamrepro.records import read_record
from conftest import (
    REPO,
    cli,
    make_cifar,
    make_cifar_images,
    make_exact_subset,
    make_imdb,
    make_mnist,
    same_evaluation,
)

TINY = ["trainer.progress=false", "data.verify=false"]  # every data set has these
# What each make target of the README needs, on top of TINY, to run in seconds.
CNN = ["model.channels=[4,4,8]", "model.hidden=16", "data.whitening=standardize"]
MAKE_TINY = {
    "reproduce-mnist": ["trainer.epochs=2"],
    "reproduce-imdb": ["trainer.epochs=2", "data.vocab_size=30", "data.cache_dir={cache}"],
    "reproduce-mlp": ["trainer.epochs=2", "model.hidden=[16,16]", "trainer.train_eval_subset=50"],
    "reproduce-mlp-cpu": [
        "trainer.epochs=2",
        "model.hidden=[16,16]",
        "trainer.train_eval_subset=50",
    ],
    "reproduce-bias-correction": ["trainer.epochs=2", "model.hidden=8", "model.latent=2"],
    "reproduce-bias-correction-cpu": ["trainer.epochs=2", "model.hidden=8", "model.latent=2"],
    "reproduce-cifar": ["trainer.epochs=2", *CNN, "data.cache_dir={cache}"],
    "reproduce-cifar-cpu": [
        *CNN,
        "trainer.batch_size=16",
        "trainer.epochs=2",
        "trainer.eval_every=2",
        "trainer.moment_stats_every=2",
        "data.cache_dir={cache}",
    ],
}
# The figures each target writes.
MAKE_WRITES = {
    "reproduce-mnist": ["fig1_mnist_logreg"],
    "reproduce-imdb": ["fig1_imdb_bow"],
    "reproduce-mlp": ["fig2a_mnist_mlp", "fig2b_mnist_mlp_deterministic"],
    "reproduce-mlp-cpu": ["fig2a_mnist_mlp/cpu_10passes", "fig2b_mnist_mlp_deterministic"],
    "reproduce-bias-correction": ["fig4_vae_bias_correction"],
    "reproduce-bias-correction-cpu": ["fig4_vae_bias_correction/cpu_10epochs"],
    "reproduce-cifar": ["fig3_cifar10_cnn"],
    "reproduce-cifar-cpu": ["fig3_cifar10_cnn/cpu_3passes", "fig3_cifar10_cnn/cpu_3passes/vhat"],
}
IN_PROJECT_VENV = Path(sys.prefix).resolve() == (REPO / ".venv").resolve()


def readme_commands() -> list[list[str]]:
    """Every command in the README's bash blocks, as argument lists (continuation lines
    joined, comments dropped)."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """MNIST, IMDB and CIFAR-10 look-alikes in their real formats, side by side in one root."""
    root = tmp_path_factory.mktemp("data")
    make_mnist(root, n_train=300, n_test=100)
    make_imdb(root, per_class=20)
    make_cifar(root, per_batch=20)
    make_exact_subset(root, make_cifar_images(root, fmt="JPEG", per_class={"train": 4, "test": 3}))
    return root


def test_the_readme_has_the_commands_this_file_runs():
    commands = readme_commands()
    assert ["make", "reproduce-mnist"] in commands and ["make", "test"] in commands
    python = [c for c in commands if c[0] == ".venv/bin/python"]
    assert any("-m" in c[3:] for c in python), "the README's multirun example is gone"
    for words in commands:
        assert words[0] in ("make", ".venv/bin/python", "export"), f"unknown command {words}"
        if words[0] == "make":
            target = words[1]
            assert target in ("test", "help", *MAKE_TINY), f"no tiny form for make {target}"


@pytest.mark.parametrize(
    "words", [c for c in readme_commands() if c[0] == ".venv/bin/python"], ids=" ".join
)
def test_every_python_command_of_the_readme_works_as_written(words, data_root, tmp_path):
    args = [*words[3:], f"data.root={data_root}", "trainer.epochs=1", "data.download=false", *TINY]
    done = cli(*args, cwd=tmp_path, module=words[2])
    assert done.returncode == 0, done.stderr[-2000:]
    folder = "multirun" if "-m" in args else "outputs"
    records = list((tmp_path / folder).rglob("record.json"))
    assert records and all(read_record(r.parent)["status"] == "completed" for r in records)
    if not any(w.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for w in words):
        experiment = re.search(r"experiment=(\w+)", " ".join(words))
        name = experiment[1] if experiment else "adhoc"  # never outputs/None/
        assert all(f"{folder}/{name}/" in str(r) for r in records)
    sweeps = [w.count(",") + 1 for w in words if "=" in w and "," in w and "[" not in w]
    assert len(records) == math.prod(sweeps)  # e.g. optimizer=adam,adagrad x 2 stepsizes: 4


@pytest.mark.skipif(not IN_PROJECT_VENV, reason="the Makefile runs the project's .venv")
@pytest.mark.parametrize(
    "target", sorted({c[1] for c in readme_commands() if c[0] == "make"} - {"test"})
)
def test_every_make_target_of_the_readme_runs_in_a_tiny_form(target, data_root, tmp_path):
    tiny = [o.format(cache=tmp_path / "cache") for o in MAKE_TINY.get(target, [])]
    overrides = " ".join([*TINY, *tiny])
    command = [
        "make",
        "-s",
        target,
        f"DATA_ROOT={data_root}",
        f"RUNS={tmp_path / 'runs'}",
        f"RESULTS={tmp_path / 'results'}",
        f"OVERRIDES={overrides}",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    if target == "help":
        assert "reproduce-mnist" in done.stdout and "restart-%" in done.stdout
        assert "make reproduce-bias-correction-cpu" in done.stdout  # the protocols, listed
        return
    for figure in MAKE_WRITES[target]:
        assert (tmp_path / "results" / figure / "figure.png").is_file()
        sources = json.loads((tmp_path / "results" / figure / "sources.json").read_text())
        assert sources["left_out"] == [] and sources["status"] == ["completed"]
    if target != "reproduce-mnist":
        return
    # the same command again continues: every run is complete already
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "completed already: nothing to do" in again.stderr


def sweep(data_root: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return cli(
        "-m",
        "experiment=mnist_logreg",
        f"data.root={data_root}",
        "trainer.epochs=1",
        *TINY,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *args,
        cwd=tmp_path,
    )


def test_a_failing_job_is_reported_and_the_others_still_run(data_root, tmp_path):
    done = sweep(data_root, tmp_path, "optimizer.stepsize=1e-3,-1,1e-2")
    assert done.returncode == 1
    assert "job 1 (" in done.stderr and "): error: stepsize must be >= 0, got -1" in done.stderr
    assert "Traceback" not in done.stderr
    records = {
        p.parent.name: read_record(p.parent) for p in (tmp_path / "sweep").rglob("record.json")
    }
    assert sorted(r["status"] for r in records.values()) == ["completed", "completed", "failed"]
    failed = next(r for r in records.values() if r["status"] == "failed")
    assert failed["reason"] == "stepsize must be >= 0, got -1"


@pytest.mark.parametrize(
    "launcher",
    [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], ["hydra/launcher=submitit_local"]],
    ids=["joblib", "submitit_local"],
)
def test_sweeps_scale_out_on_hydras_launchers(launcher, data_root, tmp_path):
    done = sweep(data_root, tmp_path, "optimizer.stepsize=1e-3,1e-2", *launcher)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [read_record(p.parent) for p in (tmp_path / "sweep").rglob("record.json")]
    assert sorted(r["members"][0]["stepsize"] for r in records) == [1e-3, 1e-2]
    assert all(r["status"] == "completed" for r in records)


def test_an_output_folder_that_cannot_be_written_is_one_line(data_root, tmp_path):
    (tmp_path / "a_file").write_text("")
    for mode, key in (([], "hydra.run.dir"), (["-m"], "hydra.sweep.dir")):
        done = cli(
            *mode,
            "experiment=mnist_logreg",
            f"data.root={data_root}",
            *TINY,
            f"{key}={tmp_path / 'a_file' / 'run'}",
            cwd=tmp_path,
        )
        assert done.returncode == 2
        assert (
            done.stderr.strip()
            == f"error: cannot write into {tmp_path / 'a_file' / 'run'}: Not a directory"
        )


def test_exit_status_says_how_a_run_ended(data_root, tmp_path):
    args = ["experiment=mnist_logreg", f"data.root={data_root}", *TINY, "trainer.epochs=2"]
    diverged = cli(*args, "optimizer.stepsize=1e6", f"hydra.run.dir={tmp_path / 'd'}", cwd=tmp_path)
    assert diverged.returncode == 3
    assert "failed: every member diverged (the last at step" in diverged.stderr
    paused = cli(*args, "trainer.max_minutes=0", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path)
    assert paused.returncode == 75 and "paused: the time budget is spent" in paused.stderr
    done = cli(*args, f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("completed: 1 members, 0 diverged; best")
    log = (tmp_path / "p" / "train.log").read_text()
    assert "the time budget (trainer.max_minutes=0) is spent" in log
    assert "epoch 2/2: best train cost" in log  # every epoch, in the file only
    assert "epoch 2/2" not in done.stderr


def test_a_signal_handler_that_was_there_runs_after_the_checkpoint(
    mnist_root, tmp_path, monkeypatch
):
    """What submitit does on a cluster (SIGUSR2: requeue the job, then exit), simulated: our
    checkpoint comes first, then its handler; the requeued job continues the run."""
    from adamrepro.checkpoint import CHECKPOINT_NAME
    from adamrepro.training import train
    from test_resume import outcome, population_config, signal_at_step

    config = population_config(mnist_root)
    straight = train(config, tmp_path / "straight")
    seen = []

    def requeue(signum, frame):
        seen.append((tmp_path / "run" / CHECKPOINT_NAME).is_file())
        raise SystemExit(144)  # submitit's local executor: "requeue me"

    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        signal_at_step(monkeypatch, signal.SIGUSR2, 15)
        with pytest.raises(SystemExit) as exit_:
            train(config, tmp_path / "run")
        monkeypatch.undo()
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert exit_.value.code == 144 and seen == [True]
    assert read_record(tmp_path / "run")["status"] == "interrupted"
    assert outcome(train(config, tmp_path / "run")) == outcome(straight)


def test_a_run_with_dropout_repeats_exactly_in_a_new_process_and_another_seed_differs(
    mnist_root, tmp_path
):
    """Dropout masks come from torch's generator, seeded by the run: the same command in two
    processes trains the same (its costs bit for bit; its end-of-epoch evaluations to float32
    rounding: conftest's `same_evaluation`); seed=1 gives another."""

    def run(name: str, *extra: str) -> list[dict]:
        done = cli(
            "experiment=mnist_mlp",
            f"data.root={mnist_root}",
            "data.download=false",
            *TINY,
            "trainer.epochs=2",
            "trainer.batch_size=64",
            "model.hidden=[16,16]",
            "optimizer=adam",
            *extra,
            f"hydra.run.dir={tmp_path / name}",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        return [
            {k: r[k] for k in ("epoch", "train_cost", "train_cost_full", "test_loss")}
            for r in read_record(tmp_path / name)["curves"]
        ]

    first, again, other = run("a"), run("b"), run("c", "seed=1")
    assert [(r["epoch"], r["train_cost"]) for r in first] == [
        (r["epoch"], r["train_cost"]) for r in again
    ]
    for row, same in zip(first, again, strict=True):
        for key in ("train_cost_full", "test_loss"):
            assert same_evaluation(row[key], same[key]), (row, same)
    assert [r["train_cost"] for r in first] != [r["train_cost"] for r in other]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the probe test runs on CUDA")
def test_ci_fails_a_session_in_which_every_test_skipped():
    probe = "tests/test_train.py::test_a_training_step_on_cuda_never_waits_for_the_host"  # skips
    for required, status in (("0", 0), ("1", 1)):
        env = {**__import__("os").environ, "ADAMREPRO_REQUIRE_PASSED": required}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", probe],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == status, done.stdout
    assert "no test passed" in done.stdout
    assert "ADAMREPRO_REQUIRE_PASSED=1 make test" in (REPO / ".ci" / "run").read_text()
