"""The one training loop of the project, and its command line.

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

import contextlib
import itertools
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .checkpoint import (
    CHECKPOINT_NAME,
    StopRequests,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .data import load_data
from .errors import USER_ERRORS, ConfigError, DataError, OutputError, hydra_line, one_line
from .files import check_writable, exclusive
from .models import build_model, keep_member_rows
from .optim import DESCRIPTIVE_KEYS, build_optimizer
from .optim.moments import second_moments
from .records import (
    FORMAT,
    RECORD_NAME,
    differences,
    environment,
    epochs_done,
    now,
    read_record,
    run_identity,
    save_record,
)
from .settings import Halving, RunSettings, TrainerSettings, seed_setting

log = logging.getLogger("adamrepro.train")  # also when run as __main__
COMMAND_STARTED = time.monotonic()  # trainer.max_minutes counts from the command's start
EXIT = {"config": 2, "diverged": 3, "paused": 75, "SIGINT": 130, "SIGTERM": 143}


def population(config: DictConfig | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The members of the run: the optimizer config with each combination of its grid's
    values, for each seed.

    The grid is `sweep.grids[<optimizer label>]` (the figure's protocol) updated by `grid`
    (setting -> list of values, for a one-off); the seeds are `sweep.seeds`, else [seed]. A
    sweep with grids must have one for the optimizer's label.
    """
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    optimizer = dict(config["optimizer"])
    sweep = config.get("sweep") or {}
    grids = sweep.get("grids") or {}
    label = optimizer.get("label")
    if grids and label not in grids:
        raise ConfigError(
            f"the sweep has no grid for the optimizer label {label!r} (it has "
            f"{', '.join(map(repr, grids))}): pick one of those labels, or sweep=none"
        )
    grid = {**grids.get(label, {}), **(config.get("grid") or {})}
    unknown = sorted(set(grid) - set(optimizer) - set(DESCRIPTIVE_KEYS))
    if unknown:
        raise ConfigError(
            f"grid names {', '.join(unknown)}, which optimizer "
            f"{optimizer.get('name')!r} does not have"
        )
    seeds = [seed_setting("sweep.seeds", s) for s in sweep.get("seeds") or [config["seed"]]]
    values = [v if isinstance(v, (list, tuple)) else [v] for v in grid.values()]
    return [
        {**optimizer, **dict(zip(grid, combination, strict=True)), "seed": int(seed)}
        for combination in itertools.product(*values)
        for seed in seeds
    ]


