"""One self-describing record per run (DeepOBS-style): made (`new_record`), checked
(`check_record`), saved and read; the tables made from records are in `tables`.

A record is a JSON file `record.json` in the run's output directory:
    format      "adamrepro.record/2"
    experiment  the experiment config's name (experiment=...)
    status      running | paused (its time budget spent) | interrupted (a signal) |
                failed (`reason` says why in one line) | completed
    config      the resolved Hydra config of the run
    members     one dict per member of the population: its optimizer settings and seed
    curves      one row per (member, epoch): train_cost (mean minibatch cost over the epoch,
                what the paper plots), train_cost_full (whole training set at the epoch's end),
                test_loss, test_accuracy, current_stepsize (the member's stepsize at the
                epoch's last step, after any decay), wall_time_s; with
                trainer.evaluate_averaged also averaged_train_cost_full, averaged_test_loss,
                averaged_test_accuracy (the temporal average of section 7.2); with
                trainer.train_eval_subset, train_cost_subset (the cost on that many fixed
                training rows); with trainer.evaluate_initial, rows of epoch 0: the costs
                before the first step (train_cost NaN: no minibatch yet, wall_time_s 0)
    diverged    member -> the step at which it diverged (absent: it did not)
    pruned      (sweep.halving) member -> the epoch after which halving stopped it (absent:
                it went on)
    step_costs  (when trainer.step_log_epochs > 0) steps_per_epoch, and cost: one list per
                step of the first epochs, the minibatch cost of each member (NaN: diverged)
    step_parameters  (trainer.step_log_parameters, small problems) names, initial: each
                member's parameters before the first step, values: one list per logged step
                of each member's parameters after it
    moment_stats  (trainer.moment_stats_every > 0) every so many steps, per parameter tensor
                and live member: median and 90th percentile of sqrt(vhat), eps, and the
                fraction of entries below eps (step, epoch, parameter, member, ...)
    data        which copy of the data set the run read, and whether it is lossless (`label`
                names it in figures; e.g. "CIFAR-10 (JPEG-75 copy)")
    pieces      one entry per process whose work the record holds: when and where it started
                (from_step: steps done before it), host, pid, device, code, and how it ended
                (status, to_step, epochs_done, wall_time_s, cpu_time_s; a process killed outright
                leaves no end, and its work after the last checkpoint is redone)
    reason, final  (failed runs) why, in one line; final: training again cannot help
    versions, device, threads, host, code (commit, dirty), seed, started, updated, wall_time_s,
                cpu_time_s (the process's CPU time over its threads, summed over the pieces:
                what the run cost, whatever else ran on the machine)
It is rewritten atomically after every epoch and whenever the run stops, so an interrupted run
keeps what it did; the checkpoint beside it (`checkpoint.pt`) lets the run continue exactly.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .files import write_text_atomic

if TYPE_CHECKING:  # pandas is imported where tables are made: a run does not need it
    pass

FORMAT = "adamrepro.record/2"
FORMATS = ("adamrepro.record/1", FORMAT)  # /1: before run states and resume
STATUSES = ("running", "paused", "interrupted", "failed", "completed")
RECORD_NAME = "record.json"
# Settings that say how a run is carried out, not what it computes: the pieces of one run may
# differ in them (another machine, another data path, another time budget, another name: a
# run started by `python -m adamrepro.train -m` continues under a protocol), and they are not
# columns of the tidy table.
HOW_TO_RUN = frozenset(
    {
        "experiment_name",
        "trainer.progress",
        "trainer.eval_batch_size",
        "trainer.checkpoint_every",
        "trainer.checkpoint_minutes",
        "trainer.max_minutes",
        "trainer.keep_checkpoint",
        "data.root",
        "data.cache_dir",
        "data.download",
        "data.verify",
        "device",
        "resume",
        "allow_half_precision",
    }
)
RUN_SETTINGS = ("model", "trainer")  # config groups copied into the tidy table
# settings newer than some records (dotted: one level down), as those records ran
ADDED_SETTINGS = {"precision": "32-true", "model.init_normal": None}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), not just its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def code_version() -> dict[str, Any]:
    """The commit the package was run from, and whether its tracked files had changes
    (None where the package is not in a git work tree)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


