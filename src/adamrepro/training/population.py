"""The population of a run: its members (the grid points of the optimizer's settings, for
each seed), their settings stacked into one optimizer config, and the minibatches they read."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ..errors import ConfigError
from ..optim import DESCRIPTIVE_KEYS
from ..settings import MINIBATCH_ORDERS, seed_setting


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


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class MinibatchOrder:
    """Minibatches as index permutations of the training set, one permutation per epoch for
    each distinct seed: members with the same seed see the same minibatches.

    Yields indices of shape (B,) when all members share one seed, else (S, B) where member g
    reads row g % S. Populations list seeds fastest (`population`), so S is the number of
    seeds and each row is shared by every member of that seed; any other layout gets one row
    per member (S = G). The generators' states (`state_dict`) taken before an epoch's draw
    give that epoch's order again, so that a run can continue in the middle of an epoch.

    `order` (MINIBATCH_ORDERS): "random", a new permutation every epoch; "fixed", the
    permutation drawn once (from each seed) and the same minibatches walked in the same order
    every epoch: the data split once into fixed minibatches visited cyclically (the harness of
    Figure 2(b)'s SFO comparison); "replacement", the data split once into N = ceil(n / B)
    fixed minibatches as the SFO harness splits it (minibatch i: rows i, i + N, i + 2N, ... of
    the seed's permutation, sizes within one of each other), each step one of them drawn at
    random with replacement (the harness's first-order methods), an epoch being N steps;
    where members of different seeds draw minibatches of different sizes in one step, each is
    cut to the shortest (one row at most).
    """

    def __init__(
        self, seeds: Sequence[int], n: int, batch_size: int, order: str = "random"
    ) -> None:
        if order not in MINIBATCH_ORDERS:
            raise ValueError(f"order must be one of {', '.join(MINIBATCH_ORDERS)}, got {order!r}")
        distinct = list(dict.fromkeys(int(s) for s in seeds))
        if any(int(seed) != distinct[g % len(distinct)] for g, seed in enumerate(seeds)):
            distinct = [int(s) for s in seeds]  # not seed-fastest: one row per member
        self.generators = {s: torch.Generator().manual_seed(s) for s in dict.fromkeys(distinct)}
        self.row_seeds = distinct
        self.n, self.batch_size, self.order = n, batch_size, order
        self.steps_per_epoch = math.ceil(n / batch_size)

    def epoch(self, device: torch.device, skip: int = 0) -> Iterator[Tensor]:
        """The epoch's minibatches, after the first `skip` of them."""
        if self.order == "fixed":  # the first epoch's permutation, every epoch
            for s, g in self.generators.items():
                g.manual_seed(s)
        if self.order == "replacement":  # the fixed split; the generators draw the choices
            perms = {s: torch.randperm(self.n, generator=_seeded(s)) for s in self.generators}
            picks = {
                s: torch.randint(self.steps_per_epoch, (self.steps_per_epoch,), generator=g)
                for s, g in self.generators.items()
            }
        else:
            perms = {s: torch.randperm(self.n, generator=g) for s, g in self.generators.items()}
            picks = {s: torch.arange(self.steps_per_epoch) for s in self.generators}
        rows = torch.stack([perms[s] for s in self.row_seeds]).to(device)
        count = self.steps_per_epoch
        for step in range(skip, count):
            if self.order == "replacement":  # minibatch i: rows i, i + count, i + 2 count, ...
                chosen = [
                    row[int(picks[s][step]) :: count]
                    for row, s in zip(rows, self.row_seeds, strict=True)
                ]
                shortest = min(len(c) for c in chosen)  # sizes differ by one at most
                idx = torch.stack([c[:shortest] for c in chosen])
            else:
                start = step * self.batch_size
                idx = rows[:, start : start + self.batch_size]
            yield idx[0] if len(self.row_seeds) == 1 else idx

    def state_dict(self) -> dict[int, Tensor]:
        return {s: g.get_state() for s, g in self.generators.items()}

    def load_state_dict(self, state: Mapping[int, Tensor]) -> None:
        for s, g in self.generators.items():
            g.set_state(state[s])


def spread(values: Tensor, live: Tensor, members: int) -> Tensor:
    """Values of the live population (its members `live`, in its order) as rows of all
    `members`, NaN for those that left it."""
    if len(live) == members:
        return values
    full = values.new_full((members, *values.shape[1:]), math.nan)
    full[live] = values
    return full
