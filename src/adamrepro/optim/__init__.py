"""Optimizers written from the paper's equations; see `rules.py` for each one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor

from .base import ConfigError, PaperOptimizer, member_view
from .external import EXTERNAL_KEYS, ExternalOptimizer, load_target
from .rules import OPTIMIZERS, SGD, AdaDelta, AdaGrad, Adam, AdaMax, RMSProp

# Keys of an optimizer config that describe it rather than set it.
DESCRIPTIVE_KEYS = ("name", "label")


def build_optimizer(
    params: Iterable[Tensor], config: Mapping[str, Any]
) -> PaperOptimizer | ExternalOptimizer:
    """The optimizer that `config` names (`name`), with the rest of `config` as its settings;
    with `_target_`, a class: one written in this project's API (a `PaperOptimizer`, whose
    settings may differ per member) as it is, any other torch.optim.Optimizer through
    `external.ExternalOptimizer`."""
    if "_target_" in config:
        cls = load_target(str(config["_target_"]), config.get("extra"))
        if issubclass(cls, PaperOptimizer):
            return cls(params, **{k: v for k, v in config.items() if k not in EXTERNAL_KEYS})
        return ExternalOptimizer(params, config)
    name = config.get("name")
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    settings = {k: v for k, v in config.items() if k not in DESCRIPTIVE_KEYS}
    return OPTIMIZERS[name](params, **settings)


__all__ = [
    "OPTIMIZERS",
    "SGD",
    "AdaDelta",
    "AdaGrad",
    "AdaMax",
    "Adam",
    "ConfigError",
    "ExternalOptimizer",
    "PaperOptimizer",
    "RMSProp",
    "build_optimizer",
    "load_target",
    "member_view",
]
