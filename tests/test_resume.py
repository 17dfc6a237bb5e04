"""Runs that survive: killed, interrupted or paused at any step, a run continues to the same
curves as a run that was never stopped: its training bit for bit, its end-of-epoch
evaluations to float32 rounding (`assert_same_run`)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from adamrepro.checkpoint import CHECKPOINT_NAME, StopRequests
from adamrepro.errors import ConfigError, DataError, OutputError
from adamrepro.files import write_atomic
from adamrepro.records import read_record
from adamrepro.training import train
from adamrepro.training.evaluation import METRICS
from adamrepro.training.loop import Training
from conftest import REPO, hydra_config, same_evaluation

# Runs `train` on the config in argv[1] into argv[2]; with argv[3] = "SIGNAL:N", the process
# sends itself that signal just before the N-th training step of this process (SIGKILL: a
# hard kill, no chance to save anything).
KILLER = textwrap.dedent("""
    import json, os, signal, sys
    from adamrepro.training import train
    from adamrepro.training.loop import Training
    # as a terminal's Ctrl-C finds it, even when the tests run in the background (where the
    # shell starts processes with SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config, out = json.loads(open(sys.argv[1]).read()), sys.argv[2]
    if len(sys.argv) > 3:
        name, at = sys.argv[3].split(":")
        original, calls = Training._step, [0]
        def step(self, *args):
            calls[0] += 1
            if calls[0] == int(at):
                os.kill(os.getpid(), getattr(signal, name))
            return original(self, *args)
        Training._step = step
    train(config, out)
""")


def population_config(root: Path, *overrides: str) -> dict:
    """A population with dropout, two seeds and a member that diverges, in float32: every
    state that a resume must restore is exercised (dropout RNG, per-seed minibatch order,
    the divergence monitor, optimizer moments, per-step cost logs)."""
    cfg = hydra_config(
        "experiment=mnist_mlp",
        f"data.root={root}",
        "data.verify=false",
        "data.download=false",
        "model.hidden=[24,24]",
        "trainer.epochs=3",
        "trainer.batch_size=64",
        "+grid.stepsize=[1e-3,3e-2,1e4]",
        "sweep.seeds=[0,1]",
        "trainer.step_log_epochs=2",
        "trainer.checkpoint_minutes=0",
        "dtype=float32",
        *overrides,
    )
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def run_process(config: dict, out: Path, tmp: Path, stop: str | None = None):
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    args = [sys.executable, "-c", KILLER, str(path), str(out), *([stop] if stop else [])]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)


# the end-of-epoch evaluation columns (adamrepro.training.evaluation), as they may be named
EVALUATED = {*METRICS, *(f"averaged_{m}" for m in METRICS), "train_cost_subset"}


def outcome(record: dict) -> dict:
    """What a run's training computed: every curve value but the end-of-epoch evaluations (and
    wall times), divergences and step costs."""
    drop = {"wall_time_s", *EVALUATED}
    curves = [{k: v for k, v in row.items() if k not in drop} for row in record["curves"]]
    return {
        "curves": json.dumps(curves),  # NaN == NaN as text
        "diverged": record["diverged"],
        "step_costs": json.dumps(record.get("step_costs")),
        "members": record["members"],
    }


def assert_same_evaluations(rows: list[dict], expected: list[dict]) -> None:
    """The end-of-epoch evaluation columns of two runs' curves, to float32 rounding."""
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert sorted(row) == sorted(want)
        for key in EVALUATED & set(row):
            assert same_evaluation(row[key], want[key]), (row["epoch"], key, row, want)


