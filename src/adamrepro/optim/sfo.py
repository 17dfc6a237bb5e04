"""SFO, the sum-of-functions optimizer of Sohl-Dickstein, Poole & Ganguli (2014), "Fast
large-scale optimization by unifying stochastic gradient and quasi-Newton methods" (ICML 2014,
arXiv:1311.2115): the comparison of the Adam paper's Figure 2(b).

The objective is a sum over N fixed subfunctions (minibatches), F(theta) = sum_i f_i(theta).
SFO keeps, for each subfunction, a quadratic model built at the last point where it was
evaluated (its value, gradient and an approximate Hessian),

    g_i(x) = f_i(x_i) + (x - x_i)' df_i(x_i) + 1/2 (x - x_i)' H_i (x - x_i).

A step evaluates one subfunction at the current x, the one whose model was built furthest away
in the metric of the summed Hessians, updates its model (its value and gradient, and H_i by
BFGS over the last `max_history` pairs of its own position and gradient changes), then takes
the Newton step of the summed models, scaled by `step_scale`:

    x <- x - step_scale (sum_i H_i)^-1 sum_i (df_i(x_i) + H_i (x - x_i)).
Everything lives in a shared low-dimensional subspace, an orthonormal basis P (M x K) spanned
by the recent positions and gradients: models are K x K, and a new position or gradient adds
a direction; when K would exceed K_max the subspace collapses to the span of the current
position and each subfunction's last position and gradient. Memory: P holds M x K_max
numbers, K_max growing with N; this is the "memory linear in the number of minibatches" of
the Adam paper's section 6.2.

As in the SFO paper: the quadratic models in a shared subspace, one subfunction per step, the
distance rule, BFGS over each subfunction's own history, the active set that starts with two
subfunctions and grows when the noise between the active subfunctions' gradients rivals their
mean, and failed steps that halve `step_scale` (it relaxes towards 1 by 1/N a step).

Where the paper leaves a detail open, ours does what the authors' code does (`sfo.py` of
Sohl-Dickstein/Sum-of-Functions-Optimizer, Apache-2.0 since 2021, read and run beside ours by
scripts/sfo_reference.py; none of it is copied), each with a named flag whose other value is
what ours did before it was measured against theirs (2026-12):
- `initial_curvature="min_eig"`: a subfunction's BFGS recursion starts from beta I, beta the
  smallest curvature its (s, y) pairs show ("secant": y'y / s'y of the latest pair, near the
  largest curvature, which shortens every step in unexplored directions);
- `new_curvature="median_eig"`: a subfunction's first model is beta I, beta the summed
  Hessian's median eigenvalue over the number of active subfunctions ("median_beta": the
  median of the others' betas);
- `max_step_length_ratio=10`: once N subfunctions have been evaluated no step is longer than
  10x the mean length of the steps so far (None: no cap);
- `failure_backoff=True`: a failed step whose subfunction rose ten times or more what its
  model predicted is evaluated again 100x closer to the previous point, up to ten times.
And without a flag (ours before was a misreading): the starting subfunctions count as
`hessian_init` I in the summed Hessian until they are first evaluated, so no long step is
taken on one subfunction's model; a failed step is judged as theirs judges it (a first
evaluation against the subfunctions evaluated twice or more; a rise beyond the improvement
predicted for the others), evaluated at the previous point, and the lower of the two kept;
the active set's noise rule reads the subfunctions' last gradients, and its pass rule counts
every step; `step_scale` is kept above 1e-5. Ours still differs in: pairs with s'y <= 0 are
skipped (theirs keeps them and forces the result positive definite); a collapse keeps every
vector it spans (theirs a random 2N + 2 of them); no minimum step length. K_max = 3N + 3 as
theirs. Float64 by default, on the parameters' device.

SFO is not a population optimizer: it trains one member, and it chooses which minibatch to
evaluate, so it has its own driver (`adamrepro.studies.sfo_run`), not the training loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

Subfunction = Callable[[int], tuple[float, Tensor]]  # i -> (f_i, df_i) at the current theta
# How a subfunction's BFGS recursion starts (beta I): "min_eig", the smallest curvature its
# pairs show (`smallest_curvature`: the authors' code); "secant", y'y / s'y of its latest pair
# (near the largest curvature along that step: ours until 2026-12)
INITIAL_CURVATURES = ("min_eig", "secant")
# What a subfunction's first model starts from, before it has a pair: "median_eig", the
# summed Hessian's median eigenvalue over the number of active subfunctions (the authors'
# code); "median_beta", the median of the other subfunctions' starting scales (ours until
# 2026-12)
NEW_CURVATURES = ("median_eig", "median_beta")


@dataclass
class _Model:
    """One subfunction's quadratic model, in subspace coordinates."""

    x: Tensor | None = None  # where it was last evaluated (K)
    g: Tensor | None = None  # its gradient there (K)
    value: float = math.nan
    hessian: Tensor | None = None  # K x K
    beta: float = math.nan  # the scale its BFGS recursion starts from
    history: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # (s, y) pairs
    evaluations: int = 0

    def gradient(self, at: Tensor) -> Tensor:
        """The model's gradient at `at`: g + H (at - x)."""
        return self.g + self.hessian @ (at - self.x)


