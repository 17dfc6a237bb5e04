"""The one training loop of the project, and its command line.

    python -m adamrepro.train experiment=mnist_logreg optimizer=adam optimizer.stepsize=3e-3
    python -m adamrepro.train -m experiment=mnist_logreg optimizer=adam,adagrad \
        optimizer.stepsize=1e-3,1e-2

A run trains a *population*: G members of the same model, each with its own hyperparameters
(a grid point) and seed. Members with the same seed share their initialisation and their
minibatches; each seed has its own. An ordinary run is a population of one.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from tqdm.auto import tqdm

from .data import load_data
from .errors import ConfigError, DataError
from .models import build_model
from .optim import DESCRIPTIVE_KEYS, build_optimizer
from .records import environment, save_record

STEPSIZE_DECAYS = ("none", "sqrt_step", "sqrt_epoch")


def population(config: DictConfig | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The members of the run: the optimizer config with each combination of its grid's
    values, for each seed.

    The grid is `sweep.grids[<optimizer label>]` (the figure's protocol) updated by `grid`
    (setting -> list of values, for a one-off); the seeds are `sweep.seeds`, else [seed].
    """
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    optimizer = dict(config["optimizer"])
    sweep = config.get("sweep") or {}
    grid = {
        **(sweep.get("grids") or {}).get(optimizer.get("label"), {}),
        **(config.get("grid") or {}),
    }
    unknown = sorted(set(grid) - set(optimizer) - set(DESCRIPTIVE_KEYS))
    if unknown:
        raise ConfigError(
            f"grid names {', '.join(unknown)}, which optimizer "
            f"{optimizer.get('name')!r} does not have"
        )
    seeds = list(sweep.get("seeds") or [config["seed"]])
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
    per member (S = G).
    """

    def __init__(self, seeds: Sequence[int], n: int, batch_size: int) -> None:
        distinct = list(dict.fromkeys(int(s) for s in seeds))
        if any(int(seed) != distinct[g % len(distinct)] for g, seed in enumerate(seeds)):
            distinct = [int(s) for s in seeds]  # not seed-fastest: one row per member
        self.generators = {s: torch.Generator().manual_seed(s) for s in dict.fromkeys(distinct)}
        self.row_seeds = distinct
        self.n, self.batch_size = n, batch_size
        self.steps_per_epoch = math.ceil(n / batch_size)

    def epoch(self, device: torch.device) -> Iterator[Tensor]:
        perms = {s: torch.randperm(self.n, generator=g) for s, g in self.generators.items()}
        rows = torch.stack([perms[s] for s in self.row_seeds]).to(device)
        for start in range(0, self.n, self.batch_size):
            idx = rows[:, start : start + self.batch_size]
            yield idx[0] if len(self.row_seeds) == 1 else idx


class DivergenceMonitor:
    """Marks a member diverged at the first step whose cost is not finite or exceeds
    `factor` times its first cost; from then on the optimizer leaves it frozen and its curves
    read NaN. The other members go on untouched."""

    def __init__(self, members: int, factor: float, device: torch.device) -> None:
        self.active = torch.ones(members, dtype=torch.bool, device=device)
        self.first: Tensor | None = None
        self.factor = factor
        self.diverged: dict[str, int] = {}

    def check(self, cost: Tensor, step: int, optimizer: torch.optim.Optimizer) -> Tensor:
        cost = cost.detach()
        if self.first is None:
            self.first = cost.clone()
        bad = self.active & ~(torch.isfinite(cost) & (cost <= self.factor * self.first))
        if bool(bad.any()):
            for k in bad.nonzero().flatten().tolist():
                self.diverged[str(k)] = step
            self.active &= ~bad
            for group in optimizer.param_groups:
                group["frozen"] = ~self.active
        return self.active

    def mask(self, values: Tensor) -> Tensor:
        """`values` (one per member) with NaN for the diverged members."""
        return torch.where(self.active, values, torch.full_like(values, math.nan))


def evaluation(model: torch.nn.Module, data: Any, batch_size: int, monitor: DivergenceMonitor,
               due: bool) -> dict[str, list[float]]:  # fmt: skip
    """The end-of-epoch columns of every member: full-training-set cost, test loss and test
    accuracy (NaN for the diverged members, and for all when no evaluation is `due`)."""
    if not due:
        nan = [math.nan] * len(monitor.active)
        return {"train_cost_full": nan, "test_loss": nan, "test_accuracy": nan}
    full = model.evaluate(data.x_train, data.y_train, batch_size)
    test = model.evaluate(data.x_test, data.y_test, batch_size)
    return {
        "train_cost_full": monitor.mask(full["cost"]).tolist(),
        "test_loss": monitor.mask(test["loss"]).tolist(),
        "test_accuracy": monitor.mask(test["accuracy"]).tolist(),
    }


def _check_trainer(trainer: Mapping[str, Any]) -> None:
    for key in ("epochs", "batch_size", "eval_every"):
        if int(trainer[key]) < 1:
            raise ConfigError(f"trainer.{key} must be at least 1, got {trainer[key]}")
    if trainer["stepsize_decay"] not in STEPSIZE_DECAYS:
        raise ConfigError(
            f"trainer.stepsize_decay must be one of {', '.join(STEPSIZE_DECAYS)}, "
            f"got {trainer['stepsize_decay']!r}"
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} asked for, but no CUDA device is available")
    return torch.device(name)


def train(config: DictConfig | Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    """Train the population that `config` describes; write and return its record."""
    cfg: dict[str, Any] = (
        OmegaConf.to_container(config, resolve=True)
        if isinstance(config, DictConfig)
        else dict(config)
    )  # type: ignore[assignment]
    trainer = cfg["trainer"]
    _check_trainer(trainer)
    device = resolve_device(str(cfg.get("device", "auto")))
    dtype = getattr(torch, str(cfg.get("dtype", "float32")))
    torch.manual_seed(int(cfg["seed"]))

    members = population(cfg)
    seeds = [m["seed"] for m in members]
    settings = stack_settings(members)
    data = load_data(cfg["data"]).to(device, dtype)
    model = build_model(cfg["model"], data, seeds).to(device, dtype)
    optimizer = build_optimizer(model.parameters(), settings)
    for group in optimizer.param_groups:
        group["initial_stepsize"] = group["stepsize"]

    record: dict[str, Any] = {
        "format": "adamrepro.record/1",
        "status": "running",
        "experiment": cfg.get("experiment_name", ""),
        "config": cfg,
        "members": members,
        "seed": int(cfg["seed"]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": 0.0,
        **environment(device),
        "curves": [],
        "diverged": {},
    }
    n_train, epochs = len(data.x_train), int(trainer["epochs"])
    order = MinibatchOrder(seeds, n_train, int(trainer["batch_size"]))
    decay, eval_batch = str(trainer["stepsize_decay"]), int(trainer["eval_batch_size"])
    monitor = DivergenceMonitor(len(members), float(trainer["divergence_factor"]), device)
    started = time.perf_counter()
    bar = tqdm(
        total=epochs * order.steps_per_epoch,
        desc=str(record["experiment"] or "train"),
        unit="step",
        disable=not trainer.get("progress", True),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    eval_every, step_log_epochs = int(trainer["eval_every"]), int(trainer["step_log_epochs"])
    if step_log_epochs:
        record["step_costs"] = {"steps_per_epoch": order.steps_per_epoch, "cost": []}
    step = 0
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            cost_sum = torch.zeros(len(members), device=device, dtype=torch.float64)
            step_costs: list[Tensor] = []
            for idx in order.epoch(device):
                step += 1
                factor = stepsize_factor(decay, step, epoch)
                for group in optimizer.param_groups:
                    group["stepsize"] = group["initial_stepsize"] * factor
                cost = model.cost(data.x_train[idx], data.y_train[idx])
                active = monitor.check(cost, step, optimizer)
                optimizer.zero_grad(set_to_none=True)
                # Members are independent: each gets the gradient of its own cost only.
                torch.where(active, cost, 0.0).sum().backward()
                optimizer.step()
                masked = monitor.mask(cost.detach().double())
                cost_sum += masked * idx.shape[-1]
                if epoch <= step_log_epochs:
                    step_costs.append(masked)
                bar.update(1)
            train_cost = (cost_sum / n_train).tolist()
            if step_costs:
                record["step_costs"]["cost"].extend(torch.stack(step_costs).tolist())
            columns = evaluation(
                model, data, eval_batch, monitor, epoch % eval_every == 0 or epoch == epochs
            )
            elapsed = time.perf_counter() - started
            for k in range(len(members)):
                row = {"member": k, "epoch": epoch, "train_cost": train_cost[k]}
                row.update({name: values[k] for name, values in columns.items()})
                record["curves"].append({**row, "wall_time_s": elapsed})
            record["diverged"] = monitor.diverged
            record["wall_time_s"] = elapsed
            save_record(record, out_dir)
            finite = [c for c in train_cost if math.isfinite(c)]
            bar.set_postfix(cost=f"{min(finite):.4f}" if finite else "diverged", refresh=False)
        record["status"] = "completed"
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        raise
    finally:  # whatever stopped the run, its record says how far it got
        bar.close()
        record["wall_time_s"] = time.perf_counter() - started
        save_record(record, out_dir)
    return record


CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


def main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
    def _run(cfg: DictConfig) -> float:
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            record = train(cfg, out_dir)
        except (ConfigError, DataError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print(f"interrupted: what was done is in {out_dir}", file=sys.stderr)
            sys.exit(130)
        final = [r["train_cost"] for r in record["curves"] if r["epoch"] == cfg.trainer.epochs]
        print(
            f"record: {out_dir / 'record.json'}  final train cost: "
            + ", ".join(f"{c:.4f}" for c in final)
        )
        return min(final)

    _run()


if __name__ == "__main__":
    main()