def assert_same_run(record: dict, expected: dict) -> None:
    """The same run: what training computed bit for bit, and the end-of-epoch evaluations of
    those same parameters to float32 rounding. One fresh-clone CI run (stop 40) saw a resumed
    run's train_cost_full differ from the never-stopped run's in the last float32 bit
    (1.4534867 against 1.4534866) while its training numbers, step costs and that member's
    test loss matched bit for bit: a whole-set evaluation is not always bit-reproducible from
    one process to the next on this CPU (cause not found: 80,000 repeats of its matrix
    products, at other alignments and under load, all matched). A resume that restores a state
    wrongly (a mask, an order, a moment) moves these by far more than 1e-6."""
    assert outcome(record) == outcome(expected)
    assert_same_evaluations(record["curves"], expected["curves"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run that was never stopped (in its own process, as the stopped ones are)."""
    from conftest import make_mnist

    tmp = tmp_path_factory.mktemp("reference")
    root = make_mnist(tmp / "data", n_train=640, n_test=100)
    done = run_process(population_config(root), tmp / "run", tmp)
    assert done.returncode == 0, done.stderr
    record = read_record(tmp / "run")
    assert record["status"] == "completed" and list(record["diverged"]) == ["4", "5"]
    return root, record


@pytest.mark.parametrize(
    "kills,overrides,pieces",
    [
        (["SIGKILL:4"], [], 1),  # before the first checkpoint: the run starts again
        (["SIGKILL:13", "SIGKILL:9"], [], 2),  # mid-epoch, twice: back to the epoch's start
        (["SIGKILL:7", "SIGKILL:16", "SIGKILL:2"], ["trainer.checkpoint_minutes=1e-9"], 4),
    ],
    ids=["before-any-checkpoint", "epoch-checkpoints", "step-checkpoints"],
)
def test_a_run_killed_at_any_step_resumes_to_the_same_curves(
    reference, tmp_path, kills, overrides, pieces
):
    root, expected = reference
    config = population_config(root, *overrides)
    out = tmp_path / "run"
    for kill in kills:
        done = run_process(config, out, tmp_path, kill)
        assert done.returncode == -signal.SIGKILL
        record = read_record(out)
        assert record is None or record["status"] == "running"  # it had no chance to say more
    done = run_process(config, out, tmp_path)
    assert done.returncode == 0, done.stderr
    record = read_record(out)
    assert record["status"] == "completed"
    assert_same_run(record, expected)
    assert not (out / CHECKPOINT_NAME).exists()  # removed once the run is complete
    # the pieces whose work the run kept (a hard kill loses what followed its checkpoint)
    assert len(record["pieces"]) == pieces


def test_the_comparison_passes_a_last_bit_of_evaluation_and_nothing_of_training(reference):
    """`assert_same_run` lets an evaluation differ in its last float32 bit, and fails on a
    difference in an evaluation beyond rounding or on any difference in what training
    computed."""
    _, expected = reference

    def changed(key: str, factor: float) -> dict:
        rows = [dict(row) for row in expected["curves"]]
        rows[-6][key] *= factor  # member 0, last epoch
        return {**expected, "curves": rows}

    assert_same_run(changed("train_cost_full", 1 + 2**-23), expected)
    with pytest.raises(AssertionError):
        assert_same_run(changed("train_cost_full", 1 + 1e-5), expected)
    with pytest.raises(AssertionError):
        assert_same_run(changed("test_accuracy", 0.99), expected)
    with pytest.raises(AssertionError):
        assert_same_run(changed("train_cost", 1 + 2**-23), expected)


def test_a_hard_kill_leaves_a_record_with_the_finished_epochs(reference, tmp_path):
    """SIGKILL in the second epoch (10 steps a pass): no handler runs, yet the record saved at
    the end of the first epoch is on disk, parseable, with that epoch's rows as the
    uninterrupted run has them."""
    root, expected = reference
    out = tmp_path / "run"
    done = run_process(population_config(root), out, tmp_path, "SIGKILL:15")
    assert done.returncode == -signal.SIGKILL
    record = read_record(out)
    assert record is not None and record["status"] == "running"
    first = [r for r in expected["curves"] if r["epoch"] == 1]
    assert outcome(record)["curves"] == outcome({**expected, "curves": first})["curves"]
    assert_same_evaluations(record["curves"], first)


@pytest.mark.parametrize("name,status", [("SIGTERM", 143), ("SIGINT", -signal.SIGINT)])
def test_a_signal_checkpoints_between_two_steps_and_the_run_continues(
    reference, tmp_path, name, status
):
    root, expected = reference
    config = population_config(root)
    out = tmp_path / "run"
    done = run_process(config, out, tmp_path, f"{name}:25")  # in the third epoch (10 steps each)
    assert done.returncode == status, done.stderr  # SystemExit(143); Python re-raises SIGINT
    record = read_record(out)
    assert record["status"] == "interrupted" and record["pieces"][-1]["to_step"] == 25
    assert (out / CHECKPOINT_NAME).is_file()
    assert "run the same command to continue" in done.stderr
    done = run_process(config, out, tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_run(read_record(out), expected)


def test_a_time_budget_pauses_the_run_and_the_same_call_continues(
    reference, tmp_path, monkeypatch, caplog
):
    root, expected = reference
    config = population_config(root)
    calls = {"n": 0}

    def spent_after_12_steps(self):
        calls["n"] += 1
        return calls["n"] > 12

    with monkeypatch.context() as patch, caplog.at_level("INFO", logger="adamrepro.train"):
        patch.setattr(StopRequests, "budget_spent", spent_after_12_steps)
        paused = train(config, tmp_path / "run")
    assert paused["status"] == "paused" and paused["pieces"][-1]["to_step"] == 12
    assert len(paused["curves"]) == 6  # the first epoch (10 steps) is in the record
    assert caplog.messages[-1] == (
        "paused (its time budget spent) at epoch 2, step 2 of 10: run the same command to continue"
    )
    caplog.clear()
    with caplog.at_level("INFO", logger="adamrepro.train"):
        resumed = train(config, tmp_path / "run")
    assert (
        caplog.messages[0]
        == f"resuming {tmp_path / 'run'} at epoch 2, step 2 of 10 (12 steps done)"
    )
    assert resumed["status"] == "completed"
    assert_same_run(resumed, expected)
    assert [p["status"] for p in resumed["pieces"]] == ["paused", "completed"]
    # the CPU time adds up over the pieces (the run's cost, whatever else ran beside it)
    pieces = [p["cpu_time_s"] for p in resumed["pieces"]]
    assert min(pieces) > 0 and resumed["cpu_time_s"] == pytest.approx(sum(pieces), abs=0.05)


def signal_at_step(patch: pytest.MonkeyPatch, signum: int, at: int) -> None:
    """Have this process send itself `signum` just before its `at`-th training step."""
    original, calls = Training._step, [0]

    def step(self, *args):
        calls[0] += 1
        if calls[0] == at:
            signal.raise_signal(signum)
        return original(self, *args)

    patch.setattr(Training, "_step", step)


def test_ctrl_c_in_this_process_checkpoints_says_how_to_continue_and_stops(
    reference, tmp_path, monkeypatch, caplog
):
    """SIGINT during step 5: the run finishes that step, checkpoints, logs how to continue and
    raises KeyboardInterrupt (Python's own handler, called after ours); the same call then
    continues it to the never-stopped run's curves."""
    root, expected = reference
    config = population_config(root)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with monkeypatch.context() as patch, caplog.at_level("INFO", logger="adamrepro.train"):
            signal_at_step(patch, signal.SIGINT, 5)
            with pytest.raises(KeyboardInterrupt):
                train(config, tmp_path / "run")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert caplog.messages[-1] == (
        "interrupted (by SIGINT) at epoch 1, step 5 of 10: run the same command to continue"
    )
    stopped = read_record(tmp_path / "run")
    assert stopped["status"] == "interrupted" and stopped["pieces"][-1]["to_step"] == 5
    assert (tmp_path / "run" / CHECKPOINT_NAME).is_file()
    assert_same_run(train(config, tmp_path / "run"), expected)


def test_a_spent_budget_starts_nothing(mnist_root, tmp_path):
    import time

    config = population_config(mnist_root, "trainer.max_minutes=1")
    record = train(config, tmp_path / "run", started=time.monotonic() - 61)
    assert record["status"] == "paused" and read_record(tmp_path / "run") is None


def test_a_budget_spent_by_the_first_step_still_takes_that_step(
    mnist_root, tmp_path, monkeypatch, caplog
):
    """A budget that runs out while the data load (after the start, before the first step):
    each piece takes one step, then pauses once, so a short budget still progresses."""
    monkeypatch.setattr(StopRequests, "budget_spent", lambda self: True)
    config = population_config(mnist_root, "trainer.max_minutes=5")
    for pieces in (1, 2):
        caplog.clear()
        with caplog.at_level("WARNING", logger="adamrepro.train"):
            record = train(config, tmp_path / "run")
        assert record["status"] == "paused"
        assert [(p["status"], p["to_step"]) for p in record["pieces"]] == [
            ("paused", k) for k in range(1, pieces + 1)
        ]
        assert caplog.messages == [
            f"paused (its time budget spent) at epoch 1, step {pieces} "
            "of 10: run the same command to continue"
        ]


def test_a_completed_run_is_not_trained_again_and_other_settings_are_refused(
    mnist_root, tmp_path, monkeypatch
):
    config = population_config(mnist_root, "trainer.epochs=1")
    first = train(config, tmp_path / "run")
    monkeypatch.setattr(Training, "run", lambda self: pytest.fail("trained again"))
    assert_same_run(train(config, tmp_path / "run"), first)
    # how it runs may change (a time budget, another data path); what it computes may not
    assert (
        train({**config, "trainer": {**config["trainer"], "max_minutes": 5}}, tmp_path / "run")[
            "status"
        ]
        == "completed"
    )
    other = {**config, "trainer": {**config["trainer"], "epochs": 2}}
    with pytest.raises(ConfigError, match=r"other settings \(trainer.epochs \(1 vs 2\)\)"):
        train(other, tmp_path / "run")
    monkeypatch.undo()
    again = train({**other, "resume": False}, tmp_path / "run")
    assert again["status"] == "completed" and len(again["curves"]) == 2 * 6


def test_a_run_where_every_member_diverges_fails_and_says_so(mnist_root, tmp_path):
    config = population_config(mnist_root, "grid.stepsize=[1e4,1e5]", "model.hidden=[8,8]")
    record = train(config, tmp_path / "run")
    assert record["status"] == "failed" and record["final"]
    assert record["reason"].startswith("every member diverged (the last at step")
    assert len(record["curves"]) == 4  # it stopped after the epoch in which the last one fell
    assert read_record(tmp_path / "run")["status"] == "failed"


def test_an_error_mid_run_leaves_a_failed_record_with_its_reason(mnist_root, tmp_path, monkeypatch):
    config = population_config(mnist_root, "trainer.epochs=2")
    original = Training._end_epoch

    def breaking(self, due, bar):
        original(self, due, bar)
        raise RuntimeError("CUDA error: an illegal memory access\nwas encountered")

    monkeypatch.setattr(Training, "_end_epoch", breaking)
    with pytest.raises(RuntimeError):
        train(config, tmp_path / "run")
    record = read_record(tmp_path / "run")
    assert record["status"] == "failed"
    assert record["reason"] == "CUDA error: an illegal memory access was encountered"
    assert len(record["curves"]) == 6  # the epoch it finished is kept


def test_a_full_disk_is_one_line_and_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "record.json"
    write_atomic(path, lambda f: f.write(b"old"))

    def full(file):
        file.write(b"ne")
        raise OSError(28, os.strerror(28))

    with pytest.raises(OutputError) as error:
        write_atomic(path, full)
    assert str(error.value) == f"could not write {path} (No space left on device)"
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["record.json"]
    with pytest.raises(OutputError, match="Not a directory"):
        write_atomic(path / "inside" / "x.json", lambda f: f.write(b"x"))

    def unpicklable(file):  # a writer's own error (torch.save of a lambda) passes through
        file.write(b"half")
        raise TypeError("cannot pickle")

    with pytest.raises(TypeError, match="cannot pickle"):
        write_atomic(path, unpicklable)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["record.json"]


def test_a_full_disk_during_a_run_fails_it_with_one_line(mnist_root, tmp_path, monkeypatch):
    import adamrepro.files

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(adamrepro.files.os, "fsync", no_space)
    with pytest.raises(OutputError, match=r"could not write .*No space left on device\)$"):
        train(population_config(mnist_root, "trainer.epochs=1"), tmp_path / "run")
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "run").glob(".*"))


def test_the_record_says_what_its_docstring_promises(mnist_root, tmp_path):
    import adamrepro.records

    config = population_config(
        mnist_root, "trainer.epochs=1", "optimizer.averaging=true", "trainer.evaluate_averaged=true"
    )
    record = train(config, tmp_path / "run")
    documented = adamrepro.records.__doc__
    for key in record:
        assert key in documented, f"record key {key} is not documented"
    for column in record["curves"][0]:
        assert column in documented, f"curve column {column} is not documented"
    assert record["device"]["name"] != "x86_64"
    assert record["code"]["commit"] is None or len(record["code"]["commit"]) == 40
    row = record["curves"][0]
    assert row["current_stepsize"] == pytest.approx(1e-3)  # no decay in this experiment
    assert math.isfinite(row["averaged_test_loss"])


def test_a_bf16_mixed_run_resumes_exactly_after_kills_and_stays_near_float32(reference, tmp_path):
    """precision=bf16-mixed on the CPU: killed twice between checkpoints, the run ends with
    the curves of the bf16-mixed run that was never stopped, bit for bit; its costs are
    float32 numbers within a few per cent of the float32 run's (the same dropout masks and
    minibatches: only the matmuls' rounding differs)."""
    root, float32 = reference
    config = population_config(root, "precision=bf16-mixed", "trainer.checkpoint_minutes=1e-9")
    straight, out = tmp_path / "straight", tmp_path / "run"
    assert run_process(config, straight, tmp_path).returncode == 0
    for kill in ("SIGKILL:9", "SIGKILL:11"):
        assert run_process(config, out, tmp_path, kill).returncode == -signal.SIGKILL
    done = run_process(config, out, tmp_path)
    assert done.returncode == 0, done.stderr
    expected, record = read_record(straight), read_record(out)
    assert record["config"]["precision"] == "bf16-mixed" and len(record["pieces"]) == 3
    assert_same_run(record, expected)
    assert outcome(record) != outcome(float32)  # it did compute in bfloat16
    assert record["diverged"] == float32["diverged"]
    # at the small stepsize (members 0 and 1, 1e-3) the two precisions follow one path (0.3%
    # apart here); at 3e-2 the paths part as any perturbation parts them, so only finite
    for mixed, full in zip(record["curves"], float32["curves"], strict=True):
        for key in ("train_cost", "train_cost_full", "test_loss"):
            if mixed["member"] < 2:
                assert abs(mixed[key] - full[key]) < 0.02 * full[key], (key, mixed, full)
            elif mixed["member"] < 4:
                assert math.isfinite(mixed[key])


def paused_after_one_step(config: dict, folder: Path) -> dict:
    """A run that took one step and paused, with its checkpoint: every budget spent at once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StopRequests, "budget_spent", lambda self: True)
        record = train({**config, "trainer": {**config["trainer"], "max_minutes": 5}}, folder)
    assert record["status"] == "paused" and (folder / CHECKPOINT_NAME).is_file()
    return record


def test_a_checkpoint_of_another_run_is_one_line(mnist_root, tmp_path):
    config = population_config(mnist_root, "trainer.epochs=1")
    paused_after_one_step(config, tmp_path / "adam")
    other = population_config(mnist_root, "trainer.epochs=1", "optimizer=adagrad")
    paused_after_one_step(other, tmp_path / "adagrad")
    shutil.copyfile(tmp_path / "adagrad" / CHECKPOINT_NAME, tmp_path / "adam" / CHECKPOINT_NAME)
    with pytest.raises(DataError) as error:
        train(config, tmp_path / "adam")
    text = str(error.value)
    assert text.startswith(f"{tmp_path / 'adam' / CHECKPOINT_NAME} does not fit this run (")
    assert "(it is a run with other settings: " in text and "\n" not in text
    assert text.endswith("): delete it to start the run afresh")


def test_a_damaged_record_beside_its_checkpoint_continues_from_the_checkpoint(mnist_root, tmp_path):
    config = population_config(mnist_root, "trainer.epochs=1")
    straight = train(config, tmp_path / "straight")
    paused_after_one_step(config, tmp_path / "run")
    (tmp_path / "run" / "record.json").write_text('{"format": 1, "status": "run')  # cut short
    record = train(config, tmp_path / "run")
    assert record["status"] == "completed" and len(record["pieces"]) == 2
    assert_same_run(record, straight)


def test_a_run_continues_on_its_own_data_only(mnist_root, tmp_path):
    from conftest import make_mnist

    config = population_config(mnist_root, "trainer.epochs=1")
    paused_after_one_step(config, tmp_path / "run")
    other = make_mnist(tmp_path / "other_copy", seed=1)
    moved = {**config, "data": {**config["data"], "root": str(other)}}
    with pytest.raises(ConfigError) as error:
        train(moved, tmp_path / "run")
    assert str(error.value).startswith(f"{tmp_path / 'run'} holds a run on other data (MNIST at ")
    assert str(error.value).endswith(
        "choose another output folder, or add resume=false to replace it"
    )
    # the same copy at another path is the same data: the run continues
    copy = tmp_path / "same_copy"
    shutil.copytree(mnist_root, copy)
    again = train({**config, "data": {**config["data"], "root": str(copy)}}, tmp_path / "run")
    assert again["status"] == "completed"


def test_a_run_that_could_not_start_leaves_its_folder_free(mnist_root, tmp_path):
    config = population_config(mnist_root, "trainer.epochs=1")
    bad = {**config, "optimizer": {**config["optimizer"], "beta1": 1.5}}
    with pytest.raises(ConfigError):
        train(bad, tmp_path / "run")
    assert read_record(tmp_path / "run")["status"] == "failed"
    assert train(config, tmp_path / "run")["status"] == "completed"


def test_files_written_whole_have_the_usual_permissions(tmp_path):
    """Written through a unique temporary file (mkstemp makes it private), the file ends as
    open() would have made it: readable by others under the usual umask."""
    umask = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "record.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(umask)
    from adamrepro import files

    assert (path.stat().st_mode & 0o777) == 0o666 & ~files._UMASK
    assert not list(tmp_path.glob(".*.tmp"))
