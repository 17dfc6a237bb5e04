"""The conformance check: an optimizer that declares settings under which it *is* Adam (or SGD)
is stepped beside ours, from the same point on the same small problem, and must agree to
float rounding; a port that silently differs (eps inside the root, no bias correction, a
momentum buffer of another form, a weight decay left on) shows in a few steps.

The problem: L2-regularised logistic regression on 64 fixed random rows of 12 features, one
member, float64, 60 full-batch steps; the gradient changes at every step with the point, so
the two trajectories agree only if every step does. Agreement: the largest difference between
the two parameter vectors at any step, over the parameters' scale, at most 1e-9.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..optim import build_optimizer
from .spec import OptimizerSpec

STEPS = 60
TOLERANCE = 1e-9
OURS = {"adam": "adam", "sgd": "sgd"}


@dataclass(frozen=True)
class Conformance:
    kind: str  # adam | sgd
    largest_difference: float  # relative to the parameters' scale, over every step
    steps: int

    @property
    def agrees(self) -> bool:
        return self.largest_difference <= TOLERANCE

    def line(self, label: str) -> str:
        verdict = "agrees with" if self.agrees else "DIFFERS from"
        return (
            f"{label} under its {self.kind} settings {verdict} ours: largest difference "
            f"{self.largest_difference:.2e} of the parameters' scale over {self.steps} steps "
            f"(tolerance {TOLERANCE:g})"
        )


def _problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 12, generator=gen, dtype=torch.float64)
    y = (torch.randn(64, generator=gen, dtype=torch.float64) > 0).to(torch.float64)
    start = 0.3 * torch.randn(1, 12, generator=gen, dtype=torch.float64)
    return x, y, start


def _trajectory(config: dict[str, Any], steps: int) -> list[torch.Tensor]:
    x, y, start = _problem()
    theta = start.clone().requires_grad_(True)
    optimizer = build_optimizer([theta], config)
    path = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        z = x @ theta[0]
        cost = torch.nn.functional.softplus(z).sub(y * z).mean() + 1e-3 * theta.square().sum()
        cost.backward()
        optimizer.step()
        path.append(theta.detach().clone())
    return path


def check(spec: OptimizerSpec, steps: int = STEPS) -> list[Conformance]:
    """Each reduction the spec declares, stepped beside ours."""
    results = []
    for kind, entry in spec.reduces_to.items():
        theirs = spec.optimizer_config(entry.get("settings") or {})
        ours = {"name": OURS[kind], "label": f"ours ({kind})", **(entry.get("ours") or {})}
        if "stepsize" not in ours:
            key = spec.stepsize_key
            if key is None or key not in theirs:
                raise ConfigError(
                    f"reduces_to.{kind}: give ours' stepsize (ours: {{stepsize: ...}}): "
                    f"{spec.label} has no stepsize setting to copy"
                )
            ours["stepsize"] = theirs[key]
        if kind == "adam" and "betas" in theirs and "beta1" not in ours:
            ours["beta1"], ours["beta2"] = (float(b) for b in theirs["betas"])
        if "eps" in theirs and "eps" not in ours and kind == "adam":
            ours["eps"] = theirs["eps"]
        a, b = _trajectory(theirs, steps), _trajectory(ours, steps)
        scale = max(float(p.abs().max()) for p in b)
        largest = max(float((p - q).abs().max()) for p, q in zip(a, b, strict=True)) / scale
        results.append(Conformance(kind, largest, steps))
    return results
