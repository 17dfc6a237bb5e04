"""One self-describing record per run (DeepOBS-style), and the tidy tables made from them.

A record is a JSON file `record.json` in the run's output directory:
    format      "adamrepro.record/1"
    status      "running" | "completed" | "interrupted"
    config      the resolved Hydra config of the run
    members     one dict per member of the population: its optimizer settings and seed
    curves      one row per (member, epoch): train_cost (mean minibatch cost over the epoch,
                what the paper plots), train_cost_full (whole training set at the epoch's end),
                test_loss, test_accuracy, stepsize (at the epoch's end), wall_time_s
    diverged    member -> the step at which it diverged (absent: it did not)
    step_costs  (when trainer.step_log_epochs > 0) steps_per_epoch, and cost: one list per
                step of the first epochs, the minibatch cost of each member (NaN: diverged)
    versions, device, threads, seed, started, wall_time_s
It is rewritten after every epoch, so an interrupted run keeps what it did.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

FORMAT = "adamrepro.record/1"
RUN_SETTINGS = ("model", "trainer")  # config groups copied into the tidy table
BOOKKEEPING = {"trainer.progress", "trainer.eval_batch_size"}
RECORD_NAME = "record.json"


def environment(device: torch.device) -> dict[str, Any]:
    import adamrepro

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "versions": {
            "adamrepro": adamrepro.__version__,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
        },
        "device": {"type": device.type, "name": name or platform.machine()},
        "threads": torch.get_num_threads(),
        "host": platform.node(),
    }


def save_record(record: dict[str, Any], directory: Path) -> Path:
    """Write atomically (a crash mid-write leaves the previous record whole)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RECORD_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=True))
    os.replace(tmp, path)
    return path


def find_records(roots: Iterable[str | Path]) -> list[Path]:
    paths: list[Path] = []
    for root in roots:
        root = Path(root)
        paths.extend([root] if root.is_file() else sorted(root.rglob(RECORD_NAME)))
    return paths


def load_records(roots: Iterable[str | Path]) -> pd.DataFrame:
    """Every curve row of every record under `roots`, joined with its member's settings:
    one tidy table (run, member, settings..., epoch, train_cost, ...)."""
    frames = []
    for path in find_records(roots):
        record = json.loads(path.read_text())
        if record.get("format") != FORMAT:
            continue
        curves = pd.DataFrame(record["curves"])
        if curves.empty:
            continue
        members = pd.DataFrame(record["members"])
        members["member"] = range(len(members))
        members["diverged_at_step"] = [record["diverged"].get(str(k)) for k in members["member"]]
        frame = curves.merge(members, on="member", suffixes=("", "_setting"))
        for group in RUN_SETTINGS:  # the run's own settings, shared by its members
            for key, value in (record["config"].get(group) or {}).items():
                if f"{group}.{key}" not in BOOKKEEPING:
                    scalar = json.dumps(value) if isinstance(value, (list, dict)) else value
                    frame[f"{group}.{key}"] = scalar  # a list (layer sizes) as its JSON text
        frame.insert(0, "run", str(path.parent))
        frame["status"] = record["status"]
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"no {RECORD_NAME} found under {', '.join(map(str, roots))}")
    return pd.concat(frames, ignore_index=True)


def load_step_costs(roots: Iterable[str | Path]) -> pd.DataFrame:
    """The per-step costs that runs logged in their first epochs (`trainer.step_log_epochs`):
    one row per run, member and step, with `epoch` = step / steps per epoch."""
    frames = []
    for path in find_records(roots):
        record = json.loads(path.read_text())
        logged = record.get("step_costs")
        if record.get("format") != FORMAT or not logged or not logged["cost"]:
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
