"""The tidy tables made from run records (records.py): every curve row joined with its member's
settings, each member's setting named explicitly (`setting`), and the runs a figure may use.

The settings of a member are its optimizer's settings (every optimizer's defaults, its name,
SFO's subfunctions) and the run's own (`model.*`, `trainer.*`): `setting_columns`. A column
that is neither (a new curve column) is never taken for a setting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .records import HOW_TO_RUN, RECORD_NAME, RUN_SETTINGS, epochs_done, read_record

if TYPE_CHECKING:  # pandas is imported where tables are made: a run does not need it
    import pandas as pd


def _setting_keys() -> frozenset[str]:
    from .optim import OPTIMIZERS

    keys = {key for optimizer in OPTIMIZERS.values() for key in optimizer.defaults_}
    return frozenset({"name", "subfunctions", *keys})


SETTING_KEYS = _setting_keys()


def setting_columns(table: pd.DataFrame) -> list[str]:
    """The columns of a tidy table that are settings of a member, in the table's order."""
    return [c for c in table.columns if c in SETTING_KEYS or c.split(".", 1)[0] in RUN_SETTINGS]


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
    (run, member, settings..., epoch, train_cost, ..., setting). `setting` names a member's
    setting within its run: members that differ only in seed share it."""
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
    table = pd.concat(frames, ignore_index=True)
    values = table[setting_columns(table)].itertuples(index=False)
    table["setting"] = table["run"] + "#" + pd.Series([repr(tuple(v)) for v in values])
    return table


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
        frames.append(
            pd.DataFrame(
                {
                    "run": str(path.parent),
                    "member": np.tile(np.arange(members), steps),
                    "step": np.repeat(np.arange(1, steps + 1), members),
                    "epoch": np.repeat(np.arange(1, steps + 1), members)
                    / logged["steps_per_epoch"],
                    "cost": cost.reshape(-1),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["run", "member", "step", "epoch", "cost"])
    return pd.concat(frames, ignore_index=True)
