"""Optimizers written from the paper's equations; see `rules.py` for each one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor

from .base import ConfigError, PaperOptimizer, member_view
from .rules import OPTIMIZERS, SGD, AdaDelta, AdaGrad, Adam, AdaMax, RMSProp

# Keys of an optimizer config that describe it rather than set it.
DESCRIPTIVE_KEYS = ("name", "label")


def build_optimizer(params: Iterable[Tensor], config: Mapping[str, Any]) -> PaperOptimizer:
    """The optimizer that `config` names (`name`), with the rest of `config` as its settings."""
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
    "PaperOptimizer",
    "RMSProp",
    "build_optimizer",
    "member_view",
]
