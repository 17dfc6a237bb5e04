"""The one training loop of the project: a population trained epoch by epoch, its record and
checkpoints kept, stopped and continued exactly."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..checkpoint import (
    CHECKPOINT_NAME,
    StopRequests,
)
from ..data import load_data
from ..errors import ConfigError, OutputError, one_line
from ..models import build_model, keep_member_rows
from ..optim import build_optimizer
from ..records import (
    new_record,
)
from ..settings import Halving, RunSettings, TrainerSettings
from .evaluation import DivergenceMonitor, evaluation, evaluation_mode, evaluation_subset
from .hooks import hooks_for
from .population import MinibatchOrder, population, spread, stack_settings
from .state import Progress, RunState

log = logging.getLogger("adamrepro.train")  # one name for the loop's messages, in every module


@contextlib.contextmanager
def _console_beside_the_bar() -> Iterator[None]:
    """Console log lines written through tqdm, so that they do not break the progress bar
    (tqdm's redirection drops the console handler's level: it is put back)."""
    levels = [h.level for h in logging.root.handlers if type(h) is logging.StreamHandler]
    with logging_redirect_tqdm():
        redirected = [h for h in logging.root.handlers if type(h).__name__ == "_TqdmLoggingHandler"]
        for handler, level in zip(redirected, levels, strict=False):
            handler.setLevel(level)
        yield


class Training(RunState):
    """One run: its population, data, optimizer and record, trained to its end or until it is
    asked to stop. `run()` returns the record."""

    def __init__(
        self, cfg: dict[str, Any], settings: RunSettings, out_dir: Path, deadline: float | None
    ) -> None:
        self.cfg, self.settings, self.out_dir = cfg, settings, out_dir
        self.trainer: TrainerSettings = settings.trainer
        self.deadline = deadline
        self.device = settings.device
        settings.apply_numerics()
        torch.manual_seed(settings.seed)
        self.members = population(cfg)
        seeds = [m["seed"] for m in self.members]
        stacked = {
            k: v.to(self.device) if isinstance(v, Tensor) else v  # on the device, once
            for k, v in stack_settings(self.members).items()
        }
        data = load_data(cfg["data"])
        self.data = replace(
            data, description={**data.description, "fingerprint": data.fingerprint()}
        ).to(self.device, settings.dtype)
        self.model = build_model(cfg["model"], self.data, seeds).to(self.device, settings.dtype)
        self.optimizer = build_optimizer(self.model.parameters(), stacked)
        self.parameter_names = {p: name for name, p in self.model.named_parameters()}
        self.optimizer.schedule(
            self.trainer.stepsize_decay, math.ceil(len(self.data.x_train) / self.trainer.batch_size)
        )  # alpha_t, from the step count
        if self.trainer.evaluate_averaged and not all(
            g.get("averaging") for g in self.optimizer.param_groups
        ):
            raise ConfigError(
                "trainer.evaluate_averaged needs an optimizer that keeps the temporal average: "
                "optimizer=adam or adamax with optimizer.averaging=true"
            )
        self.halving = Halving.from_config(cfg.get("sweep"))
        self.n_train = len(self.data.x_train)
        self.order = MinibatchOrder(
            seeds,
            self.n_train,
            self.trainer.batch_size,
            order=self.trainer.minibatch_order,
        )
        self.subset = evaluation_subset(
            self.n_train, self.trainer.train_eval_subset, settings.seed, self.device
        )
        self.monitor = DivergenceMonitor(
            len(self.members), self.trainer.divergence_factor, self.device
        )
        # The members still in the population, in its order: a member that diverged leaves it
        # (`keep_members`), so that its steps cost nothing; the record keeps every member.
        self.live = torch.arange(len(self.members), device=self.device)
        self.progress = Progress()
        self.hooks = hooks_for(self.trainer)
        self.record = self._new_record()
        self.wall_before = 0.0
        self.piece_started = time.perf_counter()
        self.cpu_before = 0.0
        self.piece_cpu_started = time.process_time()
        self.last_checkpoint = time.monotonic()

    # -- the record and the checkpoint --------------------------------------------------
    def _new_record(self) -> dict[str, Any]:
        record = new_record(
            self.cfg,
            self.members,
            seed=self.settings.seed,
            device=self.device,
            data=self.data.description,
            pieces=[],
        )
        for hook in self.hooks:
            hook.start(self, record)
        return record

    def flat_parameters(self) -> Tensor:
        """Every parameter of each member in one row: (G, parameters per member), NaN for the
        members that left the population."""
        flat = torch.cat([p.detach().flatten(1) for p in self.model.parameters()], 1)
        return spread(flat, self.live, len(self.members))

    def keep_members(self, members: Sequence[int]) -> None:
        """Shrink the population to `members` (a subset of the live ones): the model's
        parameters, the optimizer's state and its per-member settings keep their rows."""
        if len(members) == len(self.live):
            return
        where = {int(m): k for k, m in enumerate(self.live.tolist())}
        rows = torch.tensor([where[int(m)] for m in members], device=self.device)
        replaced = keep_member_rows(self.model, rows)
        self.optimizer.keep_members(replaced, rows)
        self.parameter_names = {p: name for name, p in self.model.named_parameters()}
        self.live = self.live[rows]

    def run(self) -> dict[str, Any]:
        self._start_piece()
        log.info(
            "%s: %d members (%s), %d epochs of %d steps, into %s",
            self.record["experiment"] or "run",
            len(self.members),
            self.members[0].get("label", self.members[0]["name"]),
            self.trainer.epochs,
            self.order.steps_per_epoch,
            self.out_dir,
        )
        bar = tqdm(
            total=self.trainer.epochs * self.order.steps_per_epoch,
            initial=self.progress.step,
            desc=str(self.record["experiment"] or "train"),
            unit="step",
            disable=not (self.trainer.progress and sys.stderr.isatty()),  # quiet into a file
            file=sys.stderr,
            dynamic_ncols=True,
        )
        try:
            with StopRequests(self.deadline) as stop, _console_beside_the_bar():
                outcome = self._loop(stop, bar)
            log.debug("piece ended: %s", outcome)
        except (KeyboardInterrupt, SystemExit):
            if self.piece_open:  # not stopped at a step boundary
                self._end_piece("interrupted")
                self.save(checkpoint=False)
            raise
        except Exception as error:
            self._end_piece("failed")
            self.record["reason"] = one_line(error)
            log.error("failed: %s", self.record["reason"])
            with contextlib.suppress(OutputError):  # a full disk cannot hold the record either
                self.save(checkpoint=False)
            raise
        finally:
            bar.close()
        return self.record

    def _loop(self, stop: StopRequests, bar: tqdm) -> str:
        """Train until the run ends or is paused; its outcome: completed, failed, paused."""
        trainer = self.trainer
        eval_every = trainer.eval_every
        for hook in self.hooks:
            hook.before_training(self)
        while self.progress.epoch <= trainer.epochs:
            p = self.progress
            p.order = self.order.state_dict()  # before the draw: the epoch's order again
            if p.cost_sum is None:
                p.cost_sum = torch.zeros(len(self.members), device=self.device, dtype=torch.float64)
            self.model.train()
            for idx in self.order.epoch(self.device, skip=p.position):
                reason = stop.requested()
                if reason == "paused" and p.step == self.progress_at_start:
                    reason = None  # every piece takes a step: a short budget still progresses
                if reason is not None:
                    if self._stop(reason, stop):
                        return reason
                elif self._checkpoint_due():
                    self.save(checkpoint=True)
                self._step(idx, p)
                bar.update(1)
            due = p.epoch % eval_every == 0 or p.epoch == trainer.epochs
            ended = self._end_epoch(due, bar)
            if ended is not None:
                return ended
        return "completed"  # nothing was left to train

    def prune(self, train_cost: list[float]) -> None:
        """Successive halving (`sweep.halving`): the members of all but the `keep` best
        settings, by this epoch's training cost averaged over seeds, leave the population;
        the record names them (`pruned`: member -> epoch)."""
        settings: dict[str, list[int]] = {}
        for k, member in enumerate(self.members):
            key = json.dumps({n: v for n, v in member.items() if n != "seed"}, sort_keys=True)
            settings.setdefault(key, []).append(k)

        def rank(members: list[int]) -> float:
            costs = [train_cost[k] for k in members]
            return sum(costs) / len(costs) if all(map(math.isfinite, costs)) else math.inf

        ranked = sorted(settings.values(), key=rank)
        kept = {k for members in ranked[: self.halving.keep] for k in members}
        pruned = [k for k in self.live.tolist() if k not in kept]
        if not pruned:
            return
        self.monitor.active[pruned] = False  # left, not diverged
        self.record["pruned"] = {str(k): self.progress.epoch for k in pruned}
        self.keep_members([k for k in self.live.tolist() if k in kept])
        log.info(
            "halving after epoch %d: %d of %d settings go on (%d members)",
            self.progress.epoch,
            min(self.halving.keep, len(ranked)),
            len(ranked),
            len(self.live),
        )

    def settle(self) -> None:
        """Once per epoch: the members that diverged are recorded and leave the population."""
        if self.monitor.settle() and self.monitor.active.any():
            active = self.monitor.active.tolist()
            self.keep_members([m for m in self.live.tolist() if active[m]])
            log.info("%d of %d members go on", len(self.live), len(self.members))

    def _step(self, idx: Tensor, p: Progress) -> None:
        p.step += 1
        p.position += 1
        members, live = len(self.members), self.live
        if idx.dim() == 2 and len(live) < members:  # the rows of the members that are left
            idx = idx[live % len(idx)]
        with self.settings.autocast():
            live_cost = self.model.cost(self.data.x_train[idx], self.data.y_train[idx])
        cost = spread(live_cost, live, members)
        active = self.monitor.check(cost, p.step)
        self.optimizer.zero_grad(set_to_none=True)
        # Members are independent: each gets the gradient of its own cost only.
        watched = active if len(live) == members else active[live]
        torch.where(watched, live_cost, 0.0).sum().backward()
        self.optimizer.step()
        masked = self.monitor.mask(cost.detach().double())
        p.cost_sum += masked * idx.shape[-1]
        for hook in self.hooks:
            hook.after_step(self, masked)

    def _end_epoch(self, due: bool, bar: tqdm) -> str | None:
        """Record the epoch; the run's outcome when it ended with it (completed, or failed:
        every member diverged), else None."""
        p, record, trainer = self.progress, self.record, self.trainer
        self.settle()
        train_cost = (p.cost_sum / self.n_train).tolist()
        for hook in self.hooks:
            hook.end_epoch(self, record)
        averaged = self.optimizer if trainer.evaluate_averaged else None
        # evaluated as it trains (as Lightning does), in the optimizer's evaluation mode
        with self.settings.autocast(), evaluation_mode(self.optimizer):
            columns = evaluation(
                self.model,
                self.data,
                trainer.eval_batch_size,
                self.monitor,
                due,
                averaged,
                self.subset,
                self.live,
            )
        stepsize = self.optimizer.current_stepsize(self.optimizer.param_groups[0])
        stepsizes = (
            spread(stepsize, self.live, len(self.members)).tolist()
            if isinstance(stepsize, Tensor)
            else [stepsize] * len(self.members)
        )
        elapsed = self.wall_time()
        for k in range(len(self.members)):
            row = {"member": k, "epoch": p.epoch, "train_cost": train_cost[k]}
            row.update({name: values[k] for name, values in columns.items()})
            row.update(current_stepsize=float(stepsizes[k]), wall_time_s=elapsed)
            record["curves"].append(row)
        record["diverged"] = dict(self.monitor.diverged)
        if self.halving is not None and p.epoch == self.halving.after_epochs:
            self.prune(train_cost)
        finite = [c for c in train_cost if math.isfinite(c)]
        best = min(finite) if finite else math.nan
        log.debug(
            "epoch %d/%d: best train cost %.6g, %d of %d diverged, %.1f s",
            p.epoch,
            trainer.epochs,
            best,
            len(self.monitor.diverged),
            len(self.members),
            elapsed,
        )
        bar.set_postfix(cost=f"{best:.4f}" if finite else "diverged", refresh=False)
        epoch = p.epoch
        self.progress = Progress(epoch=epoch + 1, step=p.step, order=self.order.state_dict())
        if not finite:  # nothing is left to train: say so now, not after the last epoch
            last = max(self.monitor.diverged.values(), default=p.step)
            self._end_piece("failed")
            record["reason"] = f"every member diverged (the last at step {last})"
            record["final"] = True  # training it again would diverge again
            self.save(checkpoint=False)
            return "failed"
        if epoch == trainer.epochs:
            self._end_piece("completed")
            self.save(checkpoint=False)
            if not trainer.keep_checkpoint:
                (self.out_dir / CHECKPOINT_NAME).unlink(missing_ok=True)
            return "completed"
        every = trainer.checkpoint_every
        self.save(checkpoint=every > 0 and epoch % every == 0)
        return None