def stack_settings(members: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One optimizer config for the whole population: a setting shared by every member stays a
    number, one that differs becomes a tensor with one value per member."""
    stacked: dict[str, Any] = {}
    for key in members[0]:
        if key in ("seed", "label"):  # the label names the optimizer; it sets nothing
            continue
        values = [m[key] for m in members]
        if all(v == values[0] for v in values):
            stacked[key] = values[0]
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            stacked[key] = torch.tensor([float(v) for v in values], dtype=torch.float64)
        else:
            raise ConfigError(
                f"the members of one run differ in {key!r} ({values[0]!r}, ...), which is not a "
                "number: train them as separate runs"
            )
    return stacked


def stepsize_factor(decay: str, step: int, epoch: int) -> float:
    """alpha_t / alpha for the decays of section 6.1: 1, 1/sqrt(step) or 1/sqrt(epoch)."""
    if decay == "sqrt_step":
        return 1.0 / math.sqrt(step)
    if decay == "sqrt_epoch":
        return 1.0 / math.sqrt(epoch)
    return 1.0


class MinibatchOrder:
    """Minibatches as index permutations of the training set, one permutation per epoch for
    each distinct seed: members with the same seed see the same minibatches.

    Yields indices of shape (B,) when all members share one seed, else (S, B) where member g
    reads row g % S. Populations list seeds fastest (`population`), so S is the number of
    seeds and each row is shared by every member of that seed; any other layout gets one row
    per member (S = G). The generators' states (`state_dict`) taken before an epoch's draw
    give that epoch's order again, so that a run can continue in the middle of an epoch.

    `fixed=True` draws the permutation once (from each seed) and walks the same minibatches,
    in the same order, every epoch: the data split once into fixed minibatches visited
    cyclically (the harness of Figure 2(b)'s SFO comparison).
    """

    def __init__(self, seeds: Sequence[int], n: int, batch_size: int, fixed: bool = False) -> None:
        distinct = list(dict.fromkeys(int(s) for s in seeds))
        if any(int(seed) != distinct[g % len(distinct)] for g, seed in enumerate(seeds)):
            distinct = [int(s) for s in seeds]  # not seed-fastest: one row per member
        self.generators = {s: torch.Generator().manual_seed(s) for s in dict.fromkeys(distinct)}
        self.row_seeds = distinct
        self.n, self.batch_size, self.fixed = n, batch_size, fixed
        self.steps_per_epoch = math.ceil(n / batch_size)

    def epoch(self, device: torch.device, skip: int = 0) -> Iterator[Tensor]:
        """The epoch's minibatches, after the first `skip` of them."""
        if self.fixed:  # the first epoch's permutation, every epoch
            for s, g in self.generators.items():
                g.manual_seed(s)
        perms = {s: torch.randperm(self.n, generator=g) for s, g in self.generators.items()}
        rows = torch.stack([perms[s] for s in self.row_seeds]).to(device)
        for start in range(skip * self.batch_size, self.n, self.batch_size):
            idx = rows[:, start : start + self.batch_size]
            yield idx[0] if len(self.row_seeds) == 1 else idx

    def state_dict(self) -> dict[int, Tensor]:
        return {s: g.get_state() for s, g in self.generators.items()}

    def load_state_dict(self, state: Mapping[int, Tensor]) -> None:
        for s, g in self.generators.items():
            g.set_state(state[s])


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
        fresh = [(k, s) for k, s in enumerate(self.diverged_at.tolist())
                 if s and str(k) not in self.diverged]  # fmt: skip
        for k, step in fresh:
            self.diverged[str(k)] = step
            log.info("member %d diverged at step %d", k, step)
        return [k for k, _ in fresh]

    def mask(self, values: Tensor) -> Tensor:
        """`values` (one per member) with NaN for the diverged members."""
        return torch.where(self.active, values, torch.full_like(values, math.nan))

    def state_dict(self) -> dict[str, Any]:
        return {"active": self.active, "diverged_at": self.diverged_at, "first": self.first,
                "diverged": dict(self.diverged)}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.active = state["active"].to(self.active.device)
        self.diverged_at = state["diverged_at"].to(self.active.device)
        self.first = state["first"]
        self.diverged = dict(state["diverged"])


METRICS = ("train_cost_full", "test_loss", "test_accuracy")


def evaluation_subset(n_train: int, examples: int, seed: int,
                      device: torch.device) -> Tensor | None:  # fmt: skip
    """The fixed training rows of trainer.train_eval_subset (None for 0): the first `examples`
    of a permutation drawn from the run's seed."""
    if examples > n_train:
        raise ConfigError(f"trainer.train_eval_subset={examples} is more than the "
                          f"{n_train:,} training rows")  # fmt: skip
    if not examples:
        return None
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    return order[:examples].to(device)


def spread(values: Tensor, live: Tensor, members: int) -> Tensor:
    """Values of the live population (its members `live`, in its order) as rows of all
    `members`, NaN for those that left it."""
    if len(live) == members:
        return values
    full = values.new_full((members, *values.shape[1:]), math.nan)
    full[live] = values
    return full


def evaluation(model: torch.nn.Module, data: Any, batch_size: int, monitor: DivergenceMonitor,
               due: bool, optimizer: Any = None, subset: Tensor | None = None,
               live: Tensor | None = None) -> dict[str, list[float]]:  # fmt: skip
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
        values = {"train_cost_full": full["cost"], "test_loss": test["loss"],
                  "test_accuracy": test["accuracy"]}  # fmt: skip
        if subset is not None and not prefix:
            values["train_cost_subset"] = model.evaluate(
                data.x_train[subset], data.y_train[subset], batch_size
            )["cost"]
        members = len(monitor.active)
        return {prefix + k: monitor.mask(v if live is None else spread(v, live, members)).tolist()
                for k, v in values.items()}  # fmt: skip

    out = columns()
    if optimizer is not None:
        with optimizer.averaged_parameters():
            out.update(columns("averaged_"))
    return out


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


class Training:
    """One run: its population, data, optimizer and record, trained to its end or until it is
    asked to stop. `run()` returns the record."""

    def __init__(self, cfg: dict[str, Any], settings: RunSettings, out_dir: Path,
                 deadline: float | None) -> None:  # fmt: skip
        self.cfg, self.settings, self.out_dir = cfg, settings, out_dir
        self.trainer: TrainerSettings = settings.trainer
        self.deadline = deadline
        self.device = settings.device
        settings.apply_numerics()
        torch.manual_seed(settings.seed)
        self.members = population(cfg)
        seeds = [m["seed"] for m in self.members]
        stacked = {k: v.to(self.device) if isinstance(v, Tensor) else v  # on the device, once
                   for k, v in stack_settings(self.members).items()}  # fmt: skip
        data = load_data(cfg["data"])
        self.data = replace(data, description={**data.description,
                                               "fingerprint": data.fingerprint()}
                            ).to(self.device, settings.dtype)  # fmt: skip
        self.model = build_model(cfg["model"], self.data, seeds).to(self.device, settings.dtype)
        self.optimizer = build_optimizer(self.model.parameters(), stacked)
        self.parameter_names = {p: name for name, p in self.model.named_parameters()}
        for group in self.optimizer.param_groups:
            group["initial_stepsize"] = group["stepsize"]
        if self.trainer.evaluate_averaged and not all(
            g.get("averaging") for g in self.optimizer.param_groups
        ):
            raise ConfigError(
                "trainer.evaluate_averaged needs an optimizer that keeps the temporal average: "
                "optimizer=adam or adamax with optimizer.averaging=true"
            )
        self.halving = Halving.from_config(cfg.get("sweep"))
        self.n_train = len(self.data.x_train)
        width = sum(p[0].numel() for p in self.model.parameters())
        if self.trainer.step_log_parameters and width > 1000:
            raise ConfigError(
                f"trainer.step_log_parameters logs every parameter at every step: for small "
                f"problems only, and this model has {width:,} per member"
            )
        self.order = MinibatchOrder(seeds, self.n_train, self.trainer.batch_size,
                                    fixed=self.trainer.minibatch_order == "fixed")  # fmt: skip
        self.subset = evaluation_subset(self.n_train, self.trainer.train_eval_subset,
                                        settings.seed, self.device)  # fmt: skip
        self.monitor = DivergenceMonitor(len(self.members), self.trainer.divergence_factor,
                                         self.device)  # fmt: skip
        # The members still in the population, in its order: a member that diverged leaves it
        # (`keep_members`), so that its steps cost nothing; the record keeps every member.
        self.live = torch.arange(len(self.members), device=self.device)
        self.progress = Progress()
        self.record = self._new_record()
        self.wall_before = 0.0
        self.piece_started = time.perf_counter()
        self.last_checkpoint = time.monotonic()

    # -- the record and the checkpoint --------------------------------------------------
    def _new_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "format": FORMAT,
            "status": "running",
            "experiment": self.cfg.get("experiment_name") or "",
            "config": self.cfg,
            "members": self.members,
            "seed": self.settings.seed,
            "started": now(),
            "wall_time_s": 0.0,
            **environment(self.device),
            "data": self.data.description,
            "curves": [],
            "diverged": {},
            "pieces": [],
        }
        if self.trainer.step_log_epochs:
            record["step_costs"] = {"steps_per_epoch": self.order.steps_per_epoch, "cost": []}
        if self.trainer.step_log_parameters:
            names = [name for name, _ in self.model.named_parameters()]
            record["step_parameters"] = {"names": names, "initial": self.flat_parameters().tolist(),
                                         "values": []}  # fmt: skip
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
        p = self.progress
        log.info("resuming %s at epoch %d, step %d of %d (%d steps done)", self.out_dir,
                 p.epoch, p.position, self.order.steps_per_epoch, p.step)  # fmt: skip

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.piece_started

    def save(self, checkpoint: bool) -> None:
        """The record, and before it (when `checkpoint`) everything needed to continue."""
        self.record["wall_time_s"] = self.wall_time()
        if checkpoint:
            p = self.progress
            save_checkpoint({
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "monitor": self.monitor.state_dict(),
                "progress": vars(p).copy(),
                "rng": rng_state(self.device),
                "record": self.record,
                "live": self.live.tolist(),
            }, self.out_dir)  # fmt: skip
            self.last_checkpoint = time.monotonic()
            log.debug("checkpoint at epoch %d, step %d (%d steps done)", p.epoch, p.position,
                      p.step)  # fmt: skip
        save_record(self.record, self.out_dir)

    def _end_piece(self, status: str) -> None:
        self.record["status"] = status
        piece = self.record["pieces"][-1]
        piece.update(ended=now(), status=status, to_step=self.progress.step,
                     epochs_done=epochs_done(self.record),
                     wall_time_s=time.perf_counter() - self.piece_started)  # fmt: skip

    # -- the loop -------------------------------------------------------------------------
    def _start_piece(self) -> None:
        self.progress_at_start = self.progress.step
        env = environment(self.device)
        self.record["status"] = "running"
        self.record["pieces"].append({
            "started": now(), "from_step": self.progress.step,
            "host": env["host"], "pid": os.getpid(), "device": env["device"],
            "code": env["code"],
        })  # fmt: skip

    def run(self) -> dict[str, Any]:
        self._start_piece()
        log.info("%s: %d members (%s), %d epochs of %d steps, into %s",
                 self.record["experiment"] or "run", len(self.members),
                 self.members[0].get("label", self.members[0]["name"]), self.trainer.epochs,
                 self.order.steps_per_epoch, self.out_dir)  # fmt: skip
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
                self._loop(stop, bar)
        except (KeyboardInterrupt, SystemExit):
            if self.record["status"] == "running":  # not stopped at a step boundary
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

    def _initial_evaluation(self) -> None:
        """Epoch 0: the costs before any step (trainer.evaluate_initial)."""
        averaged = self.optimizer if self.trainer.evaluate_averaged else None
        with self.settings.autocast():
            columns = evaluation(self.model, self.data, self.trainer.eval_batch_size,
                                 self.monitor, True, averaged, self.subset)  # fmt: skip
        for k in range(len(self.members)):
            row = {"member": k, "epoch": 0, "train_cost": math.nan}
            row.update({name: values[k] for name, values in columns.items()})
            self.record["curves"].append({**row, "wall_time_s": 0.0})

    def _loop(self, stop: StopRequests, bar: tqdm) -> None:
        trainer = self.trainer
        decay, eval_every = trainer.stepsize_decay, trainer.eval_every
        if trainer.evaluate_initial and self.progress.step == 0 and not self.record["curves"]:
            self._initial_evaluation()
        while self.progress.epoch <= trainer.epochs:
            p = self.progress
            p.order = self.order.state_dict()  # before the draw: the epoch's order again
            if p.cost_sum is None:
                p.cost_sum = torch.zeros(len(self.members), device=self.device,
                                         dtype=torch.float64)  # fmt: skip
            self.model.train()
            for idx in self.order.epoch(self.device, skip=p.position):
                reason = stop.requested()
                if reason == "paused" and p.step == self.progress_at_start:
                    reason = None  # every piece takes a step: a short budget still progresses
                if reason is not None:
                    self._stop(reason, stop)
                    if self.record["status"] == "paused":
                        return
                elif self._checkpoint_due():
                    self.save(checkpoint=True)
                self._step(idx, decay, p)
                bar.update(1)
            due = p.epoch % eval_every == 0 or p.epoch == trainer.epochs
            self._end_epoch(due, bar)
            if self.record["status"] != "running":
                return

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
        log.info("halving after epoch %d: %d of %d settings go on (%d members)",
                 self.progress.epoch, min(self.halving.keep, len(ranked)), len(ranked),
                 len(self.live))  # fmt: skip

    def settle(self) -> None:
        """Once per epoch: the members that diverged are recorded and leave the population."""
        if self.monitor.settle() and self.monitor.active.any():
            active = self.monitor.active.tolist()
            self.keep_members([m for m in self.live.tolist() if active[m]])
            log.info("%d of %d members go on", len(self.live), len(self.members))

    def _checkpoint_due(self) -> bool:
        minutes = self.trainer.checkpoint_minutes
        return minutes > 0 and time.monotonic() - self.last_checkpoint >= 60 * minutes

    def _step(self, idx: Tensor, decay: str, p: Progress) -> None:
        p.step += 1
        p.position += 1
        factor = stepsize_factor(decay, p.step, p.epoch)
        for group in self.optimizer.param_groups:
            initial = group["initial_stepsize"]
            group["stepsize"] = initial if factor == 1.0 else initial * factor
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
        if p.epoch <= self.trainer.step_log_epochs:
            p.step_costs.append(masked)
            if self.trainer.step_log_parameters:
                p.step_parameters.append(self.flat_parameters().clone())
        every = self.trainer.moment_stats_every
        if every and p.step % every == 0:  # a host read, every so many steps only
            active = self.monitor.active.tolist()
            watched = {k: m for k, m in enumerate(self.live.tolist()) if active[m]}
            rows = second_moments(self.optimizer, self.parameter_names, watched)
            epoch = p.epoch - 1 + p.position / self.order.steps_per_epoch
            self.record.setdefault("moment_stats", []).extend(
                {"step": p.step, "epoch": epoch, **row} for row in rows
            )

    def _end_epoch(self, due: bool, bar: tqdm) -> None:
        p, record, trainer = self.progress, self.record, self.trainer
        self.settle()
        train_cost = (p.cost_sum / self.n_train).tolist()
        if p.step_costs:
            record["step_costs"]["cost"].extend(torch.stack(p.step_costs).tolist())
        if p.step_parameters:
            record["step_parameters"]["values"].extend(torch.stack(p.step_parameters).tolist())
        averaged = self.optimizer if trainer.evaluate_averaged else None
        with self.settings.autocast():  # evaluated as it trains (as Lightning does)
            columns = evaluation(self.model, self.data, trainer.eval_batch_size, self.monitor,
                                 due, averaged, self.subset, self.live)  # fmt: skip
        stepsize = self.optimizer.param_groups[0]["stepsize"]
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
        log.debug("epoch %d/%d: best train cost %.6g, %d of %d diverged, %.1f s", p.epoch,
                  trainer.epochs, best, len(self.monitor.diverged), len(self.members),
                  elapsed)  # fmt: skip
        bar.set_postfix(cost=f"{best:.4f}" if finite else "diverged", refresh=False)
        epoch = p.epoch
        self.progress = Progress(epoch=epoch + 1, step=p.step, order=self.order.state_dict())
        if not finite:  # nothing is left to train: say so now, not after the last epoch
            last = max(self.monitor.diverged.values(), default=p.step)
            self._end_piece("failed")
            record["reason"] = f"every member diverged (the last at step {last})"
            record["final"] = True  # training it again would diverge again
            self.save(checkpoint=False)
        elif epoch == trainer.epochs:
            self._end_piece("completed")
            self.save(checkpoint=False)
            if not trainer.keep_checkpoint:
                (self.out_dir / CHECKPOINT_NAME).unlink(missing_ok=True)
        else:
            every = trainer.checkpoint_every
            self.save(checkpoint=every > 0 and epoch % every == 0)

    def _stop(self, reason: str, stop: StopRequests) -> None:
        """Checkpoint between two steps, say how to continue, then do what was asked."""
        p = self.progress
        self._end_piece(reason)
        self.save(checkpoint=True)
        why = f"by {stop.signal_name()}" if reason == "interrupted" else "its time budget spent"
        log.warning("%s (%s) at epoch %d, step %d of %d: run the same command to continue",
                    reason, why, p.epoch, p.position, self.order.steps_per_epoch)  # fmt: skip
        if reason == "interrupted":
            stop.finish()  # returns only where the signal's own handler lets the run go on
            self._start_piece()


def train(config: DictConfig | Mapping[str, Any], out_dir: str | Path,
          started: float | None = None) -> dict[str, Any]:  # fmt: skip
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
            log.warning("the time budget (trainer.max_minutes=%g) is spent: %s not started",
                        budget, out_dir)  # fmt: skip
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


def _existing_run(cfg: dict[str, Any], settings: RunSettings,
                  out_dir: Path) -> dict[str, Any] | None:  # fmt: skip
    """The record of the run already in `out_dir` that this one continues; None for a fresh
    start (nothing there, or `resume=false`, which clears the folder's run)."""
    existing = read_record(out_dir)
    if existing is None and (out_dir / RECORD_NAME).is_file():
        if (out_dir / CHECKPOINT_NAME).is_file() and settings.resume:
            log.warning("%s cannot be read: the run continues from its checkpoint's copy of it",
                        out_dir / RECORD_NAME)  # fmt: skip
            existing = load_checkpoint(out_dir, torch.device("cpu"))["record"]  # type: ignore[index]
        else:
            log.warning("%s cannot be read and there is no checkpoint: the run starts afresh",
                        out_dir / RECORD_NAME)  # fmt: skip
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
        save_record({"format": FORMAT, "status": "failed", "reason": one_line(error),
                     "config": cfg, "members": [], "curves": [], "diverged": {},
                     "started": now(), "wall_time_s": 0.0}, out_dir)  # fmt: skip


# -- the command line -------------------------------------------------------------------------
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The project's config with command-line `overrides`, composed as `python -m
    adamrepro.train` would compose it (for drivers that train several runs in one process);
    an override Hydra cannot parse or apply is a one-line ConfigError."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose("train", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(hydra_line(error)) from None


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
        setting = ", ".join(f"{k} {m[k]:g}" for k in ("stepsize", "momentum", "beta1", "beta2")
                            if isinstance(m.get(k), (int, float)))  # fmt: skip
        text += (f"; best: member {best['member']} ({m.get('label', m['name'])}, {setting}, "
                 f"seed {m['seed']}), final train cost {best['train_cost']:.4g}")  # fmt: skip
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
            return stop(f"error: out of GPU memory ({reason}); train fewer members per run "
                        "or lower trainer.eval_batch_size", EXIT["config"])  # fmt: skip
        except KeyboardInterrupt:
            print(f"{job}interrupted: what was done is in {out_dir}; the same command "
                  "continues it", file=sys.stderr)  # fmt: skip
            sys.exit(EXIT["SIGINT"])
        status = record["status"]
        if status == "paused":
            return stop(f"paused: the time budget is spent; {out_dir} continues with the same "
                        "command", EXIT["paused"])  # fmt: skip
        if status == "failed":
            return stop(f"failed: {record.get('reason')} ({out_dir / RECORD_NAME})",
                        EXIT["diverged"])  # fmt: skip
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
            print("error: hydra/launcher=submitit_slurm needs a SLURM cluster (no srun on this "
                  "machine): run the sweep here with the default launcher or "
                  "hydra/launcher=joblib", file=sys.stderr)  # fmt: skip
            sys.exit(EXIT["config"])


if __name__ == "__main__":
    # The importable module's objects, not __main__'s: launchers pickle them (JobFailed).
    from adamrepro.train import main as _main

    _main()
