"""Any `torch.optim.Optimizer` (one of torch's, one from a package, or a user's own class) run
by the project's training loop, which expects of its optimizer what `PaperOptimizer` gives:

- `schedule(decay, steps_per_epoch)`: the task's stepsize decay (section 6.1's alpha / sqrt(t))
  applied to the setting that is the optimizer's stepsize (`stepsize_key`, `lr` for torch's
  optimizers), alpha_t = alpha * decay(t), t the steps taken; `None` leaves it alone (an
  optimizer that sets its own stepsize, such as Prodigy or Schedule-Free, may ask for that);
- `current_stepsize(group)`: alpha_t of the last step;
- `evaluating()`: a context in which the parameters are the ones to evaluate (Schedule-Free's
  `eval()` / `train()` switch, where the optimizer has one);
- `keep_members(...)`: a population that shrank (a member diverged) keeps the rows of the
  state tensors shaped like their parameter, right for an element-wise optimizer.

A population of G members shares one external optimizer over its stacked (G, ...) parameters:
that trains G independent members only when the optimizer works element by element (Adam,
Lion, ...), and only when they share every setting (its settings are numbers, not one value
per member). `elementwise=False` (Prodigy's step depends on sums over the whole tensor) allows
one member per run.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import checked_decay, decay_factor, kept_state

# Keys of an external optimizer's config that describe it rather than set it.
EXTERNAL_KEYS = ("name", "label", "_target_", "stepsize_key", "elementwise", "extra")


def load_target(target: str, extra: str | None = None) -> type:
    """The class `target` names: `package.module.Class`, or `path/to/file.py:Class` (the file
    imported from where it lies). One ConfigError line when it cannot be found, naming the
    optional extra to install when a package is missing."""
    if ":" in target:
        path_text, _, name = target.rpartition(":")
        path = Path(path_text)
        if not path.is_file():
            raise ConfigError(f"_target_ {target!r}: no file {path}")
        module_name = f"adamrepro_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"_target_ {target!r}: {path} cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except ImportError as error:
            raise ConfigError(_missing(target, error, extra)) from None
        except Exception as error:  # the user's file failed while it was imported
            raise ConfigError(
                f"_target_ {target!r}: importing {path} failed ({type(error).__name__}: {error})"
            ) from None
    else:
        module_path, _, name = target.rpartition(".")
        if not module_path:
            raise ConfigError(
                f"_target_ {target!r} must be package.module.Class or path/to/file.py:Class"
            )
        try:
            module = importlib.import_module(module_path)
        except ImportError as error:
            raise ConfigError(_missing(target, error, extra)) from None
    found = getattr(module, name, None)
    if found is None:
        raise ConfigError(f"_target_ {target!r}: {name!r} is not defined there")
    if not (isinstance(found, type) and issubclass(found, torch.optim.Optimizer)):
        raise ConfigError(f"_target_ {target!r} is not a torch.optim.Optimizer subclass")
    return found


def _missing(target: str, error: ImportError, extra: str | None) -> str:
    package = getattr(error, "name", None) or str(error)
    hint = f": pip install -e '.[{extra}]'" if extra else ""
    return f"_target_ {target!r} needs the package {package!r}, which is not installed{hint}"


class ExternalOptimizer:
    """A torch optimizer over a population's parameters, with the loop's interface."""

    is_external = True

    def __init__(
        self,
        params: Iterable[Tensor],
        config: Mapping[str, Any],
    ) -> None:
        settings = {k: v for k, v in config.items() if k not in EXTERNAL_KEYS}
        per_member = sorted(k for k, v in settings.items() if isinstance(v, Tensor))
        if per_member:
            raise ConfigError(
                f"an external optimizer trains one setting per run, but the members differ in "
                f"{', '.join(per_member)}: train each setting as its own run"
            )
        params = list(params)
        members = params[0].shape[0] if params and params[0].dim() > 0 else 1
        if members > 1 and not config.get("elementwise", True):
            raise ConfigError(
                f"{config.get('label', config['_target_'])} is not element-wise "
                f"(elementwise: false): a run of it holds one member, not {members}"
            )
        cls = load_target(str(config["_target_"]), config.get("extra"))
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
        try:
            self.inner = cls(params, **settings)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{cls.__name__}({_shown(settings)}): {error}") from None
        self.stepsize_key = config.get("stepsize_key", "lr")
        if self.stepsize_key is not None and self.stepsize_key not in self.param_groups[0]:
            raise ConfigError(
                f"{cls.__name__} has no setting {self.stepsize_key!r} (stepsize_key): its "
                f"settings are {', '.join(k for k in self.param_groups[0] if k != 'params')}"
            )
        self.initial = [g.get(self.stepsize_key) for g in self.param_groups]
        self.decay, self.steps_per_epoch, self.steps = "none", 1, 0
        self._train_mode()

    # -- what the loop asks of its optimizer ---------------------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.inner.param_groups

    def schedule(self, decay: str, steps_per_epoch: int = 1) -> None:
        self.decay, self.steps_per_epoch = checked_decay(decay), int(steps_per_epoch)

    def current_stepsize(self, group: dict[str, Any]) -> float:
        if self.stepsize_key is None:
            return float("nan")
        return float(group[self.stepsize_key])

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        if self.stepsize_key is not None and self.decay != "none":
            factor = decay_factor(self.decay, self.steps, self.steps_per_epoch)
            for group, alpha in zip(self.param_groups, self.initial, strict=True):
                group[self.stepsize_key] = alpha * factor
        self.inner.step()

    @torch.no_grad()
    def keep_members(self, replaced: dict[Tensor, Tensor], rows: Tensor) -> None:
        """Follow a population that shrank (an element-wise optimizer's runs only): each
        parameter is `replaced[old]`, and its state tensors shaped like it keep `rows`."""
        for group in self.param_groups:
            group["params"] = [replaced[p] for p in group["params"]]
        self.inner.state = kept_state(self.inner.state, replaced, rows)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """The parameters to evaluate: Schedule-Free's eval() inside, train() after."""
        switch = getattr(self.inner, "eval", None)
        if callable(switch):
            switch()
        try:
            yield
        finally:
            self._train_mode()

    def _train_mode(self) -> None:
        switch = getattr(self.inner, "train", None)
        if callable(switch):
            switch()

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.steps = int(state["steps"])


def _shown(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in settings.items())
