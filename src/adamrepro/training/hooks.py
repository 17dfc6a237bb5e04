"""What a study adds to the training loop, each a small hook that owns its record keys:

- `StepLog` (trainer.step_log_epochs, trainer.step_log_parameters): the cost of every member
  at every step of the first epochs (`step_costs`), and every parameter (`step_parameters`,
  small problems only);
- `MomentStats` (trainer.moment_stats_every): sqrt(v-hat) per layer against eps every so many
  steps (`moment_stats`, claim P9);
- `InitialEvaluation` (trainer.evaluate_initial): the evaluation before any step (epoch 0).

The loop calls `start` on a fresh record, `after_step` after each step (with the step's
costs, NaN for the diverged members) and `end_epoch` before it writes the epoch's row. What a
hook gathers between two epochs lives in the loop's `Progress`, so that a checkpoint holds it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..optim.moments import second_moments
from ..settings import TrainerSettings
from .evaluation import evaluation, evaluation_mode

if TYPE_CHECKING:
    from .loop import Training


class Hook:
    def start(self, training: Training, record: dict[str, Any]) -> None:
        """A fresh record (not a resumed one): add the hook's keys."""

    def before_training(self, training: Training) -> None:
        """Before the first step of a piece."""

    def after_step(self, training: Training, costs: Tensor) -> None:
        """After each step; `costs` has one value per member, NaN for the diverged."""

    def end_epoch(self, training: Training, record: dict[str, Any]) -> None:
        """Before the epoch's row is written."""


class StepLog(Hook):
    def __init__(self, epochs: int, parameters: bool) -> None:
        self.epochs, self.parameters = epochs, parameters

    def start(self, training: Training, record: dict[str, Any]) -> None:
        width = sum(p[0].numel() for p in training.model.parameters())
        if self.parameters and width > 1000:
            raise ConfigError(
                f"trainer.step_log_parameters logs every parameter at every step: for small "
                f"problems only, and this model has {width:,} per member"
            )
        if self.epochs:
            record["step_costs"] = {"steps_per_epoch": training.order.steps_per_epoch, "cost": []}
        if self.parameters:
            names = [name for name, _ in training.model.named_parameters()]
            initial = training.flat_parameters().tolist()
            record["step_parameters"] = {"names": names, "initial": initial, "values": []}

    def after_step(self, training: Training, costs: Tensor) -> None:
        p = training.progress
        if p.epoch <= self.epochs:
            p.step_costs.append(costs)
            if self.parameters:
                p.step_parameters.append(training.flat_parameters().clone())

    def end_epoch(self, training: Training, record: dict[str, Any]) -> None:
        p = training.progress
        if p.step_costs:
            record["step_costs"]["cost"].extend(torch.stack(p.step_costs).tolist())
        if p.step_parameters:
            record["step_parameters"]["values"].extend(torch.stack(p.step_parameters).tolist())


class MomentStats(Hook):
    def __init__(self, every: int) -> None:
        self.every = every

    def after_step(self, training: Training, costs: Tensor) -> None:
        p = training.progress
        if p.step % self.every:
            return
        active = training.monitor.active.tolist()  # a host read, every so many steps only
        watched = {k: m for k, m in enumerate(training.live.tolist()) if active[m]}
        rows = second_moments(training.optimizer, training.parameter_names, watched)
        epoch = p.epoch - 1 + p.position / training.order.steps_per_epoch
        training.record.setdefault("moment_stats", []).extend(
            {"step": p.step, "epoch": epoch, **row} for row in rows
        )


class InitialEvaluation(Hook):
    def before_training(self, training: Training) -> None:
        if training.progress.step or training.record["curves"]:
            return  # a run that has begun has its epoch 0 already
        averaged = training.optimizer if training.trainer.evaluate_averaged else None
        with training.settings.autocast(), evaluation_mode(training.optimizer):
            columns = evaluation(
                training.model,
                training.data,
                training.trainer.eval_batch_size,
                training.monitor,
                True,
                averaged,
                training.subset,
            )
        for k in range(len(training.members)):
            row = {"member": k, "epoch": 0, "train_cost": math.nan}
            row.update({name: values[k] for name, values in columns.items()})
            training.record["curves"].append({**row, "wall_time_s": 0.0})


def hooks_for(trainer: TrainerSettings) -> list[Hook]:
    """The hooks the trainer's settings ask for."""
    hooks: list[Hook] = []
    if trainer.evaluate_initial:
        hooks.append(InitialEvaluation())
    if trainer.step_log_epochs or trainer.step_log_parameters:
        hooks.append(StepLog(trainer.step_log_epochs, trainer.step_log_parameters))
    if trainer.moment_stats_every:
        hooks.append(MomentStats(trainer.moment_stats_every))
    return hooks
