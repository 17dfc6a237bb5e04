"""Models as populations of G members (parameters with a leading member axis)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..data import TensorData
from ..errors import ConfigError, checked_call
from .classifier import (
    BagOfWordsLogisticRegression,
    Classifier,
    ConvolutionalNetwork,
    LogisticRegression,
    MultilayerNetwork,
)
from .layers import MemberLinear
from .surfaces import SURFACES, SurfaceModel
from .vae import VariationalAutoencoder

MODELS = ("logreg", "bow_logreg", "mlp", "cnn", "vae", "surface")


def build_model(config: Mapping[str, Any], data: TensorData, seeds: Sequence[int]) -> nn.Module:
    """The model that `config.name` names, shaped for `data`, one member per seed."""
    name = config.get("name")
    settings = {k: v for k, v in config.items() if k != "name"}
    if name == "logreg":
        in_features = math.prod(data.input_shape)
        return checked_call(
            LogisticRegression, "model logreg", in_features, data.num_classes, seeds, **settings
        )
    if name == "bow_logreg":
        return checked_call(
            BagOfWordsLogisticRegression,
            "model bow_logreg",
            data.input_shape[0],
            data.num_classes,
            seeds,
            **settings,
        )
    if name == "mlp":
        return checked_call(
            MultilayerNetwork,
            "model mlp",
            math.prod(data.input_shape),
            data.num_classes,
            seeds,
            **settings,
        )
    if name == "cnn":
        return checked_call(
            ConvolutionalNetwork, "model cnn", data.input_shape, data.num_classes, seeds, **settings
        )
    if name == "vae":
        return checked_call(
            VariationalAutoencoder, "model vae", math.prod(data.input_shape), seeds, **settings
        )
    if name == "surface":
        return checked_call(SurfaceModel, "model surface", seeds, **settings)
    raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


@torch.no_grad()
def keep_member_rows(model: nn.Module, rows: Tensor) -> dict[Tensor, nn.Parameter]:
    """Shrink a population to the members at `rows` of its leading axis: every parameter is
    replaced by one holding those rows, in that order (the models read G from their
    parameters' shapes). Returns old parameter -> new, for the optimizer to follow."""
    replaced: dict[Tensor, nn.Parameter] = {}
    for module in model.modules():
        for name, old in list(module._parameters.items()):
            if old is None:
                continue
            new = nn.Parameter(old[rows].clone(), requires_grad=old.requires_grad)
            module._parameters[name] = new
            replaced[old] = new
    return replaced


__all__ = [
    "BagOfWordsLogisticRegression",
    "Classifier",
    "ConvolutionalNetwork",
    "LogisticRegression",
    "MemberLinear",
    "MultilayerNetwork",
    "SURFACES",
    "SurfaceModel",
    "VariationalAutoencoder",
    "build_model",
    "keep_member_rows",
]
