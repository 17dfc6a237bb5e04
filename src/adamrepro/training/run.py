"""A run in an output folder: started, or continued from what the folder holds (the resume
policy), and the record of a run that could not start."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ..checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
)
from ..errors import USER_ERRORS, ConfigError, DataError, OutputError, one_line
from ..files import exclusive
from ..records import (
    RECORD_NAME,
    differences,
    new_record,
    read_record,
    run_identity,
    save_record,
)
from ..settings import RunSettings
from .loop import Training

log = logging.getLogger("adamrepro.train")  # one name for the loop's messages, in every module


def train(
    config: DictConfig | Mapping[str, Any], out_dir: str | Path, started: float | None = None
) -> dict[str, Any]:
    """Train the population that `config` describes into `out_dir`, or continue the run that
    is there; write and return its record. `started` (a `time.monotonic()` value, default
    now) is when the time budget `trainer.max_minutes` began."""
    cfg: dict[str, Any] = (
        OmegaConf.to_container(config, resolve=True)
        if isinstance(config, DictConfig)
        else dict(config)
    )  # type: ignore[assignment]
    out_dir = Path(out_dir)
    with exclusive(out_dir):  # one process per output folder
        return _train(cfg, out_dir, started)


def _train(cfg: dict[str, Any], out_dir: Path, started: float | None) -> dict[str, Any]:
    try:
        settings = RunSettings.from_config(cfg)
        budget = settings.trainer.max_minutes
        deadline = None if budget is None else (started or time.monotonic()) + 60 * budget
        existing = _existing_run(cfg, settings, out_dir)
        if existing is not None and (existing["status"] == "completed" or existing.get("final")):
            log.info("%s is %s already: nothing to do", out_dir, existing["status"])
            return existing
        if deadline is not None and time.monotonic() >= deadline:
            log.warning(
                "the time budget (trainer.max_minutes=%g) is spent: %s not started", budget, out_dir
            )
            return existing or {"status": "paused", "curves": [], "members": []}
        training = Training(cfg, settings, out_dir, deadline)
        if existing is not None:
            _check_same_data(existing, training.data.description, out_dir)
    except USER_ERRORS as error:
        _record_failure(cfg, out_dir, error)
        raise
    checkpoint = load_checkpoint(out_dir, settings.device) if existing is not None else None
    if checkpoint is not None:
        try:  # a checkpoint says which run it is (the record inside it)
            changed = differences(run_identity(checkpoint["record"]["config"]), run_identity(cfg))
            if changed:
                raise ValueError("it is a run with other settings: " + "; ".join(changed[:3]))
            training.resume_from(checkpoint)
        except (KeyError, RuntimeError, ValueError, IndexError, TypeError) as error:
            raise DataError(
                f"{out_dir / CHECKPOINT_NAME} does not fit this run ({one_line(error)[:200]}): "
                "delete it to start the run afresh"
            ) from None
    elif existing is not None:
        log.info("%s holds no checkpoint: starting the run from its beginning", out_dir)
    return training.run()


def _existing_run(
    cfg: dict[str, Any], settings: RunSettings, out_dir: Path
) -> dict[str, Any] | None:
    """The record of the run already in `out_dir` that this one continues; None for a fresh
    start (nothing there, or `resume=false`, which clears the folder's run)."""
    existing = read_record(out_dir)
    if existing is None and (out_dir / RECORD_NAME).is_file():
        if (out_dir / CHECKPOINT_NAME).is_file() and settings.resume:
            log.warning(
                "%s cannot be read: the run continues from its checkpoint's copy of it",
                out_dir / RECORD_NAME,
            )
            existing = load_checkpoint(out_dir, torch.device("cpu"))["record"]  # type: ignore[index]
        else:
            log.warning(
                "%s cannot be read and there is no checkpoint: the run starts afresh",
                out_dir / RECORD_NAME,
            )
    if existing is None:
        return None
    if existing.get("status") == "failed" and not existing.get("members"):
        return None  # a run that could not start: nothing to continue, its folder is free
    if not settings.resume:
        log.info("resume=false: the run in %s is started afresh", out_dir)
        for name in (RECORD_NAME, CHECKPOINT_NAME):
            (out_dir / name).unlink(missing_ok=True)
        return None
    changed = differences(run_identity(existing["config"]), run_identity(cfg))
    if changed:
        shown = "; ".join(changed[:3]) + ("; ..." if len(changed) > 3 else "")
        raise ConfigError(
            f"{out_dir} holds a run with other settings ({shown}): choose another output folder, "
            "or add resume=false to replace it"
        )
    return existing


def _check_same_data(existing: dict[str, Any], data: dict[str, Any], out_dir: Path) -> None:
    """A run continues on the data it started on: another copy (another fingerprint) is one
    ConfigError line. Records older than the fingerprint are not checked."""
    before = (existing.get("data") or {}).get("fingerprint")
    if before is not None and before != data.get("fingerprint"):
        raise ConfigError(
            f"{out_dir} holds a run on other data ({existing['data'].get('label')} at "
            f"{existing['data'].get('path', '?')}, fingerprint {before}; now {data.get('label')} "
            f"at {data.get('path', '?')}, {data.get('fingerprint')}): choose another output "
            "folder, or add resume=false to replace it"
        )


def _record_failure(cfg: dict[str, Any], out_dir: Path, error: Exception) -> None:
    """A run that could not start leaves a record that says why, where no record was."""
    if read_record(out_dir) is not None or isinstance(error, OutputError):
        return
    with contextlib.suppress(OutputError):
        save_record(new_record(cfg, [], status="failed", reason=one_line(error)), out_dir)
