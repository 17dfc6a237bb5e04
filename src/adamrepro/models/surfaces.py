"""Small problems: 2-D surfaces on which a point is the whole model (DeepOBS's two_d problems).

A population of points is a parameter of shape (G, 2): every member one optimizer setting,
all started at the surface's start, so that the training loop, the optimizers, divergence
and records serve these pictures unchanged. The cost of a step is f(theta) plus a noise term
linear in theta, (mean of the minibatch's noise rows) . theta, whose gradient is that noise:
with no noise (the default) the path is plain gradient-based descent on f.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError

Pair = tuple[float, float]


@dataclass(frozen=True)
class Surface:
    """f(x, y), its gradient (written out, checked against autograd in the tests), where paths
    start, where the minimum is, and the box a figure shows."""

    name: str
    formula: str
    f: Callable[[Tensor, Tensor], Tensor]
    gradient: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    start: Pair
    minimum: Pair
    box: tuple[float, float, float, float]  # x from, x to, y from, y to
    saddle: Pair | None = None

    @property
    def f_min(self) -> float:
        x, y = self.minimum
        return float(
            self.f(torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64))
        )


_ROOT2 = math.sqrt(2.0)


def _bowl(x, y):
    return x**2 / 20 + y**2


def _valley(x, y):  # rotated by 45 degrees: u along the valley, v across it
    u, v = (x + y) / _ROOT2, (x - y) / _ROOT2
    return u**2 / 200 + v**2


def _valley_gradient(x, y):
    u, v = (x + y) / _ROOT2, (x - y) / _ROOT2
    du, dv = u / 100, 2 * v
    return (du + dv) / _ROOT2, (du - dv) / _ROOT2


def _saddle(x, y):
    return x**2 + y**4 / 4 - y**2 / 2


def _rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _beale_gradient(x, y):
    a1, a2, a3 = 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3
    dx = 2 * a1 * (y - 1) + 2 * a2 * (y**2 - 1) + 2 * a3 * (y**3 - 1)
    dy = 2 * a1 * x + 4 * a2 * x * y + 6 * a3 * x * y**2
    return dx, dy


SURFACES = {
    s.name: s
    for s in (
        Surface(
            "bowl",
            "x^2/20 + y^2",
            _bowl,
            lambda x, y: (x / 10, 2 * y),
            start=(-7.0, 2.0),
            minimum=(0.0, 0.0),
            box=(-8, 8, -3, 3),
        ),
        Surface(
            "valley",
            "u^2/200 + v^2, u = (x+y)/sqrt2, v = (x-y)/sqrt2",
            _valley,
            _valley_gradient,
            start=(-5.0, -6.5),
            minimum=(0.0, 0.0),
            box=(-8, 8, -8, 8),
        ),
        Surface(
            "saddle",
            "x^2 + y^4/4 - y^2/2",
            _saddle,
            lambda x, y: (2 * x, y**3 - y),
            start=(1.0, 1e-3),
            minimum=(0.0, 1.0),
            box=(-1.5, 1.5, -1.5, 1.5),
            saddle=(0.0, 0.0),
        ),
        Surface(
            "rosenbrock",
            "(1-x)^2 + 100 (y-x^2)^2",
            _rosenbrock,
            lambda x, y: (-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)),
            start=(-1.5, 2.0),
            minimum=(1.0, 1.0),
            box=(-2, 2, -1, 3),
        ),
        Surface(
            "beale",
            "(1.5-x+xy)^2 + (2.25-x+xy^2)^2 + (2.625-x+xy^3)^2",
            _beale,
            _beale_gradient,
            start=(1.0, 1.0),
            minimum=(3.0, 0.5),
            box=(-0.5, 4, -1.5, 2),
        ),
    )
}


class SurfaceModel(nn.Module):
    """G points on a surface: `position` (G, 2), every member started at `start` (default:
    the surface's). `cost` gives f per member plus the minibatch's noise term; `evaluate`
    gives f and its gap to the minimum, noise-free."""

    def __init__(
        self, seeds: Sequence[int], surface: str = "bowl", start: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        if surface not in SURFACES:
            raise ConfigError(f"unknown surface {surface!r}; choose one of {', '.join(SURFACES)}")
        self.surface = SURFACES[surface]
        begin = torch.tensor(list(start or self.surface.start), dtype=torch.float32)
        if begin.shape != (2,):
            raise ConfigError(f"model.start must be two numbers, got {list(start or [])}")
        self.position = nn.Parameter(begin.repeat(len(seeds), 1))

    @property
    def members(self) -> int:
        return self.position.shape[0]

    def value(self) -> Tensor:
        return self.surface.f(self.position[:, 0], self.position[:, 1])

    def cost(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        noise = x.reshape(-1, x.shape[-1]).mean(0)  # a (B, 2) or (S, B, 2) minibatch
        return self.value() + self.position @ noise

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor | None, batch_size: int) -> dict[str, Tensor]:
        value = self.value()
        gap = value - self.surface.f_min
        return {"cost": value, "loss": gap, "accuracy": torch.full_like(value, float("nan"))}
