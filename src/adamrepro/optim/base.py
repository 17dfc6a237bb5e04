"""The machinery shared by every optimizer of the paper.

Each optimizer is written the way optax writes one: a function that initialises the state of
one parameter (`init_state`) and a function that updates that parameter in place from its
gradient (`update`), the latter reading like the paper's equation. `PaperOptimizer` turns such
a pair into a `torch.optim.Optimizer`, so that it can be used wherever a torch optimizer is.

Populations. A hyperparameter may be a number or a 1-D tensor of length G. A tensor is read as
one value per *member*: the parameters then carry a leading member axis of size G (a whole
stepsize grid trained as one batched model), and the value is broadcast over that axis, so
member k of every parameter is updated with the k-th value. G = 1 with plain numbers is the
ordinary optimizer; there is only one code path.

Stepsize schedules. alpha_t = alpha * decay(t), with the decays of section 6.1 (`DECAYS`: none,
1/sqrt(t), 1/sqrt(epoch)), is computed in `step` from each parameter's own step count t, as
the paper writes it: `schedule(decay, steps_per_epoch)` sets it; the settings keep alpha.

Speed. The state is updated in place, and what an equation needs beside it (g^2, a
denominator, a scaled step) is computed into `work`, scratch tensors shaped like the parameter
that are made once and reused (they are not state, and are never saved); what is still made
per step is small (a per-member stepsize of G numbers under a decay, a Python float). Nothing
in `step` reads a value back to the host, so on a GPU the step never waits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError

Hyper = float | Tensor
DECAYS = ("none", "sqrt_step", "sqrt_epoch")


def decay_factor(decay: str, t: int, steps_per_epoch: int = 1) -> float:
    """alpha_t / alpha at step t (1, 2, ...): 1, 1/sqrt(t), or 1/sqrt(the epoch t is in)."""
    if decay == "sqrt_step":
        return 1.0 / math.sqrt(t)
    if decay == "sqrt_epoch":
        return 1.0 / math.sqrt((t - 1) // steps_per_epoch + 1)
    return 1.0


def kept_state(state: Any, replaced: dict[Tensor, Tensor], rows: Tensor) -> Any:
    """An optimizer's per-parameter state after its population shrank to `rows`: keyed by the
    new parameters (`replaced[old]`), each state tensor shaped like its parameter cut to
    those rows, anything else as it was."""
    kept = type(state)()
    for old, new in replaced.items():
        if old in state:
            kept[new] = {
                k: v[rows] if isinstance(v, Tensor) and v.shape == old.shape else v
                for k, v in state[old].items()
            }
    return kept


def checked_decay(decay: str) -> str:
    """`decay`, or one ConfigError line when it is none of DECAYS."""
    if decay not in DECAYS:
        raise ConfigError(f"the stepsize decay must be one of {', '.join(DECAYS)}, got {decay!r}")
    return decay


def member_view(value: Any, param: Tensor) -> Any:
    """Broadcast a per-member hyperparameter of shape (G,) over a parameter of shape (G, ...)."""
    if not isinstance(value, Tensor) or value.dim() == 0:
        return value
    if param.dim() == 0 or param.shape[0] != value.shape[0]:
        raise ConfigError(
            f"a hyperparameter has {value.shape[0]} members but a parameter has shape "
            f"{tuple(param.shape)}: its leading (member) axis must match"
        )
    return value.to(dtype=param.dtype, device=param.device).view(-1, *([1] * (param.dim() - 1)))


def _values(value: Hyper) -> list[float]:
    if isinstance(value, Tensor):
        return value.detach().flatten().tolist()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"expected a number, got {value!r}")
    return [float(value)]


def check_range(name: str, value: Hyper, low: float, high: float | None = None) -> None:
    """Raise a one-line ConfigError unless every member's value is finite and low <= value
    (< high)."""
    try:
        values = _values(value)
    except ConfigError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    for v in values:
        if not math.isfinite(v):
            raise ConfigError(f"{name} must be finite, got {v:g}")
        if not (v >= low and (high is None or v < high)):
            bound = f"in [{low:g}, {high:g})" if high is not None else f">= {low:g}"
            raise ConfigError(f"{name} must be {bound}, got {v:g}")


class PaperOptimizer(torch.optim.Optimizer):
    """A `torch.optim.Optimizer` built from an (init_state, update) pair.

    Subclasses set `defaults_` (every hyperparameter with its paper default), `ranges`
    (name -> (low, high), checked for every param group) and implement `init_state` and `update`.
    The per-parameter state carries `step`, the t of the paper's equations (starting at 1).

    `keep_members` follows a population that shrank (the training loop drops the members that
    diverge): state tensors and per-member settings keep the rows of the members that are left.
    """

    defaults_: ClassVar[dict[str, Any]] = {}
    ranges: ClassVar[dict[str, tuple[float, float | None]]] = {}

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], **hyperparameters: Any) -> None:
        self._check_known(hyperparameters, "has no setting")
        super().__init__(params, {**self.defaults_, **hyperparameters})
        self.decay, self.steps_per_epoch = "none", 1

    def schedule(self, decay: str, steps_per_epoch: int = 1) -> None:
        """alpha_t = alpha * decay_factor(decay, t, steps_per_epoch) from here on."""
        self.decay, self.steps_per_epoch = checked_decay(decay), int(steps_per_epoch)

    def current_stepsize(self, group: dict[str, Any]) -> Hyper:
        """alpha_t of the last step the group took (alpha before its first)."""
        steps = [self.state[p]["step"] for p in group["params"] if self.state.get(p)]
        if not steps or self.decay == "none":
            return group["stepsize"]
        return group["stepsize"] * decay_factor(self.decay, steps[0], self.steps_per_epoch)

    def _check_known(self, settings: Iterable[str], says: str) -> None:
        unknown = sorted(set(settings) - set(self.defaults_) - {"params"})
        if unknown:
            raise ConfigError(
                f"{type(self).__name__} {says} {', '.join(unknown)}; "
                f"its settings are {', '.join(self.defaults_)}"
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's, then every setting of the group checked: a group may set any setting of
        the optimizer (per-member tensors included), and is held to the same ranges."""
        self._check_known(param_group, "has no setting (in a param group)")
        super().add_param_group(param_group)
        self.check_settings(self.param_groups[-1])

    def check_settings(self, group: dict[str, Any]) -> None:
        """One ConfigError line for a setting out of its range, or a switch that is not a
        bool (a setting whose paper default is None may be None)."""
        for name, (low, high) in self.ranges.items():
            if group[name] is None and self.defaults_[name] is None:
                continue
            check_range(name, group[name], low, high)
        for name, default in self.defaults_.items():
            if isinstance(default, bool) and not isinstance(group[name], bool):
                raise ConfigError(f"{name} must be true or false, got {group[name]!r}")
        params = [p for p in group["params"] if p.is_floating_point()]
        if not params:
            return
        largest = torch.finfo(params[0].dtype).max
        for name in self.ranges:
            value = group[name]
            if value is not None and any(abs(v) > largest for v in _values(value)):
                raise ConfigError(
                    f"{name} must be at most {largest:.4g} for {params[0].dtype} "
                    f"parameters, got {max(_values(value), key=abs):g}"
                )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's, with settings that an older state dict lacks taken from the defaults (and,
        from a state dict saved when the training loop wrote alpha_t into `stepsize` each step,
        alpha back from its `initial_stepsize`)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            if "initial_stepsize" in group:
                group["stepsize"] = group.pop("initial_stepsize")
            for name, default in self.defaults_.items():
                group.setdefault(name, default)

    @torch.no_grad()
    def keep_members(self, replaced: dict[Tensor, Tensor], rows: Tensor) -> None:
        """Follow a population that shrank to the members at `rows`: each parameter is
        `replaced[old]`, its state tensors and every per-member setting keep those rows."""
        for group in self.param_groups:
            for key, value in group.items():
                if isinstance(value, Tensor) and value.dim() == 1 and key != "params":
                    group[key] = value[rows.to(value.device)]
            group["params"] = [replaced[p] for p in group["params"]]
        self.state = kept_state(self.state, replaced, rows)
        self._work = {}  # scratch shaped like the old parameters

    # -- the pair each optimizer writes -------------------------------------------------
    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        raise NotImplementedError

    def update(
        self, param: Tensor, grad: Tensor, state: dict[str, Any], t: int, work: Work, **hp: Any
    ) -> None:
        raise NotImplementedError

    # -- the torch.optim.Optimizer interface ---------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not hasattr(self, "_work"):
            self._work: dict[Tensor, Work] = {}
        for group in self.param_groups:
            hyper = {k: group[k] for k in self.defaults_}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state.update(self.init_state(p, group))
                work = self._work.setdefault(p, Work(p))
                state["step"] += 1
                t = state["step"]
                factor = decay_factor(self.decay, t, self.steps_per_epoch)
                hp = {
                    k: member_view(v * factor if k == "stepsize" and factor != 1.0 else v, p)
                    for k, v in hyper.items()
                }
                self.update(p, p.grad, state, t, work, **hp)
        return loss


