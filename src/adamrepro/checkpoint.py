"""What lets a run stop at any step and continue exactly: checkpoints written atomically, the
random number generators' states, and the requests to stop (a signal, a time budget).

A checkpoint is one `torch.save`d dict in `checkpoint.pt` beside the run's record, written to a
temporary file, flushed to disk and renamed (`files.write_atomic`); the training loop decides
what goes in it (`training/state.py`): tensors, numbers, strings and containers, read back with
`weights_only=True`, so that a crafted checkpoint cannot run code. Stopping is cooperative: a
signal only sets a flag, and the loop looks at it between two steps, where its state is whole,
checkpoints, and then does what the signal would have done without us (`StopRequests.finish`).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch.torch_version import TorchVersion

from .errors import DataError, one_line
from .files import write_atomic

CHECKPOINT_NAME = "checkpoint.pt"
# SIGINT: Ctrl-C; SIGTERM: what schedulers send before they stop or preempt a job; SIGUSR1 and
# SIGUSR2: what SLURM sends ahead of a time limit (submitit requeues a job on SIGUSR2).
SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)


def save_checkpoint(state: dict[str, Any], directory: Path) -> Path:
    """`state` into directory/checkpoint.pt, whole or not at all (streamed into the temporary
    file: no second copy in memory, which SFO's 4.4 GB state would need)."""
    return write_atomic(Path(directory) / CHECKPOINT_NAME, lambda f: torch.save(state, f))


def load_checkpoint(directory: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint in `directory` with its tensors on `device`, or None where there is none."""
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        # tensors and plain containers only: a checkpoint from elsewhere never runs code
        # (TorchVersion, a str, is in checkpoints written before records held a plain str)
        with torch.serialization.safe_globals([TorchVersion]):
            return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # a damaged file: say so rather than start afresh silently
        raise DataError(
            f"{path} cannot be read ({one_line(error)}); delete it to start the run afresh"
        ) from None


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global generators that dropout and sampling draw from (CPU, and the CUDA device)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


class StopRequests:
    """Requests to stop, looked at between two steps: a signal (SIGINT, SIGTERM, SIGUSR1/2)
    or the time budget (`deadline`, a `time.monotonic()` value). Use as a context manager:
    the handlers are installed on entry (in the main thread only) and restored on exit.

    A second SIGINT before the loop has stopped raises KeyboardInterrupt at once.
    """

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        for signum in SIGNALS:
            try:
                current = signal.getsignal(signum)
                if current is signal.SIG_IGN:
                    continue
                signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                continue
            self.previous[signum] = current
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def budget_spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def requested(self) -> str | None:
        """'interrupted' after a signal, 'paused' once the time budget is spent, else None."""
        if self.signum is not None:
            return "interrupted"
        return "paused" if self.budget_spent() else None

    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def finish(self) -> None:
        """After the checkpoint: what the signal would have done had we not caught it. The
        handler that was there before runs (Ctrl-C's KeyboardInterrupt; submitit's requeue);
        where there was none the process ends with status 128 + signal number. If that
        handler returns (one that only logs), the run goes on: the request is cleared."""
        signum, self.signum = self.signum, None
        if signum is None:
            return
        previous = self.previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, None)
            return
        raise SystemExit(128 + signum)
