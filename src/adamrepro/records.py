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
                    frame[f"{group}.{key}"] = value
        frame.insert(0, "run", str(path.parent))
        frame["status"] = record["status"]
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"no {RECORD_NAME} found under {', '.join(map(str, roots))}")
    return pd.concat(frames, ignore_index=True)
