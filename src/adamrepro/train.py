"""The command line of the training loop (adamrepro.training).

    python -m adamrepro.train experiment=mnist_logreg optimizer=adam optimizer.stepsize=3e-3
    python -m adamrepro.train -m experiment=mnist_logreg optimizer=adam,adagrad \
        optimizer.stepsize=1e-3,1e-2

A run trains a *population*: G members of the same model, each with its own hyperparameters
(a grid point) and seed. Members with the same seed share their initialisation and their
minibatches; each seed has its own. An ordinary run is a population of one.

A run survives being stopped. It writes a checkpoint (`checkpoint.pt`, beside `record.json`)
every `trainer.checkpoint_every` epochs, every `trainer.checkpoint_minutes`, and when it is
asked to stop: by SIGINT or SIGTERM (state "interrupted"), or by its time budget
`trainer.max_minutes`, counted from the start of the command (state "paused"). The same
command, in the same output folder, continues it exactly where it stopped; a completed run is
not trained again (`resume=false` starts it afresh).

Exit status of the command line: 0 completed (or complete already); 2 a bad setting, data
that is missing or damaged, or an output that cannot be written (one line); 3 every member
diverged; 75 paused (run the same command again to continue); 130 or 143 interrupted by
SIGINT or SIGTERM (the same command continues); 1 anything unexpected. In a `-m` sweep a job
that fails is reported and the others still run; the sweep then exits with 1.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .errors import USER_ERRORS, OutputError, hydra_line, one_line
from .files import check_writable
from .records import RECORD_NAME
from .training import CONFIG_DIR, train

COMMAND_STARTED = time.monotonic()  # trainer.max_minutes counts from the command's start
EXIT = {"config": 2, "diverged": 3, "paused": 75, "SIGINT": 130, "SIGTERM": 143}


class JobFailed(CompactHydraException):
    """A job of a `-m` sweep that did not complete: Hydra marks it failed, runs the others, and
    ends the sweep with exit status 1, printing this one line (no traceback)."""


def summary(record: dict[str, Any]) -> str:
    """The final line of a run: its state, the best member and how many diverged."""
    members = record.get("members") or []
    epochs = record["config"]["trainer"]["epochs"]
    last = [r for r in record.get("curves", []) if r["epoch"] == epochs]
    finite = [r for r in last if math.isfinite(r["train_cost"])]
    diverged = len(record.get("diverged", {}))
    text = f"{record['status']}: {len(members)} members, {diverged} diverged"
    if finite:
        best = min(finite, key=lambda r: r["train_cost"])
        m = members[best["member"]]
        setting = ", ".join(
            f"{k} {m[k]:g}"
            for k in ("stepsize", "momentum", "beta1", "beta2")
            if isinstance(m.get(k), (int, float))
        )
        text += (
            f"; best: member {best['member']} ({m.get('label', m['name'])}, {setting}, "
            f"seed {m['seed']}), final train cost {best['train_cost']:.4g}"
        )
    return text


def objective(record: dict[str, Any]) -> float:
    """What a sweep minimises (Hydra's sweepers read it): the lowest final training cost of
    the run's members that did not diverge, NaN when all did."""
    epochs = record["config"]["trainer"]["epochs"]
    final = [r["train_cost"] for r in record["curves"] if r["epoch"] == epochs]
    return min((c for c in final if math.isfinite(c)), default=math.nan)


def main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    @hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
    def _run(cfg: DictConfig) -> float:
        hydra_cfg = HydraConfig.get()
        out_dir = Path(hydra_cfg.runtime.output_dir)
        sweep = hydra_cfg.mode == RunMode.MULTIRUN
        job = f"job {hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task)}): " if sweep else ""

        def stop(message: str, code: int) -> float:
            print(f"{job}{message}", file=sys.stderr)
            if sweep:
                raise JobFailed(message)
            sys.exit(code)

        try:
            record = train(cfg, out_dir, started=COMMAND_STARTED)
        except USER_ERRORS as error:
            return stop(f"error: {error}", EXIT["config"])
        except torch.cuda.OutOfMemoryError as error:
            reason = one_line(error)[:200]
            return stop(
                f"error: out of GPU memory ({reason}); train fewer members per run "
                "or lower trainer.eval_batch_size",
                EXIT["config"],
            )
        except KeyboardInterrupt:
            print(
                f"{job}interrupted: what was done is in {out_dir}; the same command continues it",
                file=sys.stderr,
            )
            sys.exit(EXIT["SIGINT"])
        status = record["status"]
        if status == "paused":
            return stop(
                f"paused: the time budget is spent; {out_dir} continues with the same command",
                EXIT["paused"],
            )
        if status == "failed":
            return stop(
                f"failed: {record.get('reason')} ({out_dir / RECORD_NAME})", EXIT["diverged"]
            )
        print(f"{job}{summary(record)}; record: {out_dir / RECORD_NAME}")
        return objective(record)

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    # Hydra's errors reach us whole (not printed over several lines with exit 1): a mistake in
    # the command line is one line and exit 2, like every other bad setting.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _run()
    except JobFailed as failed:  # a sweep whose jobs (each reported above) did not all complete
        print(f"error: {one_line(failed)}", file=sys.stderr)
        sys.exit(1)
    except (HydraException, OmegaConfBaseException) as error:
        print(f"error: {hydra_line(error)}", file=sys.stderr)
        sys.exit(EXIT["config"])
    except OSError as error:  # Hydra's own files (.hydra/config.yaml) on a full or read-only disk
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: cannot write the run's files: {error.strerror}{where}", file=sys.stderr)
        sys.exit(EXIT["config"])


class CheckOutputFolder(Callback):
    """A Hydra callback: before Hydra makes the run's (or the sweep's) output folder, one
    line and exit status 2 if it cannot be made or written (Hydra would print a traceback)."""

    def _check(self, folder: str) -> None:
        try:
            check_writable(Path(folder))
        except OutputError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT["config"])

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir)
        launcher = str(config.hydra.launcher.get("_target_", ""))
        if "SlurmLauncher" in launcher and shutil.which("srun") is None:
            print(
                "error: hydra/launcher=submitit_slurm needs a SLURM cluster (no srun on this "
                "machine): run the sweep here with the default launcher or "
                "hydra/launcher=joblib",
                file=sys.stderr,
            )
            sys.exit(EXIT["config"])


if __name__ == "__main__":
    # The importable module's objects, not __main__'s: launchers pickle them (JobFailed).
    from adamrepro.train import main as _main

    _main()
