"""What the loop watches and measures: divergence at every step, on the device, and the
end-of-epoch evaluations of every member."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .population import spread

log = logging.getLogger("adamrepro.train")  # one name for the loop's messages, in every module


class DivergenceMonitor:
    """Marks a member diverged at the first step whose cost is not finite or exceeds `factor`
    times its first cost; from that step on its curves read NaN, and the other members go on
    untouched.

    The check runs on the device at every step and reads nothing back: `active` and the step
    of each member's divergence (`diverged_at`, 0: none) stay device tensors. The host reads
    them once per epoch (`settle`) and records the steps; the trainer then drops the diverged
    members from the population. Until then a diverged member trains on unwatched (its
    numbers are no longer read, and members never mix).
    """

    def __init__(self, members: int, factor: float, device: torch.device) -> None:
        self.active = torch.ones(members, dtype=torch.bool, device=device)
        self.diverged_at = torch.zeros(members, dtype=torch.long, device=device)
        self.first: Tensor | None = None
        self.factor = factor
        self.diverged: dict[str, int] = {}

    def check(self, cost: Tensor, step: int) -> Tensor:
        cost = cost.detach()
        if self.first is None:
            self.first = cost.clone()
        bad = self.active & ~(torch.isfinite(cost) & (cost <= self.factor * self.first))
        self.diverged_at.masked_fill_(bad, step)
        self.active &= ~bad
        return self.active

    def settle(self) -> list[int]:
        """Record the members that diverged since the last call (one read of G numbers) and
        return them."""
        fresh = [
            (k, s)
            for k, s in enumerate(self.diverged_at.tolist())
            if s and str(k) not in self.diverged
        ]
        for k, step in fresh:
            self.diverged[str(k)] = step
            log.info("member %d diverged at step %d", k, step)
        return [k for k, _ in fresh]

    def mask(self, values: Tensor) -> Tensor:
        """`values` (one per member) with NaN for the diverged members."""
        return torch.where(self.active, values, torch.full_like(values, math.nan))

    def state_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "diverged_at": self.diverged_at,
            "first": self.first,
            "diverged": dict(self.diverged),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.active = state["active"].to(self.active.device)
        self.diverged_at = state["diverged_at"].to(self.active.device)
        self.first = state["first"]
        self.diverged = dict(state["diverged"])


METRICS = ("train_cost_full", "test_loss", "test_accuracy")


def evaluation_subset(
    n_train: int, examples: int, seed: int, device: torch.device
) -> Tensor | None:
    """The fixed training rows of trainer.train_eval_subset (None for 0): the first `examples`
    of a permutation drawn from the run's seed."""
    if examples > n_train:
        raise ConfigError(
            f"trainer.train_eval_subset={examples} is more than the {n_train:,} training rows"
        )
    if not examples:
        return None
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    return order[:examples].to(device)


def evaluation_mode(optimizer: Any) -> Any:
    """The context in which the parameters are the ones to evaluate: an external optimizer's
    `evaluating()` (Schedule-Free's eval/train switch), else nothing to do."""
    import contextlib

    evaluating = getattr(optimizer, "evaluating", None)
    return evaluating() if callable(evaluating) else contextlib.nullcontext()


def evaluation(
    model: torch.nn.Module,
    data: Any,
    batch_size: int,
    monitor: DivergenceMonitor,
    due: bool,
    optimizer: Any = None,
    subset: Tensor | None = None,
    live: Tensor | None = None,
) -> dict[str, list[float]]:
    """The end-of-epoch columns of every member: full-training-set cost, test loss and test
    accuracy (NaN for the diverged members, and for all when no evaluation is `due`); with an
    `optimizer` that keeps a temporal average, the same three for the averaged parameters;
    with a `subset` of training rows, also the cost on those (train_cost_subset). The model
    holds the members `live` (default: all)."""
    names = [*METRICS, *(f"averaged_{m}" for m in METRICS if optimizer is not None)]
    names += ["train_cost_subset"] if subset is not None else []
    if not due:
        return {name: [math.nan] * len(monitor.active) for name in names}

    def columns(prefix: str = "") -> dict[str, list[float]]:
        full = model.evaluate(data.x_train, data.y_train, batch_size)
        test = model.evaluate(data.x_test, data.y_test, batch_size)
        values = {
            "train_cost_full": full["cost"],
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
        }
        if subset is not None and not prefix:
            values["train_cost_subset"] = model.evaluate(
                data.x_train[subset], data.y_train[subset], batch_size
            )["cost"]
        members = len(monitor.active)
        return {
            prefix + k: monitor.mask(v if live is None else spread(v, live, members)).tolist()
            for k, v in values.items()
        }

    out = columns()
    if optimizer is not None:
        with optimizer.averaged_parameters():
            out.update(columns("averaged_"))
    return out