class SFO:
    """Minimises sum_i f_i over the flat vector of `params` (updated in place).

    `subfunction(i)` returns f_i and its gradient (a flat tensor) at the parameters' current
    values. `step()` evaluates one subfunction and moves; `events` counts failed steps,
    collapses and active-set growths."""

    def __init__(
        self,
        params: Sequence[Tensor],
        subfunction: Subfunction,
        n: int,
        max_history: int = 10,
        initial_active: int = 2,
        hessian_init: float = 1e6,
        max_gradient_noise: float = 1.0,
        selection: str = "distance",
        initial_curvature: str = "min_eig",
        new_curvature: str = "median_eig",
        max_step_length_ratio: float | None = 10.0,
        failure_backoff: bool = True,
        dtype: torch.dtype = torch.float64,
        seed: int = 0,
    ) -> None:
        if selection not in ("distance", "cyclic", "random"):
            raise ValueError(f"selection must be distance, cyclic or random, got {selection!r}")
        self.params = list(params)
        self.subfunction, self.n = subfunction, int(n)
        self.max_history, self.hessian_init = max_history, hessian_init
        self.max_gradient_noise, self.selection = max_gradient_noise, selection
        if initial_curvature not in INITIAL_CURVATURES:
            raise ValueError(f"initial_curvature must be one of {', '.join(INITIAL_CURVATURES)}")
        self.initial_curvature = initial_curvature
        if new_curvature not in NEW_CURVATURES:
            raise ValueError(f"new_curvature must be one of {', '.join(NEW_CURVATURES)}")
        self.new_curvature = new_curvature
        self.max_step_length_ratio, self.failure_backoff = max_step_length_ratio, failure_backoff
        self.dtype, self.device = dtype, self.params[0].device
        self.generator = torch.Generator().manual_seed(seed)
        theta = self._flat()
        self.m = theta.numel()
        self.k_max = min(3 * self.n + 3, self.m)
        self.basis = (
            (theta / theta.norm()).unsqueeze(1)
            if theta.norm() > 0
            else (self._random_direction().unsqueeze(1))
        )
        self.models = [_Model() for _ in range(self.n)]
        first = torch.randperm(self.n, generator=self.generator)[: min(initial_active, self.n)]
        self.active = torch.zeros(self.n, dtype=torch.bool)
        self.active[first] = True
        for i in first.tolist():  # counted in the summed Hessian until first evaluated
            self.models[i].beta = hessian_init
        self.step_scale = 1.0
        self.steps = 0
        self.cursor = 0
        self.since_growth = 0
        self.events = {"failed_steps": 0, "collapses": 0, "activations": 0}
        self.previous: Tensor | None = None  # the position before the last step
        self.predicted_improvement = 0.0
        self.distance = 0.0  # the length of every step taken, summed (the step-length cap)
        self.evaluations = 0

    # -- surviving interruptions ------------------------------------------------------------
    # What a step changes, besides the parameters (which the caller saves with its model):
    # tensors, numbers and plain containers, so that a checkpoint loads with weights_only.
    _SCALARS = (
        "step_scale", "steps", "cursor", "since_growth", "predicted_improvement", "distance",
        "evaluations",
    )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "basis": self.basis,
            "active": self.active,
            "previous": self.previous,
            "events": dict(self.events),
            "generator": self.generator.get_state(),
            "models": [
                {
                    "x": m.x,
                    "g": m.g,
                    "value": m.value,
                    "hessian": m.hessian,
                    "beta": m.beta,
                    "history": [[s, y] for s, y in m.history],
                    "evaluations": m.evaluations,
                }
                for m in self.models
            ],
            **{name: getattr(self, name) for name in self._SCALARS},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where `state_dict()` was taken (on the same subfunctions, and with the
        parameters put back as they were then)."""
        if int(state["n"]) != self.n:
            raise ValueError(f"the state is of {state['n']} subfunctions, this SFO has {self.n}")
        self.basis = state["basis"].to(self.device, self.dtype)
        self.active = state["active"].clone()
        self.previous = None if state["previous"] is None else state["previous"].to(self.dtype)
        self.events = dict(state["events"])
        self.generator.set_state(state["generator"])
        self.models = [
            _Model(
                x=m["x"],
                g=m["g"],
                value=float(m["value"]),
                hessian=m["hessian"],
                beta=float(m["beta"]),
                history=[(s, y) for s, y in m["history"]],
                evaluations=int(m["evaluations"]),
            )
            for m in state["models"]
        ]
        for name in self._SCALARS:
            setattr(self, name, state[name])

    # -- flat parameters ------------------------------------------------------------------
    def _flat(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params]).to(self.dtype)

    def _set(self, theta: Tensor) -> None:
        offset = 0
        with torch.no_grad():
            for p in self.params:
                p.copy_(theta[offset : offset + p.numel()].view_as(p).to(p.dtype))
                offset += p.numel()

    def _random_direction(self) -> Tensor:
        v = torch.randn(self._flat().numel(), generator=self.generator, dtype=self.dtype)
        return (v / v.norm()).to(self.device)

    # -- the subspace -------------------------------------------------------------------
    def _project(self, v: Tensor) -> Tensor:
        return self.basis.T @ v

    def _extend(self, v: Tensor) -> None:
        """Add v's direction to the basis (Gram-Schmidt, twice), projecting every model into
        the larger subspace; collapse when it would grow beyond K_max."""
        residual = v - self.basis @ (self.basis.T @ v)
        residual = residual - self.basis @ (self.basis.T @ residual)
        norm = residual.norm()
        if norm <= 1e-10 * max(float(v.norm()), 1e-300) or self.basis.shape[1] >= self.m:
            return
        if self.basis.shape[1] >= self.k_max:
            self._collapse(v)
            return
        self.basis = torch.cat([self.basis, (residual / norm).unsqueeze(1)], 1)
        for model in self.models:  # one more coordinate: zero in the stored vectors
            if model.x is not None:
                model.x = torch.cat([model.x, model.x.new_zeros(1)])
                model.g = torch.cat([model.g, model.g.new_zeros(1)])
                model.history = [
                    (torch.cat([s, s.new_zeros(1)]), torch.cat([y, y.new_zeros(1)]))
                    for s, y in model.history
                ]
                model.hessian = _grow(model.hessian, model.beta)

    def _collapse(self, v: Tensor) -> None:
        """The subspace spanned by the current position, v, and each active subfunction's
        last position and gradient; every model re-expressed in it."""
        self.events["collapses"] += 1
        old = self.basis
        vectors = [self._flat(), v]
        for model in self.models:
            if model.x is not None:
                vectors += [old @ model.x, old @ model.g]
        q, _ = torch.linalg.qr(torch.stack(vectors, 1))
        new = q[:, : min(q.shape[1], self.k_max)]
        change = new.T @ old  # K_new x K_old
        self.basis = new
        for model in self.models:
            if model.x is not None:
                model.x, model.g = change @ model.x, change @ model.g
                model.history = [(change @ s, change @ y) for s, y in model.history]
                model.hessian = change @ model.hessian @ change.T
                model.hessian = 0.5 * (model.hessian + model.hessian.T)
                model.hessian += model.beta * (
                    torch.eye(len(change), dtype=self.dtype, device=self.device) - change @ change.T
                )

    # -- the models ------------------------------------------------------------------------
    def _betas(self) -> list[float]:
        return [m.beta for m in self.models if not math.isnan(m.beta)]

    def _fit(self, model: _Model) -> None:
        """H = BFGS over the model's own (s, y) pairs from beta I (beta: the hessian_init for a
        subfunction with no usable pair while no other has one, else the median of the
        others' betas, else y'y / s'y of its latest usable pair)."""
        k = self.basis.shape[1]
        pairs = [(s, y) for s, y in model.history if float(s @ y) > 1e-12 * float(s @ s) > 0]
        if pairs and self.initial_curvature == "min_eig":
            model.beta = smallest_curvature([s for s, _ in pairs], [y for _, y in pairs])
        elif pairs:
            s, y = pairs[-1]
            model.beta = float(y @ y) / float(s @ y)
        elif model.evaluations <= 1 and self.new_curvature == "median_eig":
            # a first evaluation: the summed Hessian's median eigenvalue over the active count
            summed = self._summed_hessian()
            model.beta = (
                float(torch.linalg.eigvalsh(summed).median()) / int(self.active.sum())
                if summed is not None
                else self.hessian_init
            )
        elif math.isnan(model.beta):
            others = self._betas()
            median = torch.tensor(others, dtype=torch.float64).median()
            model.beta = float(median) if others else self.hessian_init
        hessian = model.beta * torch.eye(k, dtype=self.dtype, device=self.device)
        for s, y in pairs:
            hs = hessian @ s
            hessian = hessian - torch.outer(hs, hs) / float(s @ hs)
            hessian = hessian + torch.outer(y, y) / float(s @ y)
        model.hessian = 0.5 * (hessian + hessian.T)

    def _evaluated(self) -> list[int]:
        return [
            i for i in torch.nonzero(self.active).flatten().tolist() if self.models[i].x is not None
        ]

    def _summed_hessian(self) -> Tensor | None:
        """The active models' Hessians summed; an active subfunction with no model yet counts
        as its curvature times I (`hessian_init` for the first ones, as the authors' code
        counts them), none where it has none."""
        k = self.basis.shape[1]
        hessian = None
        for i in torch.nonzero(self.active).flatten().tolist():
            m = self.models[i]
            if m.hessian is not None:
                part = m.hessian
            elif not math.isnan(m.beta):
                part = m.beta * torch.eye(k, dtype=self.dtype, device=self.device)
            else:
                continue
            hessian = part if hessian is None else hessian + part
        return None if hessian is None else 0.5 * (hessian + hessian.T)

    def _summed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The summed models' Hessian, and their gradient at x."""
        grad = None
        for i in self._evaluated():
            g = self.models[i].gradient(x)
            grad = g if grad is None else grad + g
        hessian = self._summed_hessian()
        assert hessian is not None and grad is not None
        return hessian, grad

    def _predicted(self, j: int, x: Tensor) -> float:
        m = self.models[j]
        d = x - m.x
        return m.value + float(m.g @ d) + 0.5 * float(d @ (m.hessian @ d))

    def _choose(self, x: Tensor) -> int:
        """An active subfunction evaluated fewer than twice; else by `selection` (distance: the
        one whose model was built furthest from x in the summed Hessian's metric; when all are
        at x, a new subfunction is activated and chosen)."""
        active = torch.nonzero(self.active).flatten().tolist()
        young = [i for i in active if self.models[i].evaluations < 2]
        if young:
            return young[0]
        if self.selection == "cyclic":
            self.cursor = (self.cursor + 1) % len(active)
            return active[self.cursor]
        if self.selection == "random":
            return active[int(torch.randint(len(active), (1,), generator=self.generator))]
        hessian, _ = self._summed(x)
        distances = {
            i: float((x - self.models[i].x) @ (hessian @ (x - self.models[i].x))) for i in active
        }
        if max(distances.values()) < 1e-12 and not bool(self.active.all()):
            return self._activate()
        return max(distances, key=distances.get)

    def _activate(self) -> int:
        inactive = torch.nonzero(~self.active).flatten()
        pick = int(inactive[torch.randint(len(inactive), (1,), generator=self.generator)])
        self.active[pick] = True
        self.events["activations"] += 1
        self.since_growth = 0
        return pick

    def _maybe_grow(self, failed: bool) -> None:
        """One more active subfunction when what the active ones agree on (the mean of their
        last gradients) is no larger than the noise between them (its standard error), both in
        the metric of the inverse summed Hessian, times `max_gradient_noise`; on a failed step;
        or when more steps than active subfunctions have passed since the last growth. Only
        once every active one has been evaluated twice (the authors' rule)."""
        active = torch.nonzero(self.active).flatten().tolist()
        self.since_growth += 1
        if bool(self.active.all()) or any(self.models[i].evaluations < 2 for i in active):
            return
        if failed or self.since_growth > len(active) + 1:
            self._activate()
            return
        hessian = self._summed_hessian()
        assert hessian is not None
        grads = torch.stack([self.models[i].g for i in active])
        mean = grads.mean(0)
        inverse = torch.linalg.inv(hessian)
        signal = float(mean @ (inverse @ mean))
        centred = grads - mean
        noise = float(torch.einsum("ik,kl,il->", centred, inverse, centred))
        noise /= len(active) * (len(active) - 1)
        if noise >= self.max_gradient_noise * signal:
            self._activate()

    # -- one step -----------------------------------------------------------------------
    def _evaluate(self, j: int, theta: Tensor) -> tuple[float, Tensor]:
        self._set(theta)
        self.evaluations += 1
        value, grad = self.subfunction(j)
        return float(value), grad.reshape(-1).to(self.dtype)

    def step(self) -> tuple[int, float]:
        """Evaluate one subfunction at the current position, update its model (after a failed
        step: the better of the new and the previous position, the other one's evaluation
        kept in its history), then move towards the minimum of the summed models. Returns (the
        subfunction evaluated, its value there)."""
        theta = self._flat()
        x = self._project(theta)
        j = self._choose(x)
        model = self.models[j]
        value, grad = self._evaluate(j, theta)
        extra = None  # the other evaluation of a failed step, for the history
        failed = self._failed(j, value, grad, x)
        if failed:
            self.events["failed_steps"] += 1
            self.step_scale /= 2
            before, before_grad = self._evaluate(j, self.previous)
            if self.failure_backoff:
                theta, value, grad = self._back_off(j, x, theta, value, grad, before)
            if before <= value or not math.isfinite(value):  # back to the previous position
                if math.isfinite(value) and bool(torch.isfinite(grad).all()):
                    extra = (theta, grad)
                theta, value, grad = self.previous, before, before_grad
            else:
                extra = (self.previous, before_grad)
        else:
            self.step_scale = 1 / self.n + self.step_scale * (1 - 1 / self.n)
        self.step_scale = max(self.step_scale, 1e-5)
        if self.previous is not None:
            self.distance += float((theta - self.previous).norm())
        self._set(theta)
        for vector in (grad, *(extra[1:] if extra else ())):
            self._extend(vector)
        for position, gradient in ([extra] if extra else []) + [(theta, grad)]:
            x_new, g_new = self._project(position), self._project(gradient)
            if model.x is not None:
                pair = (x_new - model.x, g_new - model.g)
                model.history = [*model.history, pair][-self.max_history :]
            model.x, model.g = x_new, g_new
        model.value = value
        model.evaluations += 1
        self._fit(model)
        self._move()
        self._maybe_grow(failed)
        self.steps += 1
        return j, value

    def _failed(self, j: int, value: float, grad: Tensor, x: Tensor) -> bool:
        """The authors' test of the last step: non-finite; a first evaluation above the mean
        plus 3 standard deviations of the subfunctions evaluated twice or more; or a
        subfunction that rose above its last value by more than the improvement the last step
        predicted for the others (in all, less what its own model predicted for it)."""
        if not math.isfinite(value) or not bool(torch.isfinite(grad).all()):
            return self.previous is not None
        if self.previous is None:
            return False
        model = self.models[j]
        if model.x is None:
            values = torch.tensor(
                [m.value for m in self.models if m.evaluations >= 2], dtype=torch.float64
            )
            if len(values) == 0:
                return False
            spread = float(values.std()) if len(values) > 1 else 0.0
            return value > float(values.mean()) + 3 * spread
        if value <= model.value:
            return False
        predicted = self._predicted(j, x)
        return value - predicted > self.predicted_improvement - (model.value - predicted)

    def _back_off(
        self, j: int, x: Tensor, theta: Tensor, value: float, grad: Tensor, before: float
    ) -> tuple[Tensor, float, Tensor]:
        """After a failed step whose rise is ten times or more what the subfunction's model
        predicted, move 100x closer to the previous position and evaluate again, up to ten
        times (the authors' code: it keeps an exploded value out of the history)."""
        model = self.models[j]
        expected = abs(self._predicted(j, x) - model.value) if model.x is not None else math.nan
        if not math.isfinite(expected):
            expected = abs(value - before)
        expected = max(expected, 1e-12) if math.isfinite(expected) else 1e-12
        for _ in range(10):
            if value - before < 10 * expected:
                break
            theta = 0.99 * self.previous + 0.01 * theta
            value, grad = self._evaluate(j, theta)
        return theta, value, grad

    def _move(self) -> None:
        """theta <- theta - step_scale (sum H)^-1 (the summed models' gradient at theta), its
        length at most `max_step_length_ratio` times the mean length of the steps so far (once
        N subfunctions have been evaluated; the authors' cap)."""
        theta = self._flat()
        x = self._project(theta)
        hessian, grad = self._summed(x)
        step = -self.step_scale * torch.linalg.solve(hessian, grad)
        length = float(step.norm())
        if self.max_step_length_ratio is not None and self.evaluations > self.n and length > 0:
            cap = self.max_step_length_ratio * self.distance / self.evaluations
            if length > cap:
                step = step * (cap / length)
        self.previous = theta
        self.predicted_improvement = 0.5 * float(step @ (hessian @ step))
        self._set(theta + self.basis @ step)


def smallest_curvature(steps: Sequence[Tensor], changes: Sequence[Tensor]) -> float:
    """The smallest curvature the pairs (s, y) show: with D = Y S^+ (y = H s on each pair),
    the singular values of D are |H|'s eigenvalues within the span of the steps; the smallest
    of the h largest, h the number of pairs (the authors' code starts BFGS from it)."""
    s, y = torch.stack(list(steps), 1), torch.stack(list(changes), 1)
    d = y @ torch.linalg.pinv(s)
    values = torch.linalg.svdvals(d)[: len(steps)]
    return float(values.min())


def _grow(hessian: Tensor, beta: float) -> Tensor:
    """A K x K model Hessian as (K + 1) x (K + 1): beta I in the new direction."""
    k = hessian.shape[0]
    grown = hessian.new_zeros(k + 1, k + 1)
    grown[:k, :k] = hessian
    grown[k, k] = beta
    return grown