class Work:
    """Scratch tensors shaped like one parameter, made on first use and reused every step."""

    def __init__(self, like: Tensor) -> None:
        self.like = like
        self.tensors: list[Tensor] = []

    def __getitem__(self, k: int) -> Tensor:
        while len(self.tensors) <= k:
            self.tensors.append(torch.empty_like(self.like))
        return self.tensors[k]


# -- pieces shared by several rules ---------------------------------------------------------
def ema_(average: Tensor, value: Tensor, beta: Hyper) -> Tensor:
    """average <- beta average + (1 - beta) value, in place (one fused lerp)."""
    return average.lerp_(value, 1 - beta)


def squared(grad: Tensor, out: Tensor) -> Tensor:
    """g^2 into `out` (bit for bit `grad.square()`)."""
    return torch.mul(grad, grad, out=out)


def sub_ratio_(param: Tensor, numerator: Tensor, denominator: Tensor, scale: Hyper) -> None:
    """param <- param - scale numerator / denominator, in place; fused when `scale` is a number,
    else through `denominator`, which is overwritten."""
    if isinstance(scale, Tensor):
        param.sub_(torch.div(numerator, denominator, out=denominator).mul_(scale))
    else:
        param.addcdiv_(numerator, denominator, value=-scale)


def momentum_step(
    param: Tensor,
    direction: Tensor,
    state: dict[str, Tensor],
    stepsize: Hyper,
    momentum: Hyper,
    nesterov: bool,
    torch_momentum_form: bool,
    work: Work,
    first: int,
) -> None:
    """theta <- theta + velocity, with velocity accumulated from `direction` (a gradient or a
    rescaled gradient); scratch in `work[first]`, and `work[first + 1]` for the paper's
    Nesterov step only (neither is `direction`; a scratch tensor is made on first use).

    Paper form (Sutskever et al. 2013, which the Adam paper's "SGDNesterov" cites):
        v_t = mu v_{t-1} - alpha_t d_t
        heavy ball: theta_t = theta_{t-1} + v_t
        Nesterov:   theta_t = theta_{t-1} + mu v_t - alpha_t d_t
    (Nesterov written in the look-ahead variables theta + mu v, so that the gradient handed
    to `step` is the one at the look-ahead point.)

    `torch_momentum_form=True` is torch's form, which accumulates raw directions and scales
    the sum by the *current* stepsize (equal to the paper's form while the stepsize is
    constant, different under a decay such as alpha/sqrt(t)):
        b_t = mu b_{t-1} + d_t;  theta_t = theta_{t-1} - alpha_t b_t   (or (d_t + mu b_t))
    """
    step = work[first]
    if "velocity" not in state:  # momentum = 0 everywhere: plain gradient step
        param.sub_(torch.mul(direction, stepsize, out=step))  # alpha_t d_t
        return
    buf = state["velocity"]
    if torch_momentum_form:
        buf.mul_(momentum).add_(direction)
        if nesterov:  # alpha_t (d_t + mu b_t)
            param.sub_(torch.mul(buf, momentum, out=step).add_(direction).mul_(stepsize))
        else:
            param.sub_(torch.mul(buf, stepsize, out=step))
        return
    buf.mul_(momentum).sub_(torch.mul(direction, stepsize, out=step))  # v_t
    if nesterov:  # mu v_t - alpha_t d_t
        param.add_(torch.mul(buf, momentum, out=work[first + 1]).sub_(step))
    else:
        param.add_(buf)


