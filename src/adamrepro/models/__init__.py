"""Models as populations of G members (parameters with a leading member axis)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

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
        return checked_call(BagOfWordsLogisticRegression, "model bow_logreg",
                            data.input_shape[0], data.num_classes, seeds, **settings)  # fmt: skip
    if name == "mlp":
        return checked_call(MultilayerNetwork, "model mlp", math.prod(data.input_shape),
                            data.num_classes, seeds, **settings)  # fmt: skip
    if name == "cnn":
        return checked_call(ConvolutionalNetwork, "model cnn", data.input_shape,
                            data.num_classes, seeds, **settings)  # fmt: skip
    if name == "vae":
        return checked_call(VariationalAutoencoder, "model vae", math.prod(data.input_shape),
                            seeds, **settings)  # fmt: skip
    if name == "surface":
        return checked_call(SurfaceModel, "model surface", seeds, **settings)
    raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


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
]