code_version()  # taken once, at import: the commit this process's code came from, even if
#                the work tree moves on while a long run goes


def environment(device: torch.device) -> dict[str, Any]:
    """Where and with what a run (or a piece of it) ran: versions, device, numerics, code."""
    import adamrepro

    described: dict[str, Any] = {"type": device.type, "name": cpu_name()}
    if device.type == "cuda":
        described.update(
            name=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            tf32_cudnn=torch.backends.cudnn.allow_tf32,
        )
    described["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    return {
        "versions": {
            "adamrepro": adamrepro.__version__,
            "python": sys.version.split()[0],
            "torch": str(torch.__version__),  # a plain str: checkpoints load weights_only
        },
        "device": described,
        "threads": torch.get_num_threads(),
        "host": platform.node(),
        "code": code_version(),
    }


REQUIRED = ("format", "status", "config", "members", "curves", "diverged")


def new_record(
    config: dict[str, Any],
    members: list[dict[str, Any]],
    *,
    status: str = "running",
    seed: int | None = None,
    device: torch.device | None = None,
    data: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A run's record as it starts (the loop's, SFO's, or that of a run that could not start:
    `status="failed"` with a `reason`): the keys above that every record has, then `extra`."""
    record: dict[str, Any] = {
        "format": FORMAT,
        "status": status,
        "experiment": config.get("experiment_name") or "",
        "config": config,
        "members": members,
        "seed": seed,
        "started": now(),
        "wall_time_s": 0.0,
        **(environment(device) if device is not None else {}),
        "data": data or {},
        "curves": [],
        "diverged": {},
        **extra,
    }
    check_record(record)
    return record


def check_record(record: Any) -> None:
    """Raise ValueError unless `record` is a record of a known format with every key a record
    has and a known status."""
    if not isinstance(record, dict) or record.get("format") not in FORMATS:
        raise ValueError(f"not a record of a known format ({', '.join(FORMATS)})")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"a record without {', '.join(missing)}")
    if record["status"] not in STATUSES:
        raise ValueError(f"a record with the unknown status {record['status']!r}")


def save_record(record: dict[str, Any], directory: Path) -> Path:
    """Write atomically (a crash or a full disk mid-write leaves the previous record whole)."""
    record["updated"] = now()
    text = json.dumps(record, indent=1, allow_nan=True)
    return write_text_atomic(Path(directory) / RECORD_NAME, text)


def read_record(directory: Path) -> dict[str, Any] | None:
    """The record in `directory`, or None where there is none (or it cannot be parsed, or is
    not a whole record)."""
    path = Path(directory) / RECORD_NAME
    try:
        record = json.loads(path.read_text())
        check_record(record)
    except (OSError, ValueError):
        return None
    return record


def run_identity(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide what a run computes: `config` without HOW_TO_RUN (a setting
    added to the project later counts at its default in a record that predates it)."""
    identity: dict[str, Any] = {}
    for key, value in config.items():
        if key in HOW_TO_RUN:
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if f"{key}.{k}" not in HOW_TO_RUN}
        identity[key] = value
    for dotted, default in ADDED_SETTINGS.items():
        group, _, name = dotted.partition(".")
        if not name:
            identity.setdefault(group, default)
        elif isinstance(identity.get(group), dict):
            identity[group] = {name: default, **identity[group]}
    return identity


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings in which two configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')} ({a!r} vs {b!r})"]


def epochs_done(record: dict[str, Any]) -> int:
    return max((int(row["epoch"]) for row in record.get("curves", [])), default=0)