def has_momentum(group: dict[str, Any]) -> bool:
    return any(v != 0 for v in _values(group["momentum"]))


def temporal_beta(beta2: Hyper, averaging_beta: Hyper | None) -> Hyper:
    """The beta of temporal averaging: `averaging_beta`, or beta2 when it is None (the paper)."""
    return beta2 if averaging_beta is None else averaging_beta


class TemporalAveraging:
    """Section 7.2: an exponential moving average of the parameters, bias-corrected,
        thetabar_t = beta thetabar_{t-1} + (1 - beta) theta_t
        thetahat_t = thetabar_t / (1 - beta^t)
    with beta = `averaging_beta` (the paper uses beta2). Mixed into Adam and AdaMax.
    """

    def _average(
        self, param: Tensor, state: dict[str, Any], beta2: Hyper, averaging_beta: Hyper | None
    ) -> None:
        ema_(state["average"], param, temporal_beta(beta2, averaging_beta))

    @contextmanager
    def averaged_parameters(self) -> Iterator[None]:
        """Within the block the parameters hold thetahat_t (for evaluation); restored after."""
        saved = []
        for group in self.param_groups:  # type: ignore[attr-defined]
            if not group["averaging"]:
                continue
            for p in group["params"]:
                state = self.state[p]  # type: ignore[attr-defined]
                if "average" not in state:
                    continue
                beta = member_view(temporal_beta(group["beta2"], group["averaging_beta"]), p)
                saved.append((p, p.detach().clone()))
                p.data.copy_(state["average"] / (1 - beta ** state["step"]))
        try:
            yield
        finally:
            for p, value in saved:
                p.data.copy_(value)
