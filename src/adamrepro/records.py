"""One self-describing record per run (DeepOBS-style), and the tidy tables made from them.

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
                (status, to_step, epochs_done, wall_time_s; a process killed outright
                leaves no end, and its work after the last checkpoint is redone)
    reason, final  (failed runs) why, in one line; final: training again cannot help
    versions, device, threads, host, code (commit, dirty), seed, started, updated, wall_time_s
It is rewritten atomically after every epoch and whenever the run stops, so an interrupted run
keeps what it did; the checkpoint beside it (`checkpoint.pt`) lets the run continue exactly.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .files import write_text_atomic

if TYPE_CHECKING:  # pandas is imported where tables are made: a run does not need it
    import pandas as pd

FORMAT = "adamrepro.record/2"
FORMATS = ("adamrepro.record/1", FORMAT)  # /1: before run states and resume
STATUSES = ("running", "paused", "interrupted", "failed", "completed")
RECORD_NAME = "record.json"
# Settings that say how a run is carried out, not what it computes: the pieces of one run may
# differ in them (another machine, another data path, another time budget, another name: a
# run started by `python -m adamrepro.train -m` continues under a protocol), and they are not
# columns of the tidy table.
HOW_TO_RUN = frozenset({
    "experiment_name",
    "trainer.progress", "trainer.eval_batch_size", "trainer.checkpoint_every",
    "trainer.checkpoint_minutes", "trainer.max_minutes", "trainer.keep_checkpoint",
    "data.root", "data.cache_dir", "data.download", "data.verify", "device", "resume",
    "allow_half_precision",
})  # fmt: skip
RUN_SETTINGS = ("model", "trainer")  # config groups copied into the tidy table
ADDED_SETTINGS = {"precision": "32-true"}  # root settings newer than some records, as they ran


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
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=10)  # fmt: skip
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


def save_record(record: dict[str, Any], directory: Path) -> Path:
    """Write atomically (a crash or a full disk mid-write leaves the previous record whole)."""
    record["updated"] = now()
    text = json.dumps(record, indent=1, allow_nan=True)
    return write_text_atomic(Path(directory) / RECORD_NAME, text)


def read_record(directory: Path) -> dict[str, Any] | None:
    """The record in `directory`, or None where there is none (or it cannot be parsed)."""
    path = Path(directory) / RECORD_NAME
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") in FORMATS else None


def run_identity(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide what a run computes: `config` without HOW_TO_RUN (a setting
    added to the project later counts at its default in a record that predates it)."""
    identity: dict[str, Any] = dict(ADDED_SETTINGS)
    for key, value in config.items():
        if key in HOW_TO_RUN:
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if f"{key}.{k}" not in HOW_TO_RUN}
        identity[key] = value
    return identity


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings in which two configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')} ({a!r} vs {b!r})"]


def find_records(roots: Iterable[str | Path]) -> list[Path]:
    paths: list[Path] = []
    for root in roots:
        root = Path(root)
        paths.extend([root] if root.is_file() else sorted(root.rglob(RECORD_NAME)))
    return paths


def read_records(roots: Iterable[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) for every record under `roots` (unparseable files are skipped)."""
    out = []
    for path in find_records(roots):
        record = read_record(path.parent)
        if record is not None:
            out.append((path, record))
    return out


def epochs_done(record: dict[str, Any]) -> int:
    return max((int(row["epoch"]) for row in record.get("curves", [])), default=0)


def completed_runs(
    records: list[tuple[Path, dict[str, Any]]], epochs: int | None = None
) -> tuple[list[tuple[Path, dict[str, Any]]], list[dict[str, str]]]:
    """The records a figure may use, and those it must leave out, each with the reason: only
    completed runs, and of those only the ones with the expected number of epochs (`epochs`,
    else the most that any completed run has)."""
    left_out: list[dict[str, str]] = []
    done = []
    for path, record in records:
        status = record.get("status", "?")
        if status == "completed":
            done.append((path, record))
            continue
        why = f"{status} after {epochs_done(record)} of {record['config']['trainer']['epochs']}"
        why += " epochs"
        if status == "failed":
            why += f": {record.get('reason', 'no reason recorded')}"
        elif status == "running":
            why += f" (last written {record.get('updated', record.get('started'))}; killed?)"
        left_out.append({"run": str(path.parent), "why": why})
    expected = epochs or max((epochs_done(r) for _, r in done), default=0)
    kept = []
    for path, record in done:
        if epochs_done(record) != expected:
            why = f"completed, but with {epochs_done(record)} epochs where {expected} are expected"
            left_out.append({"run": str(path.parent), "why": why})
        else:
            kept.append((path, record))
    return kept, left_out


def tidy(records: list[tuple[Path, dict[str, Any]]]) -> pd.DataFrame:
    """Every curve row of the records, joined with its member's settings: one tidy table
    (run, member, settings..., epoch, train_cost, ...)."""
    import pandas as pd

    frames = []
    for path, record in records:
        curves = pd.DataFrame(record["curves"])
        if curves.empty:
            continue
        members = pd.DataFrame(record["members"])
        members["member"] = range(len(members))
        members["diverged_at_step"] = [record["diverged"].get(str(k)) for k in members["member"]]
        pruned = record.get("pruned") or {}
        members["pruned_at_epoch"] = [pruned.get(str(k)) for k in members["member"]]
        frame = curves.merge(members, on="member", suffixes=("", "_setting"))
        for group in RUN_SETTINGS:  # the run's own settings, shared by its members
            for key, value in (record["config"].get(group) or {}).items():
                if f"{group}.{key}" not in HOW_TO_RUN:
                    scalar = json.dumps(value) if isinstance(value, (list, dict)) else value
                    frame[f"{group}.{key}"] = scalar  # a list (layer sizes) as its JSON text
        frame.insert(0, "run", str(path.parent))
        frame["status"] = record["status"]
        frames.append(frame)
    if not frames:
        raise FileNotFoundError("no record with curves among the runs given")
    return pd.concat(frames, ignore_index=True)


def load_records(roots: Iterable[str | Path]) -> pd.DataFrame:
    """The tidy table of every record under `roots`, whatever its status."""
    roots = list(roots)
    records = read_records(roots)
    if not records:
        raise FileNotFoundError(f"no {RECORD_NAME} found under {', '.join(map(str, roots))}")
    return tidy(records)


def load_step_costs(records: list[tuple[Path, dict[str, Any]]]) -> pd.DataFrame:
    """The per-step costs that runs logged in their first epochs (`trainer.step_log_epochs`):
    one row per run, member and step, with `epoch` = step / steps per epoch."""
    import pandas as pd

    frames = []
    for path, record in records:
        logged = record.get("step_costs")
        if not logged or not logged["cost"]:
            continue
        cost = np.asarray(logged["cost"], dtype=float)  # (steps, members)
        steps, members = cost.shape
        frames.append(pd.DataFrame({
            "run": str(path.parent),
            "member": np.tile(np.arange(members), steps),
            "step": np.repeat(np.arange(1, steps + 1), members),
            "epoch": np.repeat(np.arange(1, steps + 1), members) / logged["steps_per_epoch"],
            "cost": cost.reshape(-1),
        }))  # fmt: skip
    if not frames:
        return pd.DataFrame(columns=["run", "member", "step", "epoch", "cost"])
    return pd.concat(frames, ignore_index=True)
