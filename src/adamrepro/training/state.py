"""A run's state beyond its tensors: the pieces of work its record lists (one per process),
its checkpoints, and how it stops when asked (a signal, its time budget) and continues."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from ..checkpoint import StopRequests, rng_state, save_checkpoint, set_rng_state
from ..records import environment, epochs_done, now, save_record

log = logging.getLogger("adamrepro.train")  # one name for the loop's messages, in every module


@dataclass
class Progress:
    """Where the loop is: the epoch in progress, its steps done (`position`), all steps done,
    and what the epoch has summed so far; `order` holds the minibatch generators' states from
    before this epoch's draw."""

    epoch: int = 1
    position: int = 0
    step: int = 0
    order: dict[int, Tensor] = field(default_factory=dict)
    cost_sum: Tensor | None = None
    step_costs: list[Tensor] = field(default_factory=list)
    step_parameters: list[Tensor] = field(default_factory=list)


class RunState:
    """The part of `Training` that keeps its record and checkpoints and answers stop requests
    (a mixin: it reads the loop's model, optimizer, monitor, minibatch order and progress)."""

    out_dir: Path
    record: dict[str, Any]
    progress: Progress
    wall_before: float
    piece_started: float
    cpu_before: float | None  # the CPU time (all threads) of the pieces before this one (None:
    # unknown, a record older than the field)
    piece_cpu_started: float
    last_checkpoint: float

    def resume_from(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint: every state as it was at that step."""
        self.keep_members(checkpoint.get("live", range(len(self.members))))
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.monitor.load_state_dict(checkpoint["monitor"])
        self.progress = Progress(**checkpoint["progress"])
        self.order.load_state_dict(self.progress.order)
        set_rng_state(checkpoint["rng"], self.device)
        self.record = checkpoint["record"]
        self.wall_before = float(self.record["wall_time_s"])
        cpu = self.record.get("cpu_time_s")
        self.cpu_before = None if cpu is None else float(cpu)
        p = self.progress
        log.info(
            "resuming %s at epoch %d, step %d of %d (%d steps done)",
            self.out_dir,
            p.epoch,
            p.position,
            self.order.steps_per_epoch,
            p.step,
        )

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.piece_started

    def cpu_time(self) -> float | None:
        if self.cpu_before is None:
            return None
        return self.cpu_before + time.process_time() - self.piece_cpu_started

    def save(self, checkpoint: bool) -> None:
        """The record, and before it (when `checkpoint`) everything needed to continue."""
        self.record["wall_time_s"] = self.wall_time()
        self.record["cpu_time_s"] = self.cpu_time()
        if checkpoint:
            p = self.progress
            save_checkpoint(
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "monitor": self.monitor.state_dict(),
                    "progress": vars(p).copy(),
                    "rng": rng_state(self.device),
                    "record": self.record,
                    "live": self.live.tolist(),
                },
                self.out_dir,
            )
            self.last_checkpoint = time.monotonic()
            log.debug(
                "checkpoint at epoch %d, step %d (%d steps done)", p.epoch, p.position, p.step
            )
        save_record(self.record, self.out_dir)

    def _end_piece(self, status: str) -> None:
        self.piece_open = False
        self.record["status"] = status
        piece = self.record["pieces"][-1]
        piece.update(
            ended=now(),
            status=status,
            to_step=self.progress.step,
            epochs_done=epochs_done(self.record),
            wall_time_s=time.perf_counter() - self.piece_started,
            cpu_time_s=time.process_time() - self.piece_cpu_started,
        )

    # -- the loop -------------------------------------------------------------------------
    def _start_piece(self) -> None:
        self.progress_at_start = self.progress.step
        self.piece_open = True
        env = environment(self.device)
        self.record["status"] = "running"
        self.record["pieces"].append(
            {
                "started": now(),
                "from_step": self.progress.step,
                "host": env["host"],
                "pid": os.getpid(),
                "device": env["device"],
                "code": env["code"],
            }
        )

    def _checkpoint_due(self) -> bool:
        minutes = self.trainer.checkpoint_minutes
        return minutes > 0 and time.monotonic() - self.last_checkpoint >= 60 * minutes

    def _stop(self, reason: str, stop: StopRequests) -> bool:
        """Checkpoint between two steps, say how to continue, then do what was asked: True
        when the loop returns (paused); an interruption raises, or goes on (False) where the
        signal's own handler lets the run continue."""
        p = self.progress
        self._end_piece(reason)
        self.save(checkpoint=True)
        why = f"by {stop.signal_name()}" if reason == "interrupted" else "its time budget spent"
        log.warning(
            "%s (%s) at epoch %d, step %d of %d: run the same command to continue",
            reason,
            why,
            p.epoch,
            p.position,
            self.order.steps_per_epoch,
        )
        if reason != "interrupted":
            return True
        stop.finish()  # returns only where the signal's own handler lets the run go on
        self._start_piece()
        return False
